"""Calibrated scores: the ceiling over several half-splits (its band), bootstrap intervals, paired Wilcoxon tests."""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.intervals import bootstrap_ci
from distgen.evaluation.suite import MetricTable
from distgen.evaluation.uncertainty import band, mean_table, paired_test
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
    assert bootstrap_ci([1.0, math.nan, 3.0, math.nan], seed=0) == bootstrap_ci([1.0, 3.0], seed=0)  # NaNs dropped
    # two values: half the resamples have no spread, so the bootstrap-t has infinite bounds; the Student t interval
    # instead: 2 +- t(0.975, df 1) * 1 (sd sqrt(2), se 1) = 2 +- 12.706
    assert bootstrap_ci([1.0, 3.0]) == pytest.approx((2 - 12.7062, 2 + 12.7062), abs=1e-3)
    assert bootstrap_ci([0.1] * 7) == pytest.approx((0.1, 0.1))  # no spread at all: the mean itself
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


def _percentile_ci(v, n_boot=1000, seed=0):
    """The percentile bootstrap interval distgen reported before (kept here to show what the studentized one fixes)."""
    means = v[np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))].mean(1)
    return np.quantile(means, [0.025, 0.975])


def test_bootstrap_interval_covers_the_true_mean_at_its_nominal_level_with_few_perturbations():
    # 10 perturbations of N(0, 1) scores, 1,000 seeded repetitions: a 95% interval of the mean must cover 0 about 95% of
    # the time (binomial sd 0.7%). The percentile bootstrap covered 89-90% here (too narrow: a normal quantile where a
    # t quantile belongs, and a variance shrunk by (n - 1) / n); the studentized bootstrap covers 94-95%.
    rng = np.random.default_rng(11)
    samples = [rng.normal(0.0, 1.0, 10) for _ in range(1000)]
    cover = np.mean([lo <= 0.0 <= hi for lo, hi in (bootstrap_ci(v, seed=i) for i, v in enumerate(samples))])
    old = np.mean([lo <= 0.0 <= hi for lo, hi in (_percentile_ci(v, seed=i) for i, v in enumerate(samples))])
    assert old <= 0.91  # the miscalibration this guards against, on the same draws
    assert 0.93 <= cover <= 0.97
    # skewed scores (an error metric across perturbations is right-skewed), 25 perturbations: 90-92% (percentile 86-88%)
    skewed = [rng.lognormal(0.0, 1.0, 25) for _ in range(400)]
    cover = np.mean([lo <= math.exp(0.5) <= hi for lo, hi in (bootstrap_ci(v, seed=i) for i, v in enumerate(skewed))])
    old = np.mean([lo <= math.exp(0.5) <= hi for lo, hi in (_percentile_ci(v, seed=i) for i, v in enumerate(skewed))])
    assert cover >= 0.89 and cover >= old + 0.02


def test_paired_wilcoxon_rejects_at_its_nominal_rate_under_the_null_and_finds_a_clear_difference():
    # two equally good models: per-perturbation scores of independent draws (25 perturbations, as papalexi's panel);
    # 400 seeded comparisons: the false-positive rate at alpha 0.05 must lie within binomial error of 5% (sd 1.1%)
    rng = np.random.default_rng(12)
    p = [paired_test(rng.standard_t(3, 25), rng.standard_t(3, 25), n_boot=50, seed=i)["wilcoxon_p"] for i in range(400)]
    assert 0.025 <= np.mean(np.array(p) < 0.05) <= 0.075
    # one model better: paired differences of mean 0.8 sd on 25 perturbations (power about 98%)
    p = [paired_test(rng.normal(0.8, 1, 25), np.zeros(25), n_boot=50)["wilcoxon_p"] for _ in range(100)]
    assert np.mean(np.array(p) < 0.05) >= 0.9


def test_no_winner_when_the_signed_ranks_and_the_mean_difference_point_opposite_ways():
    from distgen.evaluation.uncertainty import verdict

    # A is better on 27 of 30 perturbations by 0.1 and worse on 3 by 2.0: the Wilcoxon test rejects (p = 0.001) for A,
    # the mean difference (-0.11) favours B. Before, the verdict named B the winner "at p < 0.05" on evidence for A.
    d = np.array([0.1] * 27 + [-2.0] * 3)
    test = paired_test(d, np.zeros_like(d))
    assert test["wilcoxon_p"] < 0.01 and test["mean_difference"] < 0 and test["rank_direction"] == 1
    assert "27 of 30" in test["note"]
    assert verdict(test, True, 0.01, 0.05) == ("inconclusive", None)
    # when they agree the winner stands
    agree = paired_test(np.abs(d), np.zeros_like(d))
    assert agree["rank_direction"] == 1 and verdict(agree, True, 0.01, 0.05) == ("a", "a")


def test_intervals_do_not_depend_on_the_order_of_the_perturbations():
    # the values come in the perturbations' label order, which renaming changes: resampled by index, the upper bound of
    # 20 lognormal values ranged over 1.72-1.86 (15% of the width) across orders; drawn from the sorted values, one interval
    rng = np.random.default_rng(0)
    v, w = rng.lognormal(size=20), rng.lognormal(size=20)
    assert len({bootstrap_ci(v[p], seed=3) for p in (rng.permutation(20) for _ in range(10))}) == 1
    first = paired_test(v, w, seed=3)
    for _ in range(5):
        p = rng.permutation(20)
        again = paired_test(v[p], w[p], seed=3)
        assert again["ci"] == first["ci"] and again["wilcoxon_p"] == pytest.approx(first["wilcoxon_p"], rel=1e-12)


def _exact_signed_rank_p(d: list[float]) -> float:
    """Two-sided exact Wilcoxon p of the nonzero ``d`` (distinct magnitudes) by enumerating every sign assignment."""
    import itertools

    nz = [x for x in d if x != 0]
    ranks = {abs(x): r + 1 for r, x in enumerate(sorted(nz, key=abs))}
    t_plus = sum(ranks[abs(x)] for x in nz if x > 0)
    total = len(nz) * (len(nz) + 1) / 2
    observed = min(t_plus, total - t_plus)
    sums = [sum(r for r, s in zip(ranks.values(), signs) if s) for signs in itertools.product((0, 1), repeat=len(nz))]
    return min(1.0, 2 * sum(t <= observed for t in sums) / len(sums))  # T+ is symmetric about total / 2


@pytest.mark.parametrize("d", [[0.0, 0.0, 0.0, 0.1], [0.0, 0.3, -0.1, 0.2, 0.0, 0.0], [0.5, 0.0, 0.2, 0.4, -0.1]])
def test_wilcoxon_p_with_zero_differences_is_the_exact_p_of_the_nonzero_ones(d):
    """Zero differences are dropped (zero_method "wilcox") and the exact p of the rest is given, under every scipy:
    scipy 1.12 turned to the normal approximation whenever a zero was present (p 0.32 for the first case, not 1)."""
    out = paired_test(d, [0.0] * len(d))
    assert out["wilcoxon_p"] == pytest.approx(_exact_signed_rank_p(d))


@pytest.mark.parametrize("n", [2, 5, 9, 13])
def test_tied_differences_get_scipys_exact_permutation_p_computed_by_convolution(n):
    """A discrete metric's differences tie: scipy 1.17 then enumerates all 2**n sign patterns (1.6 s per test at n = 13,
    once per metric and pair of models). ``signed_rank`` builds the same null distribution by convolution: the p-value and
    statistic equal scipy.stats.permutation_test's over the positive rank sum (the definition, on any scipy) and, on
    scipy >= 1.13, ``wilcoxon``'s own, exactly."""
    import scipy
    from scipy.stats import permutation_test, rankdata, wilcoxon

    from distgen.evaluation.intervals import signed_rank

    rng = np.random.default_rng(n)
    for _ in range(8 if n < 12 else 2):  # scipy's own enumeration (the reference) takes ~1.6 s at 13
        d = rng.integers(1, 4, n).astype(float) * rng.choice([-1.0, 1.0], n) * 0.1
        if np.unique(np.abs(d)).size == d.size:
            d[1] = -d[0]  # a tie, so the convolution path is the one tested
        ranks = rankdata(np.abs(d))
        reference = permutation_test((d,), lambda x, axis: np.sum(rankdata(np.abs(x), axis=axis) * (x > 0), axis=axis), permutation_type="samples",
                                     alternative="two-sided", n_resamples=np.inf, vectorized=True).pvalue
        got = signed_rank(d)
        assert got.pvalue == pytest.approx(reference, rel=1e-12, abs=0)
        assert got.statistic == min(ranks[d > 0].sum(), ranks[d < 0].sum())
        if tuple(int(x) for x in scipy.__version__.split(".")[:2]) >= (1, 13):
            scipys = wilcoxon(d)
            assert got.pvalue == scipys.pvalue and got.statistic == scipys.statistic


def test_one_huge_difference_beside_tiny_ones_gets_a_finite_interval_about_its_mean():
    """One perturbation's difference at 1e52, the others 1e-9 apart: the resamples without it had a se* of 1e-10 against a
    mean shift of 1e51 (a spread within the rounding of that mean), t* of 1e61, and ``distgen compare`` printed the interval
    [-1.1e51, 1.1e121] (comparison round, left over). Such a resample counts as one without spread, and the interval falls
    back to Student t, as for nearly constant values."""
    from scipy.stats import t as student

    d = np.array([1e52] + [1e-9 * i for i in range(1, 9)])
    lo, hi = bootstrap_ci(d)
    assert math.isfinite(lo) and math.isfinite(hi)
    half = float(student.ppf(0.975, d.size - 1)) * d.std(ddof=1) / math.sqrt(d.size)
    assert lo == pytest.approx(d.mean() - half) and hi == pytest.approx(d.mean() + half)  # was hi ~ 2e111
    res = paired_test(d + 1.0, np.ones_like(d))
    assert all(math.isfinite(x) and abs(x) < 1e53 for x in res["ci"])
