"""A finished experiment evaluated again (other ``--metrics``, a removed or damaged summary) keeps the time its training
took in ``timings.json``: the re-run used to rewrite the file with its own laps, so a healthy ``train: 2.45 s``
became the resume's ``0.39 s`` (loading the data and the final checkpoint, no step trained), without a word."""

import json

import pytest

from distgen.config import save_yaml
from distgen.pipeline import experiment

from .conftest import TINY


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("timed")
    cfg = save_yaml({**TINY, "evaluate": {"ceiling": False, "baselines": []}}, root / "t.yaml")
    experiment.run(cfg, root / "exp", progress=False, metrics=["mse"], plots=False)
    return cfg, root / "exp"


def _marked(out, seconds):
    """Give the recorded training a time no re-run measures (the tiny training takes well under it)."""
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"train", "predict", "evaluate"}
    timings["train"] = seconds
    (out / "timings.json").write_text(json.dumps(timings))
    return timings


@pytest.mark.parametrize("how", ["other metrics", "summary removed"])
def test_a_re_evaluation_keeps_the_training_time_and_records_its_own(finished, tmp_path, how):
    import shutil

    cfg, made = finished
    out = tmp_path / "exp"
    shutil.copytree(made, out)
    before = _marked(out, 1234.5)
    metrics = ["mse", "pearson_delta"] if how == "other metrics" else ["mse"]
    if how == "summary removed":
        (out / "eval" / "summary.json").unlink()
    summary = experiment.run(cfg, out, progress=False, metrics=metrics, plots=False)
    after = json.loads((out / "timings.json").read_text())
    assert after["train"] == before["train"]  # the training's time, not the reload's
    assert after["reload"] < before["train"]  # what the re-run spent loading the data and the final checkpoint
    assert set(after) == {"train", "reload", "predict", "evaluate"}
    assert summary["timings_s"] == after


def test_a_damaged_timings_file_is_not_replaced_by_a_reload_called_training(finished, tmp_path):
    """The file's training time is lost with it; the re-run does not call its reload the training, and records the
    training's seconds that the final checkpoint holds (``state.json`` ``train_seconds``, set here to a number no reload
    takes); a checkpoint without them (written by an older distgen) leaves no ``train``."""
    import shutil

    cfg, made = finished
    for recorded in (4321.0, None):
        out = tmp_path / f"exp_{recorded}"
        shutil.copytree(made, out)
        state_file = out / "train" / "checkpoints" / "step_00000002" / "state.json"
        state = json.loads(state_file.read_text())
        state["train_seconds"] = recorded
        state_file.write_text(json.dumps(state))
        (out / "timings.json").write_text('{"train": 1')
        experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
        after = json.loads((out / "timings.json").read_text())
        if recorded is None:
            assert "train" not in after and set(after) == {"reload", "predict", "evaluate"}
        else:
            assert after["train"] == recorded and set(after) == {"train", "reload", "predict", "evaluate"}


def test_an_earlier_configs_training_time_is_not_kept_for_a_fitted_model(tmp_path):
    """``stage_timings`` kept every earlier stage the re-run did not lap, so a fitted model run into a
    folder whose earlier experiment (another config, replaced as it left no checkpoint, prediction or evaluation) left its
    ``timings.json`` recorded that experiment's ``train`` seconds as its own. The training's time is kept only where this
    run reloaded the trained model (its lap is ``reload``)."""
    out = tmp_path / "exp"
    out.mkdir()
    save_yaml({**TINY, "train": {**TINY["train"], "seed": 7}}, out / "experiment.yaml")
    (out / "timings.json").write_text(json.dumps({"train": 1234.5, "predict": 1.0, "evaluate": 1.0}))
    cfg = save_yaml({**TINY, "model": {"name": "additive"}, "train": {"seed": 0},
                     "evaluate": {"ceiling": False, "baselines": []}}, tmp_path / "fitted.yaml")
    summary = experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    after = json.loads((out / "timings.json").read_text())
    assert set(after) == {"fit_predict", "evaluate"} and summary["timings_s"] == after
