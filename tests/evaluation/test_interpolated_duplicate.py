"""The interpolated duplicate: a positive reference between the split-half duplicate and the non-control mean."""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.calibration import ceiling_data, interpolated_duplicate_data
from distgen.evaluation.io import eval_data
from distgen.types import Cells


def _cells(seed=0, n_perts=5, n=12):
    rng = np.random.default_rng(seed)
    effects = rng.normal(0, 2.0, (n_perts, 6))
    rows, conds = [rng.normal(1.0, 0.3, (30, 6))], ["control"] * 30
    for p in range(n_perts):
        rows.append(rng.normal(1.0 + effects[p], 0.3, (n + p, 6)))  # unequal group sizes
        conds += [f"P{p}"] * (n + p)
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, [f"g{i}" for i in range(6)])


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_interpolated_duplicate_moves_the_duplicate_toward_the_pooled_mean(alpha):
    truth = _cells()
    data = eval_data(truth, truth)
    half = ceiling_data(data, seed=3)  # the same disjoint halves
    interp = interpolated_duplicate_data(data, seed=3, alpha=alpha)
    dup = [half.pred.cells(p).double().numpy() for p in range(data.n_perts)]
    pooled = np.concatenate(dup).mean(0)  # independent: mean of all perturbed duplicate cells
    for p in range(data.n_perts):
        got = interp.pred.cells(p).double().numpy()
        expected = dup[p] + (1 - alpha) * (pooled - dup[p].mean(0))
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(got.mean(0), alpha * dup[p].mean(0) + (1 - alpha) * pooled, atol=1e-5)
        np.testing.assert_array_equal(interp.real.cells(p).numpy(), half.real.cells(p).numpy())
    np.testing.assert_array_equal(interp.pred.control.numpy(), half.pred.control.numpy())  # controls untouched


def test_interpolated_duplicate_is_opt_in_and_a_positive_reference():
    truth = _cells(1)
    pred = _cells(2)
    plain = score(pred, truth, metrics=["mse"], ceiling_splits=2).summary
    assert "interpolated_duplicate" not in plain["reference_roles"]
    assert "positive_references" not in plain["metrics"]["mse"]
    s = score(pred, truth, metrics=["mse"], ceiling_splits=2, interpolated=True).summary
    assert s["reference_roles"]["interpolated_duplicate"] == "positive"
    assert s["reference_roles"]["ceiling"] == "positive"
    v = s["metrics"]["mse"]["positive_references"]["interpolated_duplicate"]
    assert math.isfinite(v)
    # halfway to the pooled mean: worse (higher MSE) than the duplicate itself on well-separated effects
    assert v > s["metrics"]["mse"]["ceiling"]


def test_alpha_out_of_range_refused():
    truth = _cells()
    with pytest.raises(ValueError, match="alpha"):
        interpolated_duplicate_data(eval_data(truth, truth), alpha=1.5)
