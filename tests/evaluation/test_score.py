"""score(pred, truth, references): per-context scoring against each context's own controls, references next
to the model, the ceiling from the truth, a Report that writes today's files."""

import json
import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.types import Cells

METRICS = ["mse", "pearson_delta", "mse_delta"]


def _population(seed, shift=0.0, noise=0.0):
    """Two contexts with very different control levels; conditions P and Q shift a few genes in both."""
    rng = np.random.default_rng(seed)
    genes = [f"g{i}" for i in range(8)]
    rows, conds, ctxs = [], [], []
    for ctx, level in (("A", 0.5), ("B", 3.0)):
        for cond, effect in (("control", np.zeros(8)), ("P", np.r_[1.0, 1.0, np.zeros(6)]), ("Q", np.r_[np.zeros(6), -0.4, 0.8])):
            n = 30
            x = rng.normal(level + (effect + shift if cond != "control" else 0.0), 0.2 + noise, (n, 8)).clip(0)
            rows.append(x)
            conds += [cond] * n
            ctxs += [ctx] * n
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, genes, ctxs)


def test_each_context_is_scored_on_its_own_against_its_own_controls():
    truth, pred = _population(0), _population(1, noise=0.05)
    rep = score(pred, truth, metrics=METRICS, ceiling=False)
    assert rep.table.perts == ("P @ A", "Q @ A", "P @ B", "Q @ B") and rep.table.info["context"] == ["A", "A", "B", "B"]
    assert rep.summary["n_perturbations"] == 4 and rep.summary["contexts"] == ["A", "B"]
    for ctx in ("A", "B"):  # by definition: the same numbers as scoring that context alone
        alone = score(pred.of_context(ctx), truth.of_context(ctx), metrics=METRICS, ceiling=False)
        for m in METRICS:
            rows = [i for i, c in enumerate(rep.table.info["context"]) if c == ctx]
            assert [rep.table.values[m][i] for i in rows] == alone.table.values[m]
    pooled = score(pred, truth, metrics=METRICS, ceiling=False, by_context=False)
    assert pooled.table.perts == ("P", "Q") and "contexts" not in pooled.summary
    # pooling contexts mixes control levels into the deltas: the same prediction looks different
    assert pooled.metrics["mse_delta"]["model"] != pytest.approx(rep.metrics["mse_delta"]["model"])


def test_references_and_ceiling_sit_next_to_the_model_and_the_report_writes_its_files(tmp_path):
    truth = _population(0)
    good, bad = _population(1, noise=0.02), _population(2, shift=-1.0)
    rep = score(good, truth, {"shifted": bad}, metrics=METRICS, seed=3, notes=["a note"], sources={"pred": "p.h5ad"})
    mse = rep.metrics["mse"]
    assert mse["baselines"]["shifted"] > mse["model"] and mse["ceiling"] < mse["baselines"]["shifted"]
    assert mse["strongest_baseline"] == "shifted" and not math.isnan(mse["normalised"])
    assert list(rep.references) == ["shifted"] and rep.ceiling is not None and rep.ceiling.perts == rep.table.perts
    summary = rep.write(tmp_path / "eval", make_plots=False)
    for f in ("metrics.csv", "calibration.csv", "summary.json", "summary.md"):
        assert (tmp_path / "eval" / f).exists(), f
    saved = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert saved["pred"] == "p.h5ad" and saved["notes"] == ["a note"] and saved["seconds"] == summary["seconds"]
    assert list(saved)[:4] == ["pred", "real", "pert_col", "control"]
    assert "Scored per context: A, B" in (tmp_path / "eval" / "summary.md").read_text()


def test_pairs_that_cannot_be_scored_are_errors_naming_the_problem():
    truth = _population(0)
    for by_context in (True, False):  # a condition the truth lacks in every context is said of the condition
        with pytest.raises(ValueError, match=r"1 perturbation that the truth lacks \('Q'\)"):
            score(_population(1), truth.subset(truth.conditions != "Q"), metrics=METRICS, by_context=by_context)
    # Q in context A only in the truth: a prediction of Q in B is named with its context (the truth does have Q, in A)
    with pytest.raises(ValueError, match=r"1 \(condition, context\) group the truth lacks: \('Q', 'B'\); "):
        score(_population(1), truth.subset(~((truth.conditions == "Q") & (truth.contexts == "B"))), metrics=METRICS)
    # a prediction without any cell of context B: said of the context, not as missing control cells
    with pytest.raises(ValueError, match=r"no cells of 1 context of the truth: 'B'; "):
        score(_population(1).subset(_population(1).contexts == "A"), truth, metrics=METRICS)
    with pytest.raises(ValueError, match=r"groups? the truth lacks: \('P', 'B'\)"):
        score(_population(1), truth.subset((truth.contexts == "A") | truth.is_control), metrics=METRICS)
    with pytest.raises(ValueError, match="no control cells of context 'B'"):
        score(_population(1).subset(~((_population(1).contexts == "B") & _population(1).is_control)), truth, metrics=METRICS)
    reordered = _population(1).with_genes([f"g{i}" for i in reversed(range(8))])
    assert "reordered" in score(reordered, truth, metrics=METRICS, ceiling=False).summary["notes"][0]


def test_a_large_evaluation_says_each_stage_on_stderr(monkeypatch, capsys):
    import importlib

    score_module = importlib.import_module("distgen.evaluation.score")  # the module: the package exports the function

    truth, good, bad = _population(0), _population(1, noise=0.1), _population(2, shift=0.5)
    score(good, truth, {"shifted": bad}, metrics=METRICS, ceiling_splits=2, progress=True)
    assert "scoring" not in capsys.readouterr().err  # small: over before a line would help
    monkeypatch.setattr(score_module, "STAGE_LINES_MIN", 0)
    score(good, truth, {"shifted": bad}, metrics=METRICS, ceiling_splits=2, progress=False)
    assert "scoring" not in capsys.readouterr().err  # --quiet
    score(good, truth, {"shifted": bad}, metrics=METRICS, ceiling_splits=2, progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("scoring ")]
    for ctx in ("A", "B"):  # one line per stage and context, in the order they run
        stages = [ln for ln in lines if f"of context {ctx}" in ln]
        assert [s.split(" of context")[0] for s in stages] == ["scoring the prediction", "scoring baseline shifted", "scoring the ceiling"]
        assert "(1 of 1)" in stages[1] and "(2 splits)" in stages[2] and all(s.endswith("s so far)") for s in stages)
