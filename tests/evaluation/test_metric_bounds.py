"""Intervals of a metric's mean are cut at the range the metric can take (``MetricCapabilities.bounds``).

With 4-5 held-out conditions the studentized bootstrap (or its Student t fallback) reached past a metric's range:
``pearson_delta 0.67 [-9.2, 1.10]`` for five correlations. The true mean of a metric bounded in [-1, 1] lies in
[-1, 1], so the cut never lowers coverage; an unbounded metric, and a plugin that declares no bounds, are unchanged.
"""

import math

import pytest

from distgen.capabilities import CORRELATION, FRACTION, UNBOUNDED, MetricCapabilities
from distgen.evaluation.intervals import _bootstrap_ci, bootstrap_ci, clip_interval, difference_bounds
from distgen.evaluation.metrics import metrics
from distgen.evaluation.metrics.base import Metric
from distgen.evaluation.suite import MetricTable
from distgen.evaluation.uncertainty import calibrate, metric_bounds, paired_test

from .synth import evaluation_folder

#: Five pearson-like values, one far off: the interval reaches below -1 and above 1 uncut.
FIVE = [0.95, 0.9, 0.92, -0.4, 0.97]


def test_the_uncut_interval_leaves_the_range_and_the_cut_one_does_not():
    lo, hi = _bootstrap_ci(FIVE)
    assert lo < -1.0 and hi > 1.0  # the case the report showed: impossible values for a correlation
    cut = bootstrap_ci(FIVE, bounds=CORRELATION)
    assert -1.0 <= cut[0] <= sum(FIVE) / 5 <= cut[1] <= 1.0
    assert cut == (max(lo, -1.0), min(hi, 1.0))  # only cut, never moved inside the range
    # three values: the Student t fallback (no finite bootstrap-t bound) is cut too
    assert _bootstrap_ci([1.0, 1.0, 0.6])[1] > 1.0 and bootstrap_ci([1.0, 1.0, 0.6], bounds=FRACTION)[1] == 1.0
    # a fraction whose interval reaches below 0
    few = [0.02, 0.0, 0.9, 0.01]
    assert _bootstrap_ci(few)[0] < 0.0 and bootstrap_ci(few, bounds=FRACTION)[0] == 0.0


def test_the_cut_covers_the_true_mean_exactly_when_the_uncut_interval_does():
    """Coverage is unchanged: per draw, the cut interval holds the true mean iff the uncut one does (Beta(8, 2) fractions,
    true mean 0.8, 5 and 10 values: 36 of the 300 uncut intervals reach past 1)."""
    import numpy as np

    rng = np.random.default_rng(0)
    reached = 0
    for i in range(300):
        v = rng.beta(8.0, 2.0, 5 if i % 2 else 10)
        lo, hi = _bootstrap_ci(v, n_boot=200, seed=i)
        clo, chi = bootstrap_ci(v, n_boot=200, seed=i, bounds=FRACTION)
        assert clo >= 0.0 and chi <= 1.0
        assert (lo <= 0.8 <= hi) == (clo <= 0.8 <= chi)
        reached += hi > 1.0
    assert reached > 15  # the cut was exercised


def test_without_bounds_the_interval_is_bit_identical():
    for values in (FIVE, [1.0, 3.0], [0.3, -2.0, 5.5, 1.25, 0.0, 7.0], [0.1] * 5):
        raw = _bootstrap_ci(values, seed=3)
        assert bootstrap_ci(values, seed=3) == raw
        assert bootstrap_ci(values, seed=3, bounds=UNBOUNDED) == raw
        assert bootstrap_ci(values, seed=3, bounds=None) == raw
    assert all(math.isnan(v) for v in bootstrap_ci([0.5], bounds=CORRELATION))  # NaN stays NaN


def test_clip_and_difference_bounds():
    assert clip_interval(-3.0, 0.5, (0.0, math.inf)) == (0.0, 0.5)
    assert clip_interval(1.2, 1.5, (-1.0, 1.0)) == (1.0, 1.0)  # wholly outside: onto the nearer bound
    assert difference_bounds(CORRELATION) == (-2.0, 2.0) and difference_bounds(FRACTION) == (-1.0, 1.0)
    assert difference_bounds((0.0, math.inf)) == UNBOUNDED and difference_bounds(None) is None


def test_declared_bounds_of_built_in_metrics():
    assert metric_bounds("pearson_delta") == (-1.0, 1.0) and metric_bounds("discrimination_score_l1") == (0.0, 1.0)
    assert metric_bounds("mse") == (0.0, math.inf) and metric_bounds("r2") == (-math.inf, 1.0)
    # noise-corrected estimators and the unbiased statistics can go below 0: no bound
    for name in ("mmd", "edistance_scperturb", "expr_mse_unbiased", "expr_mse_unbiased_capped", "sinkhorn"):
        assert metric_bounds(name) == UNBOUNDED, name
    assert metric_bounds("not_a_metric") == UNBOUNDED


def test_paired_test_cuts_the_difference_at_the_difference_range():
    a, b = FIVE, [-0.9, -0.85, -0.95, 0.9, -0.9]
    raw = paired_test(a, b)["ci"]
    assert raw[0] < -2.0 and raw[1] > 2.0  # a difference of two correlations lies in [-2, 2]
    cut = paired_test(a, b, bounds=CORRELATION)["ci"]
    assert cut == [-2.0, 2.0]
    assert paired_test(a, b, bounds=UNBOUNDED)["ci"] == raw


class _Unbounded(Metric):
    """A plugin-like metric that declares no bounds (its values are correlations, but it does not say so)."""

    capabilities = MetricCapabilities(higher_is_better=True)

    def compute(self, data):
        raise NotImplementedError


@pytest.fixture
def plugin_metric():
    metrics.add("test_undeclared_bounds", _Unbounded)
    yield "test_undeclared_bounds"
    metrics.unregister("test_undeclared_bounds")


def _rows(names, model, baseline):
    return {n: {"higher_is_better": True, "model": sum(model[n]) / len(model[n]), "baselines": {"b": sum(baseline[n]) / len(baseline[n])},
                "strongest_baseline": "b"} for n in names}


def test_summary_intervals_are_cut_for_a_bounded_metric_only(plugin_metric):
    perts = tuple(f"P{i}" for i in range(5))
    base = [-0.9, -0.85, -0.95, 0.9, -0.9]
    names = ["pearson_delta", plugin_metric]
    model = MetricTable(perts=perts, values={n: list(FIVE) for n in names})
    baseline = MetricTable(perts=perts, values={n: list(base) for n in names})
    rows = _rows(names, model.values, baseline.values)
    calibrate(rows, model, {"b": baseline}, None)
    bounded, plugin = rows["pearson_delta"], rows[plugin_metric]
    assert bounded["model_ci"][0] >= -1.0 and bounded["model_ci"][1] <= 1.0
    assert bounded["vs_strongest_baseline"]["ci"][1] <= 2.0
    # the same values under a metric that declares nothing: exactly the interval as before
    assert plugin["model_ci"] == list(_bootstrap_ci(FIVE)) and plugin["model_ci"][0] < -1.0
    assert plugin["vs_strongest_baseline"]["ci"] == paired_test(FIVE, base)["ci"]




def test_compare_cuts_the_difference_of_a_bounded_metric_and_leaves_an_unbounded_one(tmp_path):
    from distgen.evaluation.compare import compare

    base = [-0.9, -0.85, -0.95, 0.9, -0.9]
    perts = [f"P{i}" for i in range(5)]
    meta = {"pearson_delta": True, "mmd": False}
    a = evaluation_folder(tmp_path / "a", {p: {"pearson_delta": x, "mmd": x} for p, x in zip(perts, FIVE)}, meta)
    b = evaluation_folder(tmp_path / "b", {p: {"pearson_delta": x, "mmd": x} for p, x in zip(perts, base)}, meta)
    res = compare(a, b)["metrics"]
    raw = paired_test(FIVE, base)["ci"]
    assert raw[0] < -2.0 and res["pearson_delta"]["ci"] == [-2.0, 2.0]
    assert res["mmd"]["ci"] == raw  # mmd (unbiased) declares no bound


def test_report_intervals_use_the_metric_range():
    from distgen.report.stats import mean_ci, paired_interval
    from distgen.report.style import metric_info

    info = metric_info("pearson_delta")
    assert info.bounds == CORRELATION and metric_info("no_such_metric").bounds == UNBOUNDED
    m, lo, hi = mean_ci(FIVE, bounds=info.bounds)
    assert -1.0 <= lo < m < hi <= 1.0
    assert mean_ci(FIVE) == (m, *_bootstrap_ci(FIVE))  # without bounds: the uncut interval (summary.json's draws)
    diffs = [a - b for a, b in zip(FIVE, [-0.9, -0.85, -0.95, 0.9, -0.9])]
    assert paired_interval(diffs)[2] > 2.0 and paired_interval(diffs, bounds=info.bounds)[2] == 2.0


def test_a_wrong_declaration_fails_the_metric_contract_and_a_malformed_one_is_refused():
    from distgen.testing import MetricContract

    class WronglyBounded(metrics.get("mse")):  # squared errors declared as a fraction: the example data exceeds 1
        capabilities = MetricCapabilities(bounds=FRACTION)

    metrics.add("test_wrong_bounds", WronglyBounded)
    try:
        with pytest.raises(AssertionError, match="declares bounds"):
            MetricContract().test_values_within_bounds("test_wrong_bounds")
        MetricContract().test_values_within_bounds("mse")  # the right declaration passes
    finally:
        metrics.unregister("test_wrong_bounds")
    for bad in ((1.0, 0.0), (0.0,), (math.nan, 1.0), "0,1"):
        with pytest.raises(ValueError, match="bounds"):
            MetricCapabilities(bounds=bad)
