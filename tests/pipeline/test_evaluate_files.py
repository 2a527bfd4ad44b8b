"""``distgen evaluate`` from files with cell types: file -> Cells -> baselines fitted with the cell types -> score per type."""

import csv
import json

import numpy as np
import torch

from distgen.cli import main
from distgen.data import layout
from distgen.types import Cells


def _cells(seed, shift=0.0):
    rng = np.random.default_rng(seed)
    rows, conds, ctxs = [], [], []
    for ctx, level in (("A", 0.5), ("B", 3.0)):
        for cond, eff in (("control", 0.0), ("P", 1.0), ("Q", -0.3)):
            rows.append(rng.normal(level + eff + (shift if cond != "control" else 0.0), 0.2, (20, 6)).clip(0))
            conds += [cond] * 20
            ctxs += [ctx] * 20
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, [f"g{i}" for i in range(6)], ctxs)


def test_cell_types_in_files_are_scored_one_by_one_and_fit_the_baselines(tmp_path, capsys):
    paths = {}
    for name, cells in (("real", _cells(0)), ("pred", _cells(1, 0.1)), ("train", _cells(2))):
        paths[name] = str(tmp_path / f"{name}.h5ad")
        layout.write(cells, paths[name], name)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--pred", paths["pred"], "--real", paths["real"], "--train", paths["train"], "--out", str(out),
               "--metrics", "mse,pearson_delta", "--baselines", "control,additive", "--no-plots", "--quiet", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["contexts"] == ["A", "B"] and summary["n_perturbations"] == 4
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["perturbation"], r["context"]) for r in rows] == [("P @ A", "A"), ("Q @ A", "A"), ("P @ B", "B"), ("Q @ B", "B")]
    # the additive baseline learnt each type's own effect from the training file: near the truth in both types
    assert summary["metrics"]["mse"]["baselines"]["additive"] < 0.02 < summary["metrics"]["mse"]["baselines"]["control"]
    assert main(["evaluate", "--pred", paths["pred"], "--real", paths["real"], "--out", str(tmp_path / "pooled"),
                 "--metrics", "mse", "--baselines", "control", "--no-plots", "--quiet", "--pool-contexts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_perturbations"] == 2


def test_a_diverged_prediction_distgen_wrote_is_scored_with_a_note_while_a_foreign_file_is_refused(tmp_path):
    # a badly trained model's log-space output beyond the log range is its divergence, not a file on another scale
    import anndata as ad
    import pytest

    import distgen
    from distgen.evaluation.io import ScaleMismatchError

    real = _cells(0)
    wild = real.X.clone()
    wild[~real.is_control] += 25.3  # fractional values far above log1p range on the perturbed rows
    pred = Cells(wild, real.conditions.tolist(), real.genes, real.contexts.tolist())
    layout.write(real, tmp_path / "real.h5ad", "real")
    layout.write(pred, tmp_path / "pred.h5ad", "pred")
    report = distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), metric_names=["mse"], baselines=["control"])
    assert any("diverge" in n for n in report.summary["notes"])
    foreign = ad.read_h5ad(tmp_path / "pred.h5ad")
    foreign.uns.pop("distgen")
    foreign.write_h5ad(tmp_path / "foreign.h5ad")
    with pytest.raises(ScaleMismatchError, match="normalised but not log-transformed"):
        distgen.evaluate(str(tmp_path / "foreign.h5ad"), str(tmp_path / "real.h5ad"), metric_names=["mse"], baselines=["control"])


def _strict(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_printed_by_evaluate_is_strict_json_like_summary_json(tmp_path, capsys):
    """The control baseline's pearson_delta is NaN: --json printed the token NaN (jq and JavaScript refuse it) where
    summary.json holds null."""
    paths = {}
    for name, cells in (("real", _cells(0)), ("pred", _cells(1, 0.1))):
        paths[name] = str(tmp_path / f"{name}.h5ad")
        layout.write(cells, paths[name], name)
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", paths["pred"], "--real", paths["real"], "--out", str(out), "--metrics", "mse,pearson_delta",
                 "--baselines", "control", "--no-plots", "--quiet", "--pool-contexts", "--json"]) == 0
    printed = _strict(capsys.readouterr().out)
    assert printed["metrics"]["pearson_delta"]["baselines"]["control"] is None
    saved = _strict((out / "summary.json").read_text())
    assert printed["metrics"] == saved["metrics"]
    assert main(["evaluate", "--pred", paths["pred"], "--real", paths["real"], "--out", str(tmp_path / "profile"),
                 "--profile", "distgen", "--quiet", "--json"]) == 0
    _strict(capsys.readouterr().out)
