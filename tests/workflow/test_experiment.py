"""`distgen run` end to end on bundled Norman data: a fitted baseline and a tiny trained generator."""

import json

import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.workflow.experiment import is_trainable, run_experiment

DATA = {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 8}
FAST_METRICS = ["mse", "pearson_delta", "discrimination_score_l1"]


def test_is_trainable():
    assert is_trainable({"name": "generator"}) and not is_trainable({"name": "additive"})


def test_fitted_model_experiment(tmp_path):
    summary = run_experiment({"model": {"name": "additive"}, "data": DATA}, tmp_path / "add", progress=False,
                             metrics=FAST_METRICS, plots=False)
    assert summary["n_perturbations"] == 4  # 4 of the 5 pairs of bundled Norman whose singles are both measured
    # the model *is* the additive baseline, fitted on the same training cells; the two differ only in
    # which control cells are drawn, so their scores agree up to that sampling noise
    mse, pd = summary["metrics"]["mse"], summary["metrics"]["pearson_delta"]
    assert mse["model"] == pytest.approx(mse["baselines"]["additive"], rel=0.5)
    assert pd["model"] == pytest.approx(pd["baselines"]["additive"], abs=0.15)
    for f in ("pred.h5ad", "real.h5ad", "train.h5ad", "split.json", "eval/metrics.csv", "eval/summary.md"):
        assert (tmp_path / "add" / f).exists(), f


def test_trained_generator_experiment_via_cli(tmp_path, capsys):
    cfg = save_yaml({
        "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 32, "depth": 1},
                  "dynamics": {"name": "flow_matching", "steps": 3, "solver": "euler"}},
        "data": DATA,
        "train": {"steps": 3, "sets_per_batch": 2, "progress": False},
    }, tmp_path / "tiny.yaml")
    rc = main(["run", str(cfg), "train.seed=1", "--out", str(tmp_path / "gen"), "--metrics", ",".join(FAST_METRICS),
               "--no-plots", "--no-progress", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["metrics"]) == set(FAST_METRICS)
    assert (tmp_path / "gen" / "train" / "checkpoints").is_dir()
    assert "control" in summary["metrics"]["mse"]["baselines"]
