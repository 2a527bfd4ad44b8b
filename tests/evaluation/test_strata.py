"""Difficulty strata: response strength, baseline saturation, quantile tables and the near-solved fraction."""

import math

import numpy as np
import torch

from distgen.evaluation import score
from distgen.evaluation.io import eval_data
from distgen.evaluation.strata import by_quantile, response_strength, saturation, stratify
from distgen.types import Cells


def test_saturation_and_near_solved_fraction_on_hand_values():
    # error metric (lower is better): control 10, ceiling 2; baseline 10 -> 0, 6 -> 0.5, 2.4 -> 0.95, 2 -> 1
    sat = saturation([10.0, 6.0, 2.4, 2.0, 1.0], [10.0, 10.0, 10.0, 10.0, 1.0], [2.0, 2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(sat[:4], [0.0, 0.5, 0.95, 1.0])
    assert math.isnan(sat[4])  # ceiling == control
    # agreement metric (higher is better): control 0, ceiling 0.8, baseline 0.2 -> 0.25
    assert saturation([0.2], [0.0], [0.8]) == [0.25]
    out = stratify([1.0] * 5, [10.0, 6.0, 2.4, 2.0, 1.0], [10.0] * 4 + [1.0], [2.0] * 4 + [1.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert out["near_solved_fraction"] == 2 / 4 and out["n_saturation"] == 4


def test_by_quantile_bins_and_means():
    key = list(range(9))
    model = [float(k) for k in key]
    base = [10.0 * k for k in key]
    rows = by_quantile(key, model, base, n_bins=3)
    assert [r["n"] for r in rows] == [3, 3, 3]
    assert [r["model"] for r in rows] == [1.0, 4.0, 7.0]
    assert [r["baseline"] for r in rows] == [10.0, 40.0, 70.0]
    assert by_quantile([math.nan, math.nan], [1.0, 2.0], [1.0, 2.0]) == []


def _cells(effects, seed=0, n=10):
    rng = np.random.default_rng(seed)
    rows, conds = [rng.normal(1.0, 0.2, (40, 4))], ["control"] * 40
    for p, e in enumerate(effects):
        rows.append(rng.normal(1.0 + np.asarray(e), 0.2, (n, 4)))
        conds += [f"P{p}"] * n
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, [f"g{i}" for i in range(4)])


def test_response_strength_is_distance_of_real_mean_from_control():
    truth = _cells([[0, 0, 0, 0], [3, 0, 0, 0], [0, 4, 3, 0]])
    data = eval_data(truth, truth)
    X = truth.X.double().numpy()
    ctrl = X[truth.is_control].mean(0)
    for p, name in enumerate(data.perts):
        expected = np.linalg.norm(X[truth.conditions == name].mean(0) - ctrl)
        assert abs(response_strength(data)[p] - expected) < 1e-6


def test_score_summary_has_strata():
    effects = [[k * 0.5, 0, -k * 0.3, 0] for k in range(9)]
    s = score(_cells(effects, 1), _cells(effects, 2), {"control": _cells([[0] * 4] * 9, 3), "shift": _cells([[1, 0, 0, 0]] * 9, 4)},
              metrics=["mse"], ceiling_splits=1).summary
    st = s["metrics"]["mse"]["strata"]
    assert st["baseline"] == "shift" and sum(r["n"] for r in st["by_response"]) == 9
    assert 0.0 <= st["near_solved_fraction"] <= 1.0


def test_no_saturation_where_the_ceiling_is_not_better_than_the_control_baseline():
    # an error metric on a weak response: the noisy half-split replicate (1.5) scores worse than predicting no change
    # (1.0), and a baseline worse than no change (1.45). (b - c) / (r - c) = 0.45 / 0.5 = 0.9 called that baseline
    # "near-solved"; there is no range from no change up to the replicate to place it in, so no saturation.
    assert saturation([1.45], [1.0], [1.5], higher_is_better=False)[0] != saturation([1.45], [1.0], [1.5])[0]
    assert math.isnan(saturation([1.45], [1.0], [1.5], higher_is_better=False)[0])
    assert math.isnan(saturation([0.1], [0.3], [0.2], higher_is_better=True)[0])  # the same for an agreement metric
    assert saturation([6.0], [10.0], [2.0], higher_is_better=False) == [0.5]  # a ceiling better than control: unchanged
    out = stratify([1.0] * 3, [1.45, 6.0, 2.2], [1.0, 10.0, 10.0], [1.5, 2.0, 2.0], [1.0, 2.0, 3.0], higher_is_better=False)
    assert out["n_saturation"] == 2 and out["near_solved_fraction"] == 0.5
    assert out["note"].startswith("1 perturbation(s) whose ceiling is not better than the control baseline")


def test_score_leaves_weak_responses_out_of_the_near_solved_fraction():
    # 9 perturbations of no effect: the half-split replicate (5 cells a half) is worse than the control baseline on mse
    # for every one; a baseline barely off control was "near-solved" on most of them
    effects = [[0.0] * 4] * 9
    s = score(_cells(effects, 1), _cells(effects, 2), {"control": _cells(effects, 3), "shift": _cells([[0.02, 0, 0, 0]] * 9, 4)},
              metrics=["mse"], ceiling_splits=1).summary
    st = s["metrics"]["mse"]["strata"]
    assert st["n_saturation"] < 9 and "ceiling is not better than the control baseline" in st["note"]
