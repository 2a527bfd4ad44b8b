"""The numerical tolerance of a verdict scales with the values' size, not with their mean: a metric of both signs (a
plugin's signed shift) whose mean cancels had a tolerance far below its values' rounding, and a rounding of one part in
1e9 of each value, the same way on every perturbation, was named a winner by ``distgen compare``, by a run's verdict
against its baselines and by a sweep. For values of one sign the tolerance is as before, bit for bit."""

from __future__ import annotations

import math

import pytest

from distgen.capabilities import MetricCapabilities
from distgen.evaluation.compare import compare
from distgen.evaluation.metrics import metrics
from distgen.evaluation.metrics.base import Metric
from distgen.evaluation.suite import MetricTable
from distgen.evaluation.uncertainty import NUMERIC_RTOL, calibrate, magnitude, numerical_tolerance

from .synth import evaluation_folder

PERTS = [f"P{i}" for i in range(20)]
#: 19 values near +1e60 and one near -1.9e61: the mean (~1e44) cancels twelve orders of magnitude below the values.
SIGNED = [1e60 * (1 + 0.01 * i) for i in range(1, 20)]
SIGNED = [-sum(SIGNED), *SIGNED]
ROUNDED = [v * (1 + 1e-9) if v > 0 else v * (1 - 1e-9) for v in SIGNED]  # each value one part in 1e9 higher: rounding


class _SignedShift(Metric):
    """A plugin-like metric of both signs (higher is better), whose values the tests give."""

    capabilities = MetricCapabilities(higher_is_better=True)

    def compute(self, data):
        raise NotImplementedError


@pytest.fixture
def signed_metric():
    metrics.add("test_signed_shift", _SignedShift)
    yield "test_signed_shift"
    metrics.unregister("test_signed_shift")


def test_the_tolerance_is_that_of_the_values_size():
    assert magnitude([0.1, 0.2, math.nan, 0.4]) == (0.1 + 0.2 + 0.4) / 3 == MetricTable(("a", "b", "c", "d"), {"m": [0.1, 0.2, math.nan, 0.4]}).mean("m")
    assert abs(sum(SIGNED) / len(SIGNED)) < 1e46 and magnitude(SIGNED) > 1e60
    assert numerical_tolerance(sum(SIGNED) / 20, magnitude(SIGNED)) == NUMERIC_RTOL * magnitude(SIGNED)


def test_compare_names_no_winner_from_rounding_of_a_two_signed_metric(tmp_path, signed_metric):
    a = evaluation_folder(tmp_path / "a", {p: {signed_metric: v} for p, v in zip(PERTS, ROUNDED)}, {signed_metric: True})
    b = evaluation_folder(tmp_path / "b", {p: {signed_metric: v} for p, v in zip(PERTS, SIGNED)}, {signed_metric: True})
    r = compare(a, b)["metrics"][signed_metric]
    assert r["wilcoxon_p"] < 0.001 and r["mean_difference"] > 0  # every pair differs the same way: significant
    assert r["margin_source"] == "numerical tolerance" and r["margin"] >= NUMERIC_RTOL * 1e60
    assert r["better"] is None and r["verdict"] != "a"  # was "a", on a margin of 2e45
    # a positive metric: the margin as before (the mean), and a real difference still named
    pos = [0.1 + 0.01 * i for i in range(20)]
    c = evaluation_folder(tmp_path / "c", {p: {"mse": v + 2e-3} for p, v in zip(PERTS, pos)}, {"mse": False})
    d = evaluation_folder(tmp_path / "d", {p: {"mse": v} for p, v in zip(PERTS, pos)}, {"mse": False})
    r = compare(c, d)["metrics"]["mse"]
    assert r["margin"] == NUMERIC_RTOL * r["mean_a"] and r["verdict"] == "b"


def test_a_run_against_its_baselines_names_no_winner_from_rounding(signed_metric):
    model = MetricTable(tuple(PERTS), {signed_metric: list(ROUNDED)})
    base = MetricTable(tuple(PERTS), {signed_metric: list(SIGNED)})
    rows = {signed_metric: {"higher_is_better": True, "model": model.mean(signed_metric),
                            "baselines": {"b": base.mean(signed_metric)}, "strongest_baseline": "b"}}
    calibrate(rows, model, {"b": base}, None)
    test = rows[signed_metric]["vs_strongest_baseline"]
    assert test["wilcoxon_p"] < 0.001 and test["margin"] >= NUMERIC_RTOL * 1e60
    assert test["verdict"] != "model"


def test_a_sweep_names_no_winner_from_rounding(signed_metric):
    from distgen.pipeline.aggregate import paired_comparison

    rows = [{"variant": var, "seed": 0, "perturbation": p, signed_metric: v}
            for var, vals in (("v", ROUNDED), ("ref", SIGNED)) for p, v in zip(PERTS, vals)]
    c = paired_comparison(rows, "v", "ref", signed_metric)
    assert c.margin >= NUMERIC_RTOL * 1e60 and c.verdict not in ("variant", "reference")
