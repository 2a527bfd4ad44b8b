"""The last re-read's leftovers: the evaluation's scale checks on scipy sparse input, a difficulty stratum's
printed bounds beside a tie, and an all-near-zero file (``value_scale``'s ``empty``) downstream."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

COUNTS = np.array([[0, 1, 3, 0, 2], [0, 0, 0, 1, 40], [9, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float64)
LOG = np.log1p(COUNTS)


def _outcome(check, x):
    """What a check says of ``x``: its result, or the class and text of its refusal."""
    try:
        return check(x)
    except Exception as e:  # the refusal is the outcome compared
        return type(e).__name__, str(e)


CASES = {
    "counts": COUNTS,
    "log": LOG,
    "small_counts": np.minimum(COUNTS, 2),
    "fractional_counts": np.where(COUNTS == 40, 40.5, COUNTS),
    "negative": np.where(COUNTS == 9, -9.0, COUNTS),
    "nan": np.where(COUNTS == 40, np.nan, COUNTS),
    "all_zero": np.zeros_like(COUNTS),
    "dense_row": np.vstack([COUNTS, np.full((1, 5), 3.0)]),  # a row with no implicit zero
    "near_zero": np.where(COUNTS > 0, 1e-8, 0.0),
}


@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "csr_array"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_scale_checks_read_sparse_input_as_its_dense_values(case, dtype, fmt, monkeypatch):
    """Each check says of a sparse matrix what it says of the same values dense (it raised TypeError: 'sparse array length
    is ambiguous'), without densifying it."""
    from distgen.evaluation.io import check_counts, check_scale, off_integer, value_scale

    dense = CASES[case].astype(dtype)
    sparse = getattr(sp, fmt)(dense)
    checks = {"value_scale": value_scale, "check_counts": lambda x: check_counts(x, "real"),
              "check_scale": lambda x: check_scale(x, "real"), "check_scale_strict": lambda x: check_scale(x, "real", strict=True),
              "off_integer": lambda x: int(np.count_nonzero(off_integer(x, 1e-6).toarray() if sp.issparse(x) else off_integer(x, 1e-6)))}
    want = {k: _outcome(f, dense) for k, f in checks.items()}

    def densified(*a, **k):
        raise AssertionError("the sparse input was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array):
        monkeypatch.setattr(cls, "toarray", densified)
        monkeypatch.setattr(cls, "todense", densified)
    got = {k: _outcome(f, sparse) for k, f in checks.items() if k != "off_integer"}
    monkeypatch.undo()
    got["off_integer"] = _outcome(checks["off_integer"], sparse)
    assert got == want


def test_sparse_rows_are_sampled_as_dense_rows():
    """Past 2,000 rows the same rows are read from a sparse matrix as from the dense one: counts only in rows the sample
    skips are not seen either way (the sample is the rule, not the format)."""
    from distgen.evaluation.io import SCALE_SAMPLE_ROWS, value_scale

    dense = np.full((SCALE_SAMPLE_ROWS * 3, 4), 0.5)
    dense[1::3] = 7.0  # rows the evenly spread sample partly reads
    assert value_scale(sp.csr_matrix(dense)) == value_scale(dense)


@pytest.mark.parametrize("key", [[1, 2, 2, 2, 2, 2, 2, 9], [1] * 6 + [2, 3], [1, 2] + [3] * 6, [0.5, 1, 2, 3, 4, 5, 7, 8],
                                 [1, 1, 2, 2, 3, 3, 4, 4, 5], [3.0, float("nan"), 1.0, 2.0, 2.0, 5.0]],
                         ids=["tie_in_the_middle", "tie_lowest", "tie_highest", "distinct", "pairs", "nan"])
def test_a_strata_range_holds_exactly_its_own_values(key):
    """Each stratum's printed ``low``..``high`` (summary.json's ``by_response``) holds exactly the values of its own
    conditions: beside a tie, the stratum above started at the tied value (``[1, 2*6, 9]``: the top third was printed
    2..9 holding only 9, the lowest 1..2 holding only 1, while the six 2s were in the middle)."""
    from distgen.evaluation.strata import N_STRATA, by_quantile, quantile_bins

    k = np.asarray(key, dtype=float)
    rows = by_quantile(k, k, k, N_STRATA)
    _, bins = quantile_bins(k, N_STRATA)
    finite = np.isfinite(k)
    assert sum(r["n"] for r in rows) == int(finite.sum())
    for r in rows:
        own = k[finite & (bins == r["stratum"] - 1)]
        inside = k[finite & (k >= r["low"]) & (k <= r["high"])]
        assert sorted(inside) == sorted(own), r
        assert r["low"] == own.min() and r["high"] == own.max()


def _write(path, x, scale=None):
    import anndata as ad
    import pandas as pd

    n = x.shape[0]
    labels = ["non-targeting"] * (n // 3) + ["A"] * (n // 3) + ["B"] * (n - 2 * (n // 3))
    a = ad.AnnData(x.astype(np.float32), obs=pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])]))
    if scale:
        a.uns["distgen"] = {"scale": scale}
    a.write_h5ad(path)
    return path


NEAR_ZERO = (np.random.default_rng(0).poisson(3, (12, 6)) > 0) * 1e-8  # every value within 1e-6 of 0: value_scale's 'empty'


def test_an_all_near_zero_file_recorded_as_counts_is_not_called_log_normalised(tmp_path):
    """A log-scale profile on files that record counts but hold values all within 1e-6 of 0: refused for the record, with
    the counts profile as the fix. While value_scale read such values as 'log' (before d982c5e, the 1e-6 count
    tolerance), the refusal said the record contradicted the data, calling values of 1e-8 'log-normalised (fractional)'
    and telling the user to rewrite the record."""
    from distgen.errors import InputDataError
    from distgen.evaluation.io import value_scale
    from distgen.pipeline.profile_eval import read_files

    assert value_scale(NEAR_ZERO)[0] == "empty"
    pred = _write(tmp_path / "pred.h5ad", NEAR_ZERO, "counts")
    real = _write(tmp_path / "real.h5ad", NEAR_ZERO, "counts")
    with pytest.raises(InputDataError) as e:
        read_files(pred, real, scale="lognorm")
    assert "record counts values" in str(e.value) and "counts profile" in str(e.value)
    assert "contradicts" not in str(e.value)


@pytest.mark.parametrize("counts_side", ["real", "pred"])
def test_an_all_near_zero_file_beside_small_counts_is_refused_naming_the_counts(counts_side):
    """In the Python API (``eval_data``, as ``distgen.evaluation.score`` calls it) a prediction or truth of values all within
    1e-6 of 0 or 1 (``value_scale``'s 'empty') beside raw counts of at most 30 was scored as log-normalised, without a word:
    'empty' skipped the pair's comparison and the counts' own check refuses integers above 30 only there (the CLI's
    stricter file check refused them). Now the counts are refused, naming their file and the fix."""
    import torch

    from distgen.evaluation.io import ScaleMismatchError, ValueScaleError, eval_data
    from distgen.types import Cells

    counts = np.random.default_rng(1).poisson(3, (12, 6)).astype(np.float32)
    near = NEAR_ZERO.astype(np.float32)
    conds = ["control"] * 4 + ["A"] * 4 + ["B"] * 4
    genes = [f"g{j}" for j in range(6)]
    pred, real = (near, counts) if counts_side == "real" else (counts, near)
    with pytest.raises(ValueScaleError) as e:
        eval_data(Cells(torch.from_numpy(pred), conds, genes), Cells(torch.from_numpy(real), conds, genes))
    assert e.value.side == counts_side and "raw counts" in str(e.value) and "log1p" in str(e.value)
    eval_data(Cells(torch.from_numpy(np.log1p(counts)), conds, genes), Cells(torch.from_numpy(near), conds, genes))  # no counts: scored
    # a prediction of such dust holds no prediction (the CLI's rule, io.check_holds_prediction, in the API too)
    with pytest.raises(ScaleMismatchError, match="holds only zeros"):
        eval_data(Cells(torch.from_numpy(near), conds, genes), Cells(torch.from_numpy(np.log1p(counts)), conds, genes))
