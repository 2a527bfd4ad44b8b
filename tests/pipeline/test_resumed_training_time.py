"""The training time a resumed run records is the whole training's.

A training interrupted after a checkpoint and resumed (``distgen run`` run again, ``distgen train --resume``) recorded
as ``train`` (``timings.json``) and ``training.seconds`` (``train/manifest.json``) only the part after the resume: the
seconds trained before the checkpoint were in no file. A checkpoint's ``state.json`` now records them
(``train_seconds``); a resume adds them, and a checkpoint written before that record resumes as before with the time
flagged partial. The tests give the checkpoint a number of seconds no tiny training takes, so that the sum is told
from the resumed part alone without timing anything."""

import json

import pytest

from distgen.config import load_yaml, save_yaml
from distgen.pipeline.experiment import DONE_FILE, run
from distgen.train.run import train_model
from distgen.train.trainer import Trainer

from .test_resume import METRICS, TINY

MARK = 100000.0  #: seconds written into the interrupted run's checkpoint (more than any tiny training takes)


class Crash(RuntimeError):
    """The injected interruption (a killed process)."""


@pytest.fixture
def crash_at_step_2(monkeypatch):
    """The training stops right after writing its checkpoint at step 2, until ``disarm()``."""
    real_save = Trainer.save
    state = {"armed": True}

    def save(self):
        path = real_save(self)
        if state["armed"] and self.step == 2:
            raise Crash("simulated interruption after the checkpoint of step 2")
        return path

    monkeypatch.setattr(Trainer, "save", save)
    return lambda: state.update(armed=False)


def _state(run_dir, step):
    return json.loads((run_dir / "checkpoints" / f"step_{step:08d}" / "state.json").read_text())


def _set_seconds(run_dir, step, seconds):
    """Replace the ``train_seconds`` of a checkpoint (``...``: remove it, as in a checkpoint written before it was kept)."""
    path = run_dir / "checkpoints" / f"step_{step:08d}" / "state.json"
    state = json.loads(path.read_text())
    assert isinstance(state["train_seconds"], float) and state["train_seconds"] > 0  # recorded by the interrupted run
    if seconds is ...:
        del state["train_seconds"]
    else:
        state["train_seconds"] = seconds
    path.write_text(json.dumps(state))


def _interrupted_run(tmp_path, disarm):
    cfg = save_yaml(TINY, tmp_path / "tiny.yaml")
    out = tmp_path / "exp"
    with pytest.raises(Crash):
        run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    disarm()
    assert not (out / "timings.json").exists()  # the interrupted run recorded no time
    return cfg, out


def test_a_resumed_distgen_run_records_the_training_before_its_checkpoint(tmp_path, crash_at_step_2):
    cfg, out = _interrupted_run(tmp_path, crash_at_step_2)
    _set_seconds(out / "train", 2, MARK)
    summary = run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    timings = json.loads((out / "timings.json").read_text())
    assert timings["train"] >= MARK  # the seconds before the checkpoint and the resumed part (rounded: the part may be 0.0)
    assert set(timings) == {"train", "predict", "evaluate"} and summary["timings_s"] == timings
    assert _state(out / "train", 6)["train_seconds"] > MARK  # the later checkpoints carry the whole time on
    training = json.loads((out / "train" / "manifest.json").read_text())["training"]
    # rounded to 0.1 s: a resumed part of a few ms adds nothing visible, so the sum is checked against its two parts
    assert training["seconds"] == pytest.approx(MARK + training["seconds_this_run"], abs=0.1) and training["seconds_this_run"] < MARK
    assert training["seconds_partial"] is False


@pytest.mark.parametrize("recorded", [..., -5.0], ids=["absent", "negative"])
def test_a_checkpoint_without_the_record_resumes_and_the_time_is_flagged_partial(tmp_path, crash_at_step_2, recorded):
    """Absent: a checkpoint written before the record; a value that is no number of seconds (edited) is as unknown."""
    cfg, out = _interrupted_run(tmp_path, crash_at_step_2)
    _set_seconds(out / "train", 2, recorded)
    run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    assert (out / DONE_FILE).exists()
    timings = json.loads((out / "timings.json").read_text())
    assert timings["train_partial"] is True and set(timings) == {"train", "train_partial", "predict", "evaluate"}
    assert "train_seconds" in _state(out / "train", 6) and _state(out / "train", 6)["train_seconds"] is None  # still unknown
    training = json.loads((out / "train" / "manifest.json").read_text())["training"]
    assert training["seconds_partial"] is True and training["seconds"] == training["seconds_this_run"]

    # evaluated again (the summary gone): the kept training time stays flagged
    (out / "eval" / "summary.json").unlink()
    (out / DONE_FILE).unlink()
    run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    again = json.loads((out / "timings.json").read_text())
    assert again["train"] == timings["train"] and again["train_partial"] is True and "reload" in again


def test_distgen_train_resume_records_the_whole_training_in_the_manifest(tmp_path, crash_at_step_2):
    doc = load_yaml(save_yaml(TINY, tmp_path / "tiny.yaml"))
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train_model(doc, out)
    crash_at_step_2()
    _set_seconds(out, 2, MARK)
    train_model(doc, out, resume=True)
    training = json.loads((out / "manifest.json").read_text())["training"]
    assert training["seconds"] == pytest.approx(MARK + training["seconds_this_run"], abs=0.1) and training["seconds_partial"] is False
    assert _state(out, 6)["train_seconds"] > MARK


def test_a_run_stopped_after_its_training_records_the_training_its_checkpoint_holds(tmp_path):
    """Killed after the training (while predicting or evaluating): no ``timings.json``; the run again reloads the final
    checkpoint and records as ``train`` the seconds that checkpoint holds, beside its own ``reload``."""
    cfg = save_yaml(TINY, tmp_path / "tiny.yaml")
    out = tmp_path / "exp"
    run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    for name in ("timings.json", DONE_FILE, "eval/summary.json"):  # as if the process died while evaluating
        (out / name).unlink()
    _set_seconds(out / "train", 6, MARK)
    run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    timings = json.loads((out / "timings.json").read_text())
    assert timings["train"] == MARK and set(timings) == {"train", "reload", "predict", "evaluate"}
