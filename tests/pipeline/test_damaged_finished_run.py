"""A finished experiment (``DONE``) whose ``eval/summary.json`` or ``timings.json`` cannot be read (cut short, edited by
hand): until 2026-12-07 ``distgen run`` stopped with ``error: Expecting property name enclosed in double
quotes`` without naming the file, after saying the experiment was finished; under torchrun the other ranks, which read
the folder before the lock, took it as unfinished and went on to train while rank 0 stopped. Now every rank counts it
as unfinished, rank 0 names the file, and the experiment is predicted and evaluated again (training is not repeated):
its summary is written again, as a user rerunning the command expects. The same folder in a sweep is run again, said."""

import json

import pytest
import yaml

from distgen.pipeline import experiment, run_folder

from .test_run_other_ranks import FITTED, TRAINED, Stop, _as_rank_1

DAMAGED = ["eval/summary.json", "timings.json"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished fitted experiment (fast) and its config."""
    root = tmp_path_factory.mktemp("finished")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(FITTED))
    experiment.run(cfg, root / "out", progress=False, metrics=["mse"], plots=False)
    return cfg, root / "out"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damaged", DAMAGED)
def test_a_damaged_finished_file_is_named_and_the_experiment_evaluated_again(finished, tmp_path, capsys, damaged):
    cfg, src = finished
    out = _copy(src, tmp_path / "out")
    (out / damaged).write_text("{bad")
    capsys.readouterr()
    summary = experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    err = capsys.readouterr().err
    assert str(out / damaged) in err and "cannot be read" in err and "evaluated again" in err
    assert "already holds this finished experiment" not in err
    assert summary["metrics"]["mse"]["model"] == json.loads((src / "eval" / "summary.json").read_text())["metrics"]["mse"]["model"]
    json.loads((out / damaged).read_text())  # written again, whole


@pytest.mark.parametrize("damaged", DAMAGED)
def test_every_rank_takes_a_damaged_finished_experiment_as_unfinished(tmp_path, monkeypatch, damaged):
    """Rank 1 decides as rank 0 does (``is_finished`` is what both read): it goes on to the training here, where rank 0
    evaluates again (above), instead of training alone while rank 0 stopped with an error."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(TRAINED))
    out = tmp_path / "out"
    experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    (out / damaged).write_text("[1, 2")
    assert not run_folder.is_finished(out, experiment.experiment_document(cfg, (), False), ["mse"])
    _as_rank_1(monkeypatch)
    with pytest.raises(Stop):
        experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)


def test_finished_summary_names_a_file_it_cannot_read(finished, tmp_path):
    _, src = finished
    out = _copy(src, tmp_path / "out")
    (out / "timings.json").write_text("[]")
    with pytest.raises(experiment.ConfigError, match=r"timings\.json"):
        run_folder.finished_summary(out)


def test_the_evaluated_again_note_is_not_printed_where_the_lock_refuses_the_run(finished, tmp_path, capsys, monkeypatch):
    """The note "it is predicted and evaluated again" was printed before the folder's lock, so a
    folder that cannot be written (read-only, another user's) or that another process holds said so and was then refused
    ("is not writable" / "is in use"). It is now said under the lock, where the experiment is evaluated again."""
    from distgen.train.lock import RunLockedError

    cfg, src = finished
    out = _copy(src, tmp_path / "out")
    (out / "eval/summary.json").write_text("{bad")

    class Held:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            raise RunLockedError(f"{out} is in use by another process")

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(experiment, "RunLock", Held)
    capsys.readouterr()
    with pytest.raises(RunLockedError):
        experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    assert "evaluated again" not in capsys.readouterr().err


def test_a_summary_changed_while_read_before_the_lock_leaves_the_decision_to_the_lock(finished, tmp_path, monkeypatch):
    """``finished_or_none`` returns None for a summary that changes while it is read (a writer rewriting
    the folder; the lock then decides), as it always did; ``finished_summary``'s ``ConfigError`` escaped it
    and stopped the run with "cannot be read" where the files were whole when ``is_finished`` read them."""
    cfg, src = finished
    out = _copy(src, tmp_path / "out")
    real = run_folder._read_summary

    def rewritten(folder):  # a writer starts while the summary is read: it removes DONE first
        summary = real(folder)
        (out / experiment.DONE_FILE).unlink()
        return summary

    monkeypatch.setattr(run_folder, "_read_summary", rewritten)
    assert run_folder.finished_or_none(out, experiment.experiment_document(cfg, (), False), ["mse"]) is None


def test_a_finished_experiment_is_read_once(finished, tmp_path, monkeypatch):
    """Work done twice: ``is_finished`` parsed ``eval/summary.json`` and ``timings.json`` to
    tell whether they are whole, and ``finished_summary`` parsed them again to return them. ``read_finished`` reads each
    once and returns what it read."""
    cfg, src = finished
    out = _copy(src, tmp_path / "out")
    reads = []
    real = run_folder._finished_json
    monkeypatch.setattr(run_folder, "_finished_json", lambda folder, name: reads.append(name) or real(folder, name))
    summary = run_folder.finished_or_none(out, experiment.experiment_document(cfg, (), False), ["mse"])
    assert summary is not None and summary["timings_s"] == json.loads((out / "timings.json").read_text())
    assert sorted(reads) == sorted(run_folder.SUMMARY_FILES)
