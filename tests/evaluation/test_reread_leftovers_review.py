"""Review of the re-read leftovers round (helper 176): inputs the first pass's new refusal of raw counts beside an 'empty'
side, and its scipy sparse reading, did not think of."""

from __future__ import annotations

import numpy as np
import pytest

CONDS = ["control"] * 4 + ["A"] * 4 + ["B"] * 4
GENES = [f"g{j}" for j in range(6)]
SMALL_COUNTS = np.random.default_rng(1).poisson(3, (12, 6)).astype(np.float32)  # at most 30: eval_data's own check passes them


def _eval(pred, real):
    import torch

    from distgen.evaluation.io import eval_data
    from distgen.types import Cells

    return eval_data(Cells(torch.from_numpy(pred), CONDS, GENES), Cells(torch.from_numpy(real), CONDS, GENES))


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("counts_side", ["real", "pred"])
def test_a_side_without_a_finite_value_is_named_for_what_it_holds(value, counts_side):
    """A file of NaN (or inf) only beside small raw counts: value_scale reads no finite value as 'empty', and the first pass's
    refusal then said the NaN file held 'only zeros and ones (max 0)'; before it, the evaluation named the NaN (as it does
    again)."""
    from distgen.errors import InputDataError

    bad = np.full_like(SMALL_COUNTS, value)
    pred, real = (bad, SMALL_COUNTS) if counts_side == "real" else (SMALL_COUNTS, bad)
    with pytest.raises(InputDataError) as e:
        _eval(pred, real)
    assert "NaN or inf" in str(e.value)
    assert "zeros and ones" not in str(e.value)


def test_raw_counts_beside_negative_whole_numbers_are_refused_saying_what_those_hold():
    """Values -1 and 0 (whole numbers of at most 1: value_scale's 'empty') beside small raw counts: the counts are refused,
    and the other file is not said to hold 'only zeros and ones' (the first pass's message, with 'max -0')."""
    from distgen.evaluation.io import ValueScaleError

    negative = -(SMALL_COUNTS > 2).astype(np.float32)
    with pytest.raises(ValueScaleError) as e:
        _eval(SMALL_COUNTS, negative)
    msg = str(e.value)
    assert e.value.side == "pred" and "raw counts" in msg
    assert "zeros and ones" not in msg and "min -1" in msg and "max 0" in msg
