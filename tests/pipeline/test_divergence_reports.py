"""What a run and a sweep say about a model whose training diverged: the run's summary (notes, ``training_diverged``,
the printed headline) and manifest; the sweep's summary marks the variant, names a failed run's error, and does not
retry a run that stopped on a NaN/inf loss (it would stop at the same step again)."""

import csv
import json

import numpy as np
import pytest

from distgen.config import save_yaml
from distgen.pipeline.experiment import headline
from distgen.pipeline.experiment import run as run_experiment
from distgen.pipeline.sweep import METRICS_FILE, sweep
from tests.pipeline.conftest import TINY

NAN_ERROR = ("distgen run: error: non-finite gradient norm at step 2 (rank 0; lr 993, train.grad_clip=1; the loss was 0.09 at "
             "step 1); batch conditions: A @ k562. Last checkpoint: none saved yet. To fix: lower train.lr")


def test_a_diverged_run_says_so_in_its_summary_headline_and_manifest(tmp_path):
    cfg = save_yaml({**TINY, "train": {**TINY["train"], "steps": 4, "lr": 10.0}, "evaluate": {"plots": False, "ceiling": False}},
                    tmp_path / "t.yaml")
    with pytest.warns(UserWarning, match="training diverged"):
        summary = run_experiment(str(cfg), tmp_path / "exp", progress=False, metrics=["mse"], plots=False)
    d = summary["training_diverged"]
    assert d is not None and d["step"] == 2 and d["loss"] > 1e3 * abs(d["first_loss"])
    assert "DIVERGED" in headline(summary)
    assert any("training diverged" in n for n in summary["notes"])
    assert "training diverged" in (tmp_path / "exp" / "eval" / "summary.md").read_text()
    manifest = json.loads((tmp_path / "exp" / "train" / "manifest.json").read_text())
    assert manifest["training"]["diverged"]["step"] == 2
    on_disk = json.loads((tmp_path / "exp" / "eval" / "summary.json").read_text())
    assert on_disk["training_diverged"]["step"] == 2


def test_a_healthy_run_records_no_divergence(tmp_path):
    cfg = save_yaml({**TINY, "evaluate": {"plots": False, "ceiling": False}}, tmp_path / "t.yaml")
    summary = run_experiment(str(cfg), tmp_path / "exp", progress=False, metrics=["mse"], plots=False)
    assert summary["training_diverged"] is None and "DIVERGED" not in headline(summary)
    # which weights were scored: the last step's, said in summary.json and the printed headline (no validation: no best)
    w = json.loads((tmp_path / "exp" / "eval" / "summary.json").read_text())["weights"]
    assert (w["which"], w["step"], w["checkpoint"], w["ema"], w["best_step"]) == ("last", 2, "step_00000002", False, None)
    assert "weights: step 2's (the last; checkpoint step_00000002)" in headline(summary)


def test_the_headline_says_the_scored_weights_are_not_the_best_validations():
    from distgen.pipeline.experiment import weights_line

    w = {"which": "last", "step": 10, "checkpoint": "step_00000010", "ema": True, "stopped_early": True, "best": 2.12,
         "best_step": 6, "best_checkpoint": "step_00000006"}
    line = weights_line(w)
    assert line.startswith("weights: step 10's (the last, stopped early, EMA average; checkpoint step_00000010)")
    assert "best validation (2.12 at step 6) is not these" in line and "--checkpoint best" in line


class Runner:
    """Fake ``distgen run``: ``nanloss`` variants fail as a NaN loss does, ``exploded`` ones finish with a diverged record."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, run, run_dir):
        self.calls.append(run.slug)
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "log.txt").open("a") as log:
            log.write("$ python -m distgen run ...\n")
            if "nanloss" in run.variant:
                log.write(NAN_ERROR + "\n")
                return 1
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(run.seed)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "mse"])
            for p in range(6):
                w.writerow([f"P{p}", 1.0 + rng.normal(0, 0.01) + (70 if "exploded" in run.variant else 0)])
        diverged = {"step": 2, "loss": 7e17, "first_loss": 0.09, "lr": 9.9, "grad_norm": 7e16, "grad_clip": 1.0}
        (run_dir / "eval" / "summary.json").write_text(json.dumps({"training_diverged": diverged if "exploded" in run.variant else None}))
        return 0


def test_a_sweep_marks_diverged_runs_and_names_why_a_run_failed(tmp_path):
    base = save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml")
    runner = Runner()
    res = sweep(str(base), {"description": ["fine", "exploded", "nanloss"], "train.seed": [0, 1]}, tmp_path / "sw", runner=runner,
                retries=2, metrics=["mse"], progress=False)
    # a NaN loss recurs at the same step when resumed: tried once, not 1 + retries times
    assert runner.calls.count("description=nanloss__seed0") == 1 and sorted(res.failed) == ["description=nanloss__seed0", "description=nanloss__seed1"]
    assert res.failures["description=nanloss__seed0"].startswith("non-finite gradient norm at step 2")
    assert sorted(res.diverged) == ["description=exploded__seed0", "description=exploded__seed1"]
    text = (tmp_path / "sw" / "summary.md").read_text()
    assert "| description=exploded (DIVERGED: 2 of 2 seeds) | 2 |" in text and "| description=fine | 2 |" in text
    assert "## Diverged runs" in text and "exploded at step 2 to 7e+17" in text
    assert "description=nanloss\\_\\_seed0: non-finite gradient norm at step 2" in text
    saved = json.loads((tmp_path / "sw" / "summary.json").read_text())
    assert set(saved["diverged"]) == set(res.diverged) and set(saved["failures"]) == set(res.failed)
    assert saved["diverged"]["description=exploded__seed1"]["variant"] == "description=exploded"
    page = (tmp_path / "sw" / "report.html").read_text()  # the sweep page says the same
    assert "description=exploded (DIVERGED: 2 of 2 seeds)" in page and "Diverged runs" in page
    assert "non-finite gradient norm at step 2" in page


def test_other_failures_are_still_retried(tmp_path):
    base = save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml")
    calls = []

    def crashing(config, run, run_dir):
        calls.append(run.slug)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "log.txt").write_text("$ python -m distgen run ...\ndistgen run: error: disk full while writing\n")
        return 1

    with pytest.raises(RuntimeError, match="no run finished"):
        sweep(str(base), {"description": ["a"]}, tmp_path / "sw", runner=crashing, retries=2, metrics=["mse"], progress=False)
    assert calls == ["description=a__seed0"] * 3  # 1 + retries: only a NaN/inf loss is known to recur


def test_a_sweep_marks_runs_whose_generated_cells_left_the_data_range(tmp_path, capsys):
    """Training went well, sampling diverged (a briefly trained noise-predicting diffusion: mse 34 where flow matching had
    0.009): the evaluation's note reached the run's summary only, and the sweep's table showed the variant unmarked."""
    from distgen.evaluation.io import generated_range_note

    note = generated_range_note(np.array([[0.0, 410.8]]), np.array([[0.0, 4.885]]))
    assert note is not None

    def runner(config, run, run_dir):
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "mse"])
            for p in range(6):
                w.writerow([f"P{p}", 1.0 + p / 10 + (30 if "noise" in run.variant else 0)])
        notes = [f"k562: {note}"] if "noise" in run.variant else ["data.filter kept 10 of 12 cells"]
        (run_dir / "eval" / "summary.json").write_text(json.dumps({"training_diverged": None, "notes": notes}))
        return 0

    base = save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml")
    res = sweep(str(base), {"description": ["x0", "noise"], "train.seed": [0, 1]}, tmp_path / "sw", runner=runner,
                metrics=["mse"], progress=False)
    assert sorted(res.diverged) == ["description=noise__seed0", "description=noise__seed1"]
    assert res.diverged["description=noise__seed0"]["generation"] == f"k562: {note}"
    text = (tmp_path / "sw" / "summary.md").read_text()
    assert "| description=noise (DIVERGED: 2 of 2 seeds) | 2 |" in text and "| description=x0 | 2 |" in text
    assert "generation: k562: the model's predictions reach 410.8" in text
    assert "run description=noise__seed1: k562: the model's predictions reach 410.8" in capsys.readouterr().err
    page = (tmp_path / "sw" / "report.html").read_text()
    assert "description=noise (DIVERGED: 2 of 2 seeds)" in page and "generation: k562: the model&#x27;s predictions" in page
