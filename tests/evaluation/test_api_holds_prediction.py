"""A prediction whose X is all zeros, or all within ``io.COUNT_ATOL`` of 0, holds no prediction: the CLI's file check
(``normalization.check_control_scale``) refused it, but the Python API (``distgen.evaluation.score`` / ``eval_data``)
scored it as a prediction (one rule, ``io.check_holds_prediction``, read by both)."""

import numpy as np
import pytest
import torch

from distgen.evaluation.io import ScaleMismatchError, eval_data
from distgen.types import Cells

CONDS = ["control"] * 4 + ["A"] * 4 + ["B"] * 4
GENES = [f"g{j}" for j in range(6)]
COUNTS = np.random.default_rng(1).poisson(3, (12, 6)).astype(np.float32)
TRUTH = Cells(torch.from_numpy(np.log1p(COUNTS)), CONDS, GENES)


@pytest.mark.parametrize("dust", [0.0, 1e-8, -5e-7])
def test_eval_data_refuses_a_prediction_of_zeros_or_dust(dust):
    pred = Cells(torch.from_numpy(((COUNTS > 2) * dust).astype(np.float32)), CONDS, GENES)
    with pytest.raises(ScaleMismatchError, match=r"pred file's X holds only zeros"):
        eval_data(pred, TRUTH)


def test_score_refuses_a_prediction_of_dust():
    from distgen.evaluation.score import score

    pred = Cells(torch.from_numpy(((COUNTS > 2) * 1e-8).astype(np.float32)), CONDS, GENES)
    with pytest.raises(ScaleMismatchError, match=r"within 1e-06 of 0, at most 1e-08"):
        score(pred, TRUTH, ceiling=False, metrics=["mse"])


def test_a_prediction_just_past_the_tolerance_and_a_generated_one_are_scored():
    """The edge: 2e-6 is no zero by the count rule; a model's own output (``check_pred_scale=False``: ``distgen run``,
    ``generated=True``) is left to the generated checks, as the CLI leaves a file marked as a prediction."""
    small = Cells(torch.from_numpy(((COUNTS > 2) * 2e-6).astype(np.float32)), CONDS, GENES)
    assert eval_data(small, TRUTH).perts == ("A", "B")
    zeros = Cells(torch.zeros(12, 6), CONDS, GENES)
    assert eval_data(zeros, TRUTH, check_pred_scale=False).perts == ("A", "B")


def test_a_prediction_with_nan_beside_dust_is_refused_and_one_of_nan_only_is_left_to_the_nan_check():
    x = torch.from_numpy(((COUNTS > 2) * 1e-8).astype(np.float32))
    x[5, 2] = float("nan")
    with pytest.raises(ScaleMismatchError, match="holds only zeros"):
        eval_data(Cells(x, CONDS, GENES), TRUTH)
    with pytest.raises(Exception, match="NaN"):
        eval_data(Cells(torch.full((12, 6), float("nan")), CONDS, GENES), TRUTH)


@pytest.mark.parametrize("other", ["empty", "log"])
def test_whole_numbers_below_0_are_refused_but_not_called_raw_counts(other):
    """Integers with values below 0 beside an 'empty' side (zeros and ones) or log values: refused (neither is
    log-normalised expression), but the message called them "raw counts" and said to apply normalize_total then log1p,
    which gives NaN for the values below 0"""
    from distgen.evaluation.io import PairScaleError, check_same_scale

    rng = np.random.default_rng(0)
    neg = rng.integers(-3, 6, (20, 6)).astype(np.float32)
    side = (rng.random((20, 6)) > 0.5).astype(np.float32) if other == "empty" else np.log1p(rng.poisson(3, (20, 6))).astype(np.float32)
    with pytest.raises(PairScaleError) as err:
        check_same_scale(neg, side)
    msg = str(err.value)
    assert "below 0 (min -3" in msg and "are raw counts" not in msg and "log1p to the pred" not in msg
    with pytest.raises(PairScaleError, match="are raw counts"):  # true counts are still named so, with the fix
        check_same_scale(np.abs(neg), side)
