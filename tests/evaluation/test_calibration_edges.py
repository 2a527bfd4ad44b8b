"""The calibrated scores at their edges: too few cells to split, a baseline equal to the ceiling, diagnostics, verdicts."""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.calibration import ceiling_data, normalised, summarise
from distgen.evaluation.io import eval_data
from distgen.evaluation.strata import saturation
from distgen.evaluation.suite import MetricTable
from distgen.evaluation.uncertainty import margin, min_pairs, paired_test, verdict
from distgen.types import Cells

GENES = [f"g{i}" for i in range(10)]


def _population(seed, counts, scale=1.0, noise=0.3):
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(99).normal(0, 1.0, (len(counts), len(GENES)))
    rows, conds = [rng.normal(1.0, noise, (80, len(GENES)))], ["control"] * 80
    for p, n in enumerate(counts):
        rows.append(rng.normal(1.0 + scale * effects[p], noise, (n, len(GENES))))
        conds += [f"P{p}"] * n
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, GENES)


def test_a_perturbation_too_small_to_split_is_named_with_the_reason():
    truth = _population(0, [20, 20, 3, 2])
    data = eval_data(_population(1, [20, 20, 20, 20]), truth)
    half = ceiling_data(data, seed=0)
    assert half.invalid[2] == "3 real cell(s): a half-split leaves 1 per half; the ceiling needs at least 4 real cells (2 per half)"
    assert half.invalid[3].startswith("2 real cell(s): a half-split leaves 1 per half")  # was "only 1 real cell(s)", of a file with 2
    assert 0 not in half.invalid and 1 not in half.invalid


def _with_controls(cells, n_ctrl):
    keep = np.flatnonzero(~np.asarray(cells.is_control))
    ctrl = np.flatnonzero(np.asarray(cells.is_control))[:n_ctrl]
    rows = np.concatenate([ctrl, keep])
    return Cells(cells.X[torch.as_tensor(rows)], [cells.conditions[i] for i in rows], GENES)


@pytest.mark.parametrize("n_ctrl", [2, 3])
def test_a_ceiling_from_one_control_cell_per_half_is_refused_for_every_perturbation(n_ctrl):
    """2-3 real controls pass the evaluation (>= 2) but leave one per half: each half's deltas would come from one cell."""
    truth = _with_controls(_population(0, [20, 20]), n_ctrl)
    data = eval_data(_with_controls(_population(1, [20, 20]), 5), truth)
    half = ceiling_data(data, seed=0)
    assert set(half.invalid) == {0, 1}
    assert half.invalid[0].startswith(f"{n_ctrl} real control cells: a half-split leaves 1 per half; the ceiling needs at least 4")
    rep = score(_with_controls(_population(1, [20, 20]), 5), truth, {"control": _with_controls(_population(3, [20, 20], scale=0.0), 5)},
                metrics=["mse"], ceiling_splits=2)
    row = rep.metrics["mse"]
    assert math.isnan(row["ceiling"]) and math.isnan(row["normalised"])
    assert "ceiling undefined" in row["normalised_note"] and f"{n_ctrl} real control cells" in row["normalised_note"]
    assert not math.isnan(row["model"])  # the model itself is still scored (its file's 2-3 controls pass the evaluation)


def test_four_control_cells_give_a_ceiling():
    truth = _with_controls(_population(0, [20, 20]), 4)
    half = ceiling_data(eval_data(_with_controls(_population(1, [20, 20]), 5), truth), seed=0)
    assert half.invalid == {}


def _table(perts, values, reasons=None):
    return MetricTable(perts=tuple(perts), values={"mse": list(values)}, reasons={"mse": dict(reasons or {})})


def test_the_normalised_score_takes_its_three_means_over_the_same_perturbations():
    perts = ["A", "B", "C"]
    # C: a hard perturbation (model 10, baseline 20) too small for a half-split, so the ceiling has no value there
    model = _table(perts, [1.0, 1.0, 10.0])
    base = _table(perts, [2.0, 2.0, 20.0])
    ceil = _table(perts, [0.0, 0.0, math.nan], {"C": "3 real cell(s): a half-split leaves 1 per half"})
    row = summarise(model, {"mean": base}, ceil)["mse"]
    # over A and B: (1 - 2) / (0 - 2) = 0.5 (the old mix, means over A, B, C against a ceiling over A, B, happens to agree here)
    assert row["normalised"] == pytest.approx(0.5) and row["normalised_note"] == ""
    assert row["normalised_rows"] == {"n": 2, "model": 1.0, "baseline": 2.0, "ceiling": 0.0,
                                      "left_out": {"C": "ceiling: 3 real cell(s): a half-split leaves 1 per half"}}
    assert row["model"] == pytest.approx(4.0) and row["baselines"]["mean"] == pytest.approx(8.0)  # the reported means are unchanged
    model2 = _table(perts, [1.0, 1.0, 40.0])  # the model is far worse than the baseline on C
    row = summarise(model2, {"mean": base}, ceil)["mse"]
    assert row["normalised"] == pytest.approx(0.5)  # C has no ceiling: it cannot enter a score scaled by the ceiling
    # before: (mean(1, 1, 40) - mean(2, 2, 20)) / (0 - 8) = (14 - 8) / -8 = -0.75, "worse than the baseline", from C alone
    # the rows are matched by perturbation, not by position: a baseline table in another order gives the same score
    shuffled = MetricTable(perts=("C", "B", "A"), values={"mse": [20.0, 2.0, 2.0]}, reasons={"mse": {}})
    assert summarise(model2, {"mean": shuffled}, ceil)["mse"]["normalised"] == pytest.approx(0.5)


def test_summary_md_lists_the_perturbations_left_out_of_the_normalised_score(tmp_path):
    truth = _population(0, [20] * 6 + [3])
    pred = _population(1, [20] * 7, scale=1.2)
    base = _population(2, [20] * 7, scale=0.0)
    rep = score(pred, truth, {"control": base}, metrics=["mse"], ceiling_splits=2)
    row = rep.metrics["mse"]
    assert row["normalised_rows"]["n"] == 6 and list(row["normalised_rows"]["left_out"]) == ["P6"]
    c = row["normalised_rows"]
    assert row["normalised"] == pytest.approx((c["model"] - c["baseline"]) / (c["ceiling"] - c["baseline"]))
    rep.write(tmp_path, make_plots=False)
    md = (tmp_path / "summary.md").read_text()
    assert "## Normalised over fewer perturbations" in md and "P6 (ceiling: 3 real cell(s)" in md


def test_a_ceiling_equal_to_the_baseline_up_to_rounding_gives_no_score():
    b = 12345.678  # an E-distance or a count of genes: a rounding gap is far above 1e-12 in absolute terms
    c = float(np.nextafter(np.nextafter(b, 0), 0))  # two units in the last place below (a lower-is-better metric)
    score_, why = normalised(12000.0, b, c)
    assert math.isnan(score_) and "equals the baseline up to rounding" in why  # was -9.4e13
    assert math.isnan(normalised(0.3, 0.5, 0.5)[0])
    assert normalised(0.3, 0.5, 0.1)[0] == pytest.approx(0.5)
    assert math.isnan(saturation([12000.0], [b], [c])[0])  # the strata's control-to-ceiling range, the same rule
    assert saturation([6.0], [10.0], [2.0]) == [0.5]


def test_a_diagnostic_gets_no_strongest_baseline_and_no_normalised_score():
    t = MetricTable(perts=("A", "B"), values={"de_wilcoxon_nsig_counts_pred": [10.0, 12.0]}, reasons={})
    hi = MetricTable(perts=("A", "B"), values={"de_wilcoxon_nsig_counts_pred": [50.0, 60.0]}, reasons={})
    lo = MetricTable(perts=("A", "B"), values={"de_wilcoxon_nsig_counts_pred": [1.0, 2.0]}, reasons={})
    row = summarise(t, {"mean": lo}, hi)["de_wilcoxon_nsig_counts_pred"]
    assert row["diagnostic"] is True and row["strongest_baseline"] is None and math.isnan(row["normalised"])
    assert "diagnostic" in row["normalised_note"]


def test_verdict_rules():
    def test(d, lo, hi, p, n=10):
        return {"mean_difference": d, "ci": [lo, hi], "wilcoxon_p": p, "n": n}

    assert verdict(test(0.5, 0.3, 0.7, 0.001), True, 0.1, 0.05) == ("a", "a")
    assert verdict(test(0.5, 0.3, 0.7, 0.001), False, 0.1, 0.05) == ("b", "b")
    assert verdict(test(0.5, 0.3, 0.7, 0.001), None, 0.1, 0.05) == ("no direction", None)
    # significant and below the margin by its estimate, but the interval reaches past it: not shown negligible
    assert verdict(test(0.05, 0.04, 0.2, 0.001), True, 0.1, 0.05) == ("inconclusive", None)
    assert verdict(test(0.05, 0.04, 0.09, 0.001), True, 0.1, 0.05) == ("negligible", None)  # ... and shown: CI inside
    assert verdict(test(0.01, -0.05, 0.08, 0.6), True, 0.1, 0.05) == ("negligible", None)  # CI inside +-margin
    assert verdict(test(0.01, -0.05, 0.3, 0.6), True, 0.1, 0.05) == ("inconclusive", None)
    assert verdict(test(math.nan, math.nan, math.nan, math.nan, n=0), True, 0.1, 0.05) == ("no pairs", None)
    # the margin: given > replicate spread > numerical tolerance
    assert margin([0.5, 0.6], noise=0.01, given=0.2) == (0.2, "given")
    assert margin([0.5, 0.6], noise=0.01) == (0.01, "replicate spread")
    assert margin([0.5, 0.6], noise=math.nan) == (pytest.approx(6e-7), "numerical tolerance")
    assert margin([0.5, 0.6], noise=0.0)[1] == "numerical tolerance"  # splits that agree exactly measured no noise
    with pytest.raises(ValueError, match=">= 0"):
        margin([0.5], given=-1.0)
    assert [min_pairs(a) for a in (0.1, 0.05, 0.01)] == [5, 6, 8]


def test_the_paired_test_says_when_it_cannot_reject():
    out = paired_test([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert out["wilcoxon_p"] == pytest.approx(2 / 2**5) and "fewer than 6" in out["note"]
    assert paired_test(np.arange(6.0) + 1, np.arange(6.0))["note"] == ""


def test_the_evaluation_summary_says_whether_the_model_beats_the_baseline_beyond_the_replicate_spread():
    truth = _population(0, [20] * 8)
    close = _population(1, [20] * 8)
    rep = score(close, truth, {"same": _population(2, [20] * 8), "control": _population(3, [20] * 8, scale=0.0)},
                metrics=["mse"], ceiling_splits=3)
    t = rep.metrics["mse"]["vs_strongest_baseline"]
    assert t["baseline"] == "same" and t["margin"] == pytest.approx(rep.metrics["mse"]["ceiling_band"]["std"])
    assert t["margin_source"] == "replicate spread" and t["verdict"] in ("negligible", "inconclusive")  # two draws of the truth
    rep2 = score(close, truth, {"control": _population(3, [20] * 8, scale=0.0)}, metrics=["mse"], ceiling_splits=3)
    assert rep2.metrics["mse"]["vs_strongest_baseline"]["verdict"] == "model"  # far better than no change on every perturbation
