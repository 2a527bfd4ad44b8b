"""CPU budgets: ``train.minutes`` stops training (checkpoint written, recorded), the time estimate is printed,
and ``predict.max_cells_per_condition`` / ``--max-cells`` generate and score fewer cells per condition."""

import argparse
import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from distgen.cli import main
from distgen.config import ConfigError
from distgen.data.prepared import Dataset
from distgen.pipeline.predict import predict_section
from distgen.train.run import train_model

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"]}
MODEL = {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
         "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}}
TRAIN = {"steps": 50, "sets_per_batch": 2, "progress": False, "log_every": 1, "checkpoint_every": 1000}


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory):
    """Log-scale cells: control and 3 perturbations x 2 cell types, 30 cells per group."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(10)]
    rows, xs = [], []
    for k, cond in enumerate(("control", "A", "B", "C")):
        for ct in ("t1", "t2"):
            x = rng.gamma(2.0, 0.5, (30, len(genes)))
            if k:
                x[:, k] += 1.5
            xs.append(x)
            rows += [(cond, ct)] * 30
    obs = pd.DataFrame(rows, columns=["condition", "cell_type"], index=[f"c{i}" for i in range(len(rows))])
    path = tmp_path_factory.mktemp("budget") / "tiny.h5ad"
    ad.AnnData(np.log1p(np.concatenate(xs)).astype(np.float32), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return str(path)


def _data(h5ad):
    return {"dataset": h5ad, "schema": SCHEMA, "split": {"kind": "held_out_context", "seed": 0, "test_contexts": ["t2"]}, "set_size": 8}


def test_a_minute_budget_stops_training_writes_a_checkpoint_and_records_it(h5ad, tmp_path, capsys):
    doc = {"model": MODEL, "data": _data(h5ad), "train": {**TRAIN, "minutes": 1e-6}}
    run = train_model(doc, tmp_path / "run")
    assert run.result.stopped_by_budget and not run.result.stopped_early
    assert run.result.step == 1  # one step always runs, then the (tiny) budget is spent
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000001"
    rec = json.loads((tmp_path / "run" / "manifest.json").read_text())["training"]
    assert rec["stopped_by_budget"] is True and rec["steps_done"] == 1 and rec["steps"] == 50 and rec["minutes"] == 1e-6
    assert any("train.minutes" in n for n in run.notes)
    assert "ran out at step 1 of 50" in capsys.readouterr().err


def test_the_estimate_is_printed_after_the_first_steps_and_a_large_budget_changes_nothing(h5ad, tmp_path, capsys):
    doc = {"model": MODEL, "data": _data(h5ad), "train": {**TRAIN, "steps": 6, "minutes": 60}}
    run = train_model(doc, tmp_path / "run")
    assert run.result.step == 6 and not run.result.stopped_by_budget
    assert run.result.estimate_s is not None and run.result.estimate_s >= 0
    err = capsys.readouterr().err
    assert "s/step, 3 more steps: about" in err
    rec = json.loads((tmp_path / "run" / "manifest.json").read_text())["training"]
    assert rec["steps_done"] == 6 and rec["stopped_by_budget"] is False
    # distgen predict --max-cells: the prediction and the truth written with it hold the same number of cells per group
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    assert main(["predict", str(tmp_path / "run"), "--out", str(pred), "--real", str(real), "--max-cells", "5"]) == 0
    for path in (pred, real):
        obs = ad.read_h5ad(path).obs
        sizes = obs[obs["target"] != "non-targeting"].groupby("target", observed=True).size()
        assert set(sizes.tolist()) == {5}, sizes


def test_max_cells_caps_the_prediction_its_truth_and_the_references(h5ad, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "mean_perturbation"}, "data": _data(h5ad)}))
    out = tmp_path / "exp"
    assert main(["run", str(cfg), "--out", str(out), "--max-cells", "7", "--metrics", "mse", "--no-plots", "--no-progress"]) == 0
    pred, real = ad.read_h5ad(out / "pred.h5ad"), ad.read_h5ad(out / "real.h5ad")
    for a in (pred, real):
        counts = a.obs[~a.obs["target"].isin(["non-targeting", "control"])].groupby(["target", "celltype"], observed=True).size()
        assert set(counts.tolist()) == {7}, counts  # 30 real cells per group, capped at 7
    calib = pd.read_csv(out / "eval" / "calibration.csv")
    assert set(calib["source"]) >= {"control", "ceiling"}
    notes = json.loads((out / "eval" / "summary.json").read_text())["notes"]
    assert any(n.startswith("at most 7 cells per held-out group") for n in notes)
    metrics = pd.read_csv(out / "eval" / "metrics.csv")
    assert set(metrics["n_cells_real"]) == {7} and set(metrics["n_cells_pred"]) == {7}
    # the same fixed subset every time: the capped truth is a subset of the full one, stable across loads
    ds = Dataset.load(_data(h5ad))
    a, b = ds.capped(7).groups("test"), ds.capped(7).groups("test")
    full = ds.groups("test")
    for ga, gb, gf in zip(a, b, full):
        assert np.array_equal(ga.cells, gb.cells) and set(ga.cells) <= set(gf.cells) and len(gf.cells) == 30
    assert [len(g.cells) for g in ds.capped(100).groups("test")] == [len(g.cells) for g in full] == [30, 30, 30]


@pytest.mark.parametrize(("section", "message"), [
    ({"max_cells_per_condition": 0}, "integer >= 1, null or .all."),
    ({"max_cells_per_condition": "many"}, "integer >= 1, null or .all."),
    ({"max_cell": 10}, "unknown key\\(s\\) \\['max_cell'\\]"),
])
def test_bad_predict_section(section, message):
    with pytest.raises(ConfigError, match=message):
        predict_section({"predict": section})


def test_bad_minutes():
    from distgen.train.options import train_options

    with pytest.raises(ConfigError, match=r"train\.minutes must be > 0"):
        train_options({"minutes": 0})


def test_default_cap_is_500_and_null_or_all_lifts_it():
    from distgen.commands.argtypes import max_cells_arg
    from distgen.pipeline.predict import DEFAULT_MAX_CELLS

    assert predict_section({})["max_cells_per_condition"] == DEFAULT_MAX_CELLS == 500
    assert predict_section({"predict": {"max_cells_per_condition": None}})["max_cells_per_condition"] is None
    assert predict_section({"predict": {"max_cells_per_condition": "all"}})["max_cells_per_condition"] is None
    assert max_cells_arg("all") == "all" and max_cells_arg("12") == 12
    for bad in ("0", "-3", "many"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer or 'all'"):
            max_cells_arg(bad)
