"""The h5py reader of ``--profile`` pairs gives what the anndata reader gives, or steps aside (None)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data import layout
from distgen.evaluation import h5pair

from .synth import CONTROL, make_pair


def test_the_fast_reader_imports_no_anndata_and_shares_the_layout_names():
    # its reason to exist: the names come from distgen.types.layout, which (like h5pair) imports no anndata
    import subprocess
    import sys

    code = "import sys, distgen.evaluation.h5pair; assert 'anndata' not in sys.modules, 'h5pair imported anndata'"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert h5pair.LayoutInfo is layout.LayoutInfo and h5pair.canonical_condition is layout.canonical_condition
    for label in ("A+B", "ctrl+B", "B+A", CONTROL, "control", " C + A "):
        assert layout.canonical_condition(label, CONTROL) == layout.canonical_condition(label.replace(" ", ""), CONTROL)


def _same(fast, slow):
    for a, b in zip(fast[:2], slow[:2]):
        np.testing.assert_array_equal(a.X.numpy(), b.X.numpy())
        assert a.X.dtype == b.X.dtype
        assert a.genes == b.genes and a.control == b.control
        for f in ("conditions", "contexts"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert a.names is None  # not read: scoring does not use them
    fi, si = fast[2], slow[3]
    for f in ("pert_col", "control", "celltype_col", "condition_order", "scales", "kinds"):
        assert getattr(fi, f) == getattr(si, f), f


@pytest.mark.parametrize("layout_kind", ["csr_categorical", "dense_strings_celltype", "csc_combos_recorded_scale", "pandas_string_dtype"])
def test_fast_reader_equals_read_pair(tmp_path, layout_kind):
    real, pred = make_pair(seed=3, n_genes=12, n_ctrl=15, n_cells=4, combos=True)
    for name, a in (("real", real), ("pred", pred)):
        if layout_kind == "csr_categorical":
            a.X = sp.csr_matrix(a.X)
            a.obs["target"] = pd.Categorical(a.obs["target"], categories=sorted(set(a.obs["target"]))[::-1])
        elif layout_kind == "dense_strings_celltype":
            a.obs["celltype"] = np.where(np.arange(a.n_obs) % 2 == 0, "T", "B")
            a.obs["target"] = a.obs["target"].astype(str).replace({CONTROL: "ctrl"})
        elif layout_kind == "pandas_string_dtype":  # pandas 3's text default, written as nullable-string-array groups
            a.obs = a.obs.astype({"target": "string"})
            a.obs.index = a.obs.index.astype("string")
            a.var.index = a.var.index.astype("string")
        else:
            a.X = sp.csc_matrix(a.X)
            a.uns["distgen"] = {"scale": "lognorm"}
        import anndata

        with anndata.settings.override(allow_write_nullable_strings=True):
            a.write_h5ad(tmp_path / f"{name}.h5ad")
        if layout_kind == "pandas_string_dtype":
            import h5py

            with h5py.File(tmp_path / f"{name}.h5ad", "r") as f:
                assert f["var/_index"].attrs["encoding-type"] == "nullable-string-array"
        if layout_kind == "dense_strings_celltype":  # write_h5ad turns strings into categoricals: rewrite obs as strings
            import h5py
            from anndata.io import write_elem

            with h5py.File(tmp_path / f"{name}.h5ad", "r+") as f:
                del f["obs"]
                write_elem(f, "obs", a.obs.astype(object))
                assert f["obs/target"].attrs["encoding-type"] == "string-array"
    p, r = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    fast = h5pair.read_pair_fast(p, r)
    assert fast is not None
    _same(fast, layout.read_pair(p, r))


def test_fast_reader_steps_aside_for_what_it_does_not_read(tmp_path):
    real, pred = make_pair(seed=4, n_genes=12, n_ctrl=10, n_cells=3, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred[pred.obs["target"] != CONTROL].copy().write_h5ad(tmp_path / "noctrl.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    (tmp_path / "text.h5ad").write_text("not hdf5")
    assert h5pair.read_pair_fast(tmp_path / "noctrl.h5ad", tmp_path / "real.h5ad") is None  # anndata's path names the problem
    assert h5pair.read_pair_fast(tmp_path / "pred.h5ad", tmp_path / "real.h5ad", pert_col="guide") is None
    assert h5pair.read_pair_fast(tmp_path / "text.h5ad", tmp_path / "real.h5ad") is None
    assert h5pair.read_pair_fast(pred, real) is None  # objects, not files
    assert h5pair.read_pair_fast(tmp_path / "pred.h5ad", tmp_path / "real.h5ad") is not None


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("index_dtype", ["int32", "int64", "uint32", "uint64", "int16"])
def test_sparse_x_is_read_whatever_integer_type_its_positions_are_stored_in(tmp_path, fmt, index_dtype):
    # anndata writes int32 positions, other writers int64 or unsigned ones; the dense matrix is the same for each
    import h5py

    rng = np.random.default_rng(3)
    dense = ((rng.random((23, 17)) < 0.35) * rng.integers(1, 50, (23, 17))).astype(np.float32)
    m = sp.csr_matrix(dense) if fmt == "csr" else sp.csc_matrix(dense)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"] = f"{fmt}_matrix"
        g.attrs["shape"] = np.array(dense.shape)
        g["data"], g["indices"], g["indptr"] = m.data, m.indices.astype(index_dtype), m.indptr.astype(np.int64)
    with h5py.File(path) as f:
        got = h5pair._matrix(f["X"])
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, dense)


@pytest.mark.parametrize("bad", ["past_the_end", "negative", "wrapped_to_int32"])
def test_sparse_x_with_positions_out_of_range_steps_aside(tmp_path, bad):
    # checked on the stored values: a position 2^32 + 1 must not pass as 1 once the positions are held as int32
    import h5py

    dense = np.eye(4, 6, dtype=np.float32)
    m = sp.csr_matrix(dense)
    indices = m.indices.astype(np.int64)
    indices[-1] = {"past_the_end": 6, "negative": -1, "wrapped_to_int32": 2**32 + 3}[bad]
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["shape"] = np.array(dense.shape)
        g["data"], g["indices"], g["indptr"] = m.data, indices, m.indptr
    with h5py.File(path) as f, pytest.raises(h5pair._Unsupported, match="out-of-range"):
        h5pair._matrix(f["X"])


def _pair_with_index_pointer(tmp_path, indptr):
    """A pred/truth pair of 4 cells x 3 genes whose truth X holds one non-zero (cell 1, gene 2) under ``indptr``."""
    import anndata as ad
    import h5py

    x = np.zeros((4, 3), np.float32)
    x[1, 2] = 5.0
    obs = pd.DataFrame({"target": [CONTROL, CONTROL, "G0", "G0"]}, index=[f"c{i}" for i in range(4)])
    for name in ("real", "pred"):
        a = ad.AnnData(X=sp.csr_matrix(x), obs=obs)
        a.var_names = ["G0", "G1", "G2"]
        a.write_h5ad(tmp_path / f"{name}.h5ad")
    with h5py.File(tmp_path / "real.h5ad", "r+") as f:
        assert f["X/indptr"][()].tolist() == [0, 0, 1, 1, 1]  # the well-formed pointer
        f["X/indptr"][...] = np.asarray(indptr)
    return tmp_path / "pred.h5ad", tmp_path / "real.h5ad"


@pytest.mark.parametrize("indptr", [[-1, -1, 0, 0, 1], [1, 1, 1, 1, 1]], ids=["value_copied_to_two_cells", "value_dropped"])
def test_sparse_x_whose_index_pointer_does_not_start_at_zero_is_left_to_the_anndata_reader(tmp_path, indptr):
    # the pointer's differences spread the one stored value over two cells, or over none: the fast reader gave that
    # matrix without a word, where the anndata reader refuses the file as malformed, naming the fix
    from distgen.errors import InputDataError

    pred, real = _pair_with_index_pointer(tmp_path, indptr)
    assert h5pair.read_pair_fast(pred, real) is None
    with pytest.raises(InputDataError, match="index pointer should start with 0"):
        layout.read_pair(pred, real)


def test_sparse_x_with_a_negative_declared_shape_steps_aside(tmp_path):
    # a shape (-1, 3) with an empty pointer crashed the fast reader with an IndexError (not one it steps aside for)
    import h5py

    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["shape"] = np.array([-1, 3])
        g["data"], g["indices"], g["indptr"] = np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    with h5py.File(path) as f, pytest.raises(h5pair._Unsupported, match="malformed"):
        h5pair._matrix(f["X"])


_SHAPES = [("csr_matrix", (1, 2**31 - 1)), ("csr_matrix", (3, 2**30)), ("csr_matrix", (2, 2**31 + 7)), ("csr_matrix", (46341, 46341)),
           ("csc_matrix", (2**31 - 1, 1)), ("csc_matrix", (2**30, 3)), ("csc_matrix", (2**31 + 7, 2)), ("csc_matrix", (46341, 46341))]


@pytest.mark.parametrize(("fmt", "shape", "index_dtype"), [
    pytest.param(f, s, t, id=f"{f[:3]}-{s[0]}x{s[1]}-{t}") for f, s in _SHAPES for t in ("int32", "int64", "uint32") if max(s) - 1 <= np.iinfo(t).max])
def test_sparse_positions_of_matrices_at_and_past_the_int32_range_are_exact(fmt, shape, index_dtype):
    # the positions are held in int32 only where every position of the matrix fits: the corners of a matrix whose
    # last position is 2^31 - 2 (int32) or past 2^31 (int64) land where row * n_cols + column says (the dense array
    # would take gigabytes, so the positions are checked, not the array)
    n_rows, n_cols = shape
    corners = sorted({(r, c) for r in (0, n_rows - 1) for c in (0, n_cols - 1)})
    if fmt == "csc_matrix":
        corners = sorted(corners, key=lambda rc: (rc[1], rc[0]))
    major = [rc[0] if fmt == "csr_matrix" else rc[1] for rc in corners]
    n_major = n_rows if fmt == "csr_matrix" else n_cols
    indices = np.array([rc[1] if fmt == "csr_matrix" else rc[0] for rc in corners])
    indptr = np.searchsorted(np.array(major), np.arange(n_major + 1), side="left")
    key = h5pair._positions(fmt, n_rows, n_cols, indices.astype(index_dtype), indptr)
    assert key.min() >= 0
    assert sorted(int(v) for v in key) == sorted(r * n_cols + c for r, c in corners)


@pytest.mark.parametrize(("where", "bad"), [("indices", np.nan), ("indices", np.inf), ("indices", 1e30),
                                           ("indptr", np.nan), ("indptr", -np.inf), ("indptr", 1e30), ("indices", 1 + 1j)])
def test_sparse_positions_that_no_integer_holds_step_aside_without_a_warning(tmp_path, where, bad):
    # a NaN, infinite, huge or complex position is refused on its stored value: casting it first made numpy warn
    # ("invalid value encountered in cast"), an error under ``python -W error`` instead of the step aside
    import warnings

    import h5py

    m = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
    values = {"indices": m.indices.astype(type(bad)), "indptr": m.indptr.astype(type(bad))}
    values[where][-1] = bad
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["shape"] = np.array(m.shape)
        g["data"], g["indices"], g["indptr"] = m.data, values["indices"], values["indptr"]
    with h5py.File(path) as f, warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(h5pair._Unsupported):
            h5pair._matrix(f["X"])


@pytest.mark.parametrize("indices", [[2.0, 1.5, 0.0], [2.0, 1.0, -0.5], [2.0, 1.0, 0.0]], ids=["one_and_a_half", "minus_a_half", "whole"])
def test_float_sparse_positions_are_refused_by_both_readers(tmp_path, indices):
    # positions stored as floats: the fast reader truncated them (1.5 read as column 1, -0.5 as column 0) and gave a
    # matrix, where the anndata reader crashed in scipy ("unsupported data types in input", which also truncates them in
    # check_format); both now leave the file to one clear refusal, whole float positions included
    import h5py

    from distgen.errors import InputDataError

    pred, real = _pair_with_index_pointer(tmp_path, [0, 0, 1, 1, 1])
    with h5py.File(real, "r+") as f:
        x = sp.csr_matrix(np.array([[0, 0, 0], [0, 0, 5], [0, 2, 0], [1, 0, 0]], np.float32))
        del f["X/data"], f["X/indices"], f["X/indptr"]
        f["X/data"], f["X/indices"], f["X/indptr"] = x.data, np.asarray(indices), x.indptr
    assert h5pair.read_pair_fast(pred, real) is None
    with pytest.raises(InputDataError, match=r"the real file's X is a malformed sparse CSR matrix \(its indices are stored as float64"):
        layout.read_pair(pred, real)
