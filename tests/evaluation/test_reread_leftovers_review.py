"""The re-read leftovers, second look: inputs the first pass's new refusal of raw counts beside an 'empty'
side, and its scipy sparse reading, did not think of."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

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


def _non_canonical():
    """A CSR matrix with a duplicate entry (0.5 + 0.5 at one place: the value 1) and unsorted column indices."""
    data = np.array([0.5, 0.5, 3.0, 2.0, 1.0])
    indices = np.array([2, 2, 0, 3, 1])
    indptr = np.array([0, 3, 3, 5])
    m = sp.csr_matrix((data, indices, indptr), shape=(3, 4))
    assert not m.has_canonical_format
    return m


def test_the_scale_checks_leave_a_sparse_input_as_it_was():
    """The checks read a caller's matrix: summing its duplicates in place (the first pass's reading did, for a CSR matrix of
    at most 2,000 rows) rewrote the caller's data, indices and indptr."""
    from distgen.evaluation.io import check_counts, check_scale, value_scale

    m = _non_canonical()
    before = (m.data.copy(), m.indices.copy(), m.indptr.copy())
    assert value_scale(m) == value_scale(m.toarray())
    check_counts(m, "real")
    with pytest.raises(Exception, match="raw counts"):
        check_scale(m, "real", strict=True)
    after = (m.data, m.indices, m.indptr)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix", "bsr_matrix", "csr_array"])
def test_off_integer_of_a_sparse_matrix_is_that_of_its_values(fmt):
    """off_integer of any scipy sparse format says of each value what it says of the dense values, in the input's format: a
    duplicate entry (0.5 twice, the value 1) was called off an integer, and LIL/DOK raised (IndexError, AttributeError)."""
    from distgen.evaluation.io import off_integer

    m = _non_canonical()
    dense = m.toarray()
    dense_off = off_integer(dense, 1e-6)
    got = off_integer(m if fmt == "csr_matrix" else getattr(sp, fmt)(m), 1e-6)
    assert sp.issparse(got) and got.format == getattr(sp, fmt)(m).format
    np.testing.assert_array_equal(got.toarray(), dense_off)
    assert dense_off.sum() == 0  # 1, 3, 2, 1: all integers


def test_off_integer_of_a_sparse_matrix_leaves_it_as_it_was():
    """Nor does off_integer rewrite the caller's matrix."""
    from distgen.evaluation.io import off_integer

    m = _non_canonical()
    before = (m.data.copy(), m.indices.copy(), m.indptr.copy())
    off_integer(m, 1e-6)
    for b, a in zip(before, (m.data, m.indices, m.indptr)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scale", ["counts", "lognorm"])
def test_a_prediction_of_values_within_the_count_tolerance_of_zero_holds_no_prediction(scale):
    """A prediction whose X is all within 1e-6 of 0 (the first pass's 'left'): the count rule reads such values as zeros
    (cell-eval2's tolerance), but only an X of exact zeros was refused as holding no prediction, so under a counts profile
    a file of 1e-8 dust was scored as a prediction of zero counts while the same file of zeros was refused."""
    import torch

    from distgen.evaluation.io import ScaleMismatchError
    from distgen.evaluation.normalization import check_control_scale
    from distgen.types import Cells

    near = ((SMALL_COUNTS > 2) * 1e-8).astype(np.float32)
    real = SMALL_COUNTS if scale == "counts" else np.log1p(SMALL_COUNTS)
    with pytest.raises(ScaleMismatchError, match=r"holds only zeros \(or values within 1e-06 of 0, at most 1e-08 from it\)"):
        check_control_scale(Cells(torch.from_numpy(near), CONDS, GENES), Cells(torch.from_numpy(real), CONDS, GENES), scale=scale)
    small = np.where(SMALL_COUNTS > 2, 2e-6, 0.0).astype(np.float32)  # past the tolerance: not zeros
    check_control_scale(Cells(torch.from_numpy(small), CONDS, GENES), Cells(torch.from_numpy(SMALL_COUNTS), CONDS, GENES), scale="counts")
