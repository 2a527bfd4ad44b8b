"""Calibrated scores: the ceiling over several half-splits (its band), bootstrap intervals, paired Wilcoxon tests."""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.suite import MetricTable
from distgen.evaluation.uncertainty import band, bootstrap_ci, mean_table, paired_test
from distgen.types import Cells

METRICS = ["mse", "pearson_delta"]


def _population(seed, n_perts=12, shift=0.0, noise=0.3):
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(99).normal(0, 1.0, (n_perts, 10))
    rows, conds = [rng.normal(1.0, noise, (80, 10))], ["control"] * 80
    for p in range(n_perts):
        rows.append(rng.normal(1.0 + effects[p] + shift, noise, (20, 10)))
        conds += [f"P{p}"] * 20
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, [f"g{i}" for i in range(10)])


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_perturbations():
    rng = np.random.default_rng(0)
    few, many = rng.normal(2.0, 1.0, 10), rng.normal(2.0, 1.0, 400)
    lo, hi = bootstrap_ci(few, seed=1)
    assert lo < few.mean() < hi and bootstrap_ci(few, seed=1) == (lo, hi)
    lo2, hi2 = bootstrap_ci(many, seed=1)
    assert hi2 - lo2 < (hi - lo) / 3
    assert bootstrap_ci([1.0, math.nan, 3.0, math.nan], seed=0)[0] >= 1.0  # NaNs dropped
    assert all(math.isnan(v) for v in bootstrap_ci([1.0, math.nan]))


def test_paired_wilcoxon_on_known_differences():
    a = np.arange(10, dtype=float)
    out = paired_test(a + 1.0 + 0.01 * a, a)  # ten positive differences, all distinct
    assert out["n"] == 10 and out["mean_difference"] == pytest.approx(1.045)
    assert out["wilcoxon_p"] == pytest.approx(2 / 2**10)  # exact two-sided: only the all-positive sign pattern is as extreme
    same = paired_test(a, a)
    assert math.isnan(same["wilcoxon_p"]) and "0" in same["note"]
    nan_pairs = paired_test([1.0, math.nan, 2.0], [0.0, 1.0, math.nan])
    assert nan_pairs["n"] == 1 and math.isnan(nan_pairs["wilcoxon_p"])
    with pytest.raises(ValueError, match="same perturbations"):
        paired_test([1.0, 2.0], [1.0])


def test_mean_table_and_band():
    t1 = MetricTable(perts=("a", "b"), values={"m": [1.0, math.nan]})
    t2 = MetricTable(perts=("a", "b"), values={"m": [3.0, 4.0]})
    assert mean_table([t1, t2]).values["m"] == [2.0, 4.0]
    b = band([t1, t2], "m")
    # each split's mean over the perturbations defined in every split ("a"): 1 and 3, not 1 and 3.5 (b entering one mean)
    assert (b["min"], b["max"], b["n_splits"], b["n_rows"]) == (1.0, 3.0, 2, 1) and b["mean"] == pytest.approx(2.0)
    assert "1 perturbation(s) defined in some splits only" in b["note"]
    same = band([t2, t2], "m")
    assert same["std"] == 0.0 and "no spread measured" in same["note"]


def test_score_reports_a_ceiling_band_over_splits_and_tests_against_the_strongest_baseline():
    truth, pred = _population(0), _population(1, shift=0.15)
    ref = {"control": Cells(torch.cat([truth.controls().X[:20].repeat(12, 1), truth.controls().X]),
                            [f"P{p}" for p in range(12) for _ in range(20)] + ["control"] * 80, truth.genes)}
    one = score(pred, truth, ref, metrics=METRICS, ceiling_splits=1)
    rep = score(pred, truth, ref, metrics=METRICS, ceiling_splits=4)
    assert rep.summary["ceiling_splits"] == 4 and rep.summary["reference_roles"] == {"control": "negative", "ceiling": "positive"}
    for m in METRICS:
        row = rep.metrics[m]
        b = row["ceiling_band"]
        assert b["n_splits"] == 4 and b["min"] <= row["ceiling"] <= b["max"] and b["max"] > b["min"]
        assert b["min"] <= one.metrics[m]["ceiling"] <= b["max"]  # the single split (split 0) is one of the four
        lo, hi = row["model_ci"]
        assert lo <= row["model"] <= hi
        test = row["vs_strongest_baseline"]
        assert test["baseline"] == "control" and test["n"] == 12
        assert test["better"] is True and test["wilcoxon_p"] < 0.01  # the model beats "no change" on every perturbation here
    # the per-perturbation ceiling table is the mean over splits: split 0 is the single-split ceiling
    assert rep.ceiling.values["mse"] != one.ceiling.values["mse"]
    with pytest.raises(ValueError, match="ceiling_splits"):
        score(pred, truth, metrics=METRICS, ceiling_splits=0)


def test_summary_md_has_the_uncertainty_table(tmp_path):
    truth, pred = _population(0, n_perts=4), _population(1, n_perts=4)
    summary = score(pred, truth, metrics=METRICS, ceiling_splits=2).write(tmp_path, make_plots=False)
    text = (tmp_path / "summary.md").read_text()
    assert "## Uncertainty (2 ceiling splits" in text and "ceiling (positive)" in text
    assert summary["metrics"]["mse"]["ceiling_band"]["n_splits"] == 2
