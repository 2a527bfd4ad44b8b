"""The training section's inputs: a run directory read back, the config diff from a preset, the curves."""

import json

from distgen.report import RunRecord, read_run_dir
from distgen.report.style import theme
from distgen.report.training import config_diff, panels, training_figure


def _run_dir(tmp_path):
    run = tmp_path / "exp" / "train"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(
        "step,loss,lr,loss_mse,val_loss,val_mse\n"
        "10,3.0,0.001,1.0,,\n"
        "20,2.0,0.001,0.8,2.5,0.4\n"
        "20,2.0,0.001,0.8,2.5,0.4\n"  # a row logged again after a resume
        "30,1.0,0.0005,0.5,,\n")
    (run / "config.yaml").write_text("model: {name: generator, dim: 64}\ntrain: {steps: 30, lr: 0.001}\n")
    (run.parent / "experiment.yaml").write_text("model: {name: generator, dim: 64}\ntrain: {steps: 30}\n")
    (run / "manifest.json").write_text(json.dumps({"seed": 0, "versions": {"torch": "2.x"}}))
    (run.parent / "timings.json").write_text(json.dumps({"train": 1.5}))
    return run


def test_run_dir_is_read_with_one_row_per_step(tmp_path):
    rec = read_run_dir(_run_dir(tmp_path), preset={"model": {"name": "generator", "dim": 32}}, preset_name="tiny")
    assert [r["step"] for r in rec.log] == [10, 20, 30]
    assert rec.log[1]["val_mse"] == 0.4 and "val_mse" not in rec.log[0]
    assert rec.config == {"model": {"name": "generator", "dim": 64}, "train": {"steps": 30}}  # the experiment's own document
    assert rec.manifest["seed"] == 0 and rec.timings == {"train": 1.5}
    assert panels(rec.log) == [("training loss", ["loss", "loss_mse"]), ("validation loss", ["val_loss"]), ("mse", ["val_mse"]), ("lr", ["lr"])]
    with theme():
        fig = training_figure(rec.log)
    assert fig is not None
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
    assert "validation mse (lower is better)" in labels and "training loss (lower is better)" in labels
    assert training_figure([]) is None
    assert RunRecord().log == []


def test_config_diff_lists_changed_keys_and_a_replaced_component_once():
    preset = {"model": {"name": "generator", "encoder": {"name": "kme", "bandwidth": 1.0}, "dim": 64}, "train": {"steps": 1500}}
    run = {"model": {"name": "generator", "encoder": {"name": "set_transformer", "heads": 4}, "dim": 64}, "train": {"steps": 200, "seed": 3}}
    diff = config_diff(run, preset)
    assert diff == [("model.encoder.name", "kme", "set_transformer"), ("train.seed", None, 3), ("train.steps", 1500, 200)]
    assert config_diff(preset, preset) == []


def test_a_damaged_timings_or_manifest_is_refused_naming_the_file(tmp_path):
    """``python -m distgen.report OUT/eval`` of a run whose ``timings.json`` or ``train/manifest.json`` cannot be
    read stopped with "error: Expecting property name enclosed in double quotes" naming no file."""
    import re

    import pytest

    run = _run_dir(tmp_path)
    for path in (run.parent / "timings.json", run / "manifest.json"):
        good = path.read_text()
        path.write_text("{bad")
        with pytest.raises(ValueError, match=re.escape(str(path)) + " is not valid JSON.*restore the file"):
            read_run_dir(run)
        path.write_text("[1]")
        with pytest.raises(ValueError, match=re.escape(f"{path} holds a JSON list")):
            read_run_dir(run)
        path.write_text(good)


def test_a_run_folder_given_for_its_evaluation_is_pointed_at_its_eval_folder(tmp_path):
    """``python -m distgen.report OUT`` of a ``distgen run`` folder said "is not an evaluation folder:
    metrics.csv, summary.json missing; write one with distgen evaluate", the evaluation being in ``OUT/eval``."""
    import pytest

    from distgen.report.inputs import load_eval_dir

    run = _run_dir(tmp_path)
    (run.parent / "eval").mkdir()
    for name in ("metrics.csv", "summary.json"):
        (run.parent / "eval" / name).write_text("")
    with pytest.raises(FileNotFoundError, match=r"its evaluation is in .*eval: python -m distgen\.report .*eval"):
        load_eval_dir(run.parent)
