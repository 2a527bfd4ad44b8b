"""``--scoring official`` of benchmarks/equal_budget.py: the official PerturbDiff r2 of pooled means."""

import numpy as np
import pytest

from benchmarks.equal_budget import official_r2, official_scores


def test_official_r2_pools_cells_then_scores_genes() -> None:
    truth = np.array([[1.0, 2.0, 6.0], [3.0, 2.0, 0.0]])  # means 2, 2, 3
    pred = np.array([[2.0, 1.0, 3.0]])  # means 2, 1, 3
    # by hand: truth means (2, 2, 3), mean 7/3; SS_tot = 1/9 + 1/9 + 4/9 = 2/3; SS_res = 1
    assert official_r2(truth, pred) == pytest.approx(1 - 1 / (2 / 3))


def test_official_r2_is_one_for_matching_means_and_ignores_cell_spread() -> None:
    truth = np.array([[0.0, 4.0], [2.0, 0.0]])
    pred = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    assert official_r2(truth, pred) == pytest.approx(1.0)


def test_official_scores_gives_model_and_control_baseline() -> None:
    truth = np.array([[1.0, 3.0, 5.0]])
    control = np.array([[1.0, 1.0, 1.0]])  # residuals 0, 2, 4 -> SS_res 20; SS_tot 8
    s = official_scores(truth, truth, control)
    assert s["r2_official"]["model"] == pytest.approx(1.0)
    assert s["r2_official"]["control"] == pytest.approx(1 - 20 / 8)


def test_official_r2_rejects_mismatched_genes() -> None:
    with pytest.raises(ValueError, match="same genes"):
        official_r2(np.ones((2, 3)), np.ones((2, 4)))
