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
@pytest.mark.parametrize("index_dtype", ["int32", "int64", "uint32", "uint64", "int16", "float64"])
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
