"""Streaming reads (``DiskCells``) refuse a damaged sparse matrix anywhere in the file, not only in the rows read to
describe it: a column index past the genes was read silently (values put elsewhere), a decreasing indptr failed deep
inside anndata."""

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data import PerturbationSchema
from distgen.data.disk import DiskCells
from distgen.errors import InputDataError

N, G = 2100, 12  # more rows than DiskCells reads to describe the matrix (2,000)


def _file(tmp_path, damage):
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(rng.poisson(1.0, (N, G)).astype(np.float32))
    obs = pd.DataFrame({"target": ["ctrl", "A"] * (N // 2)}, index=[f"c{i}" for i in range(N)])
    path = tmp_path / f"{damage}.h5ad"
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(G)])).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        name = "indices" if damage == "index" else "indptr"
        arr = f[f"X/{name}"][()]
        if damage == "index":
            arr[-3] = G + 5  # in the last row: a column past the genes
        else:
            arr[-3], arr[-2] = arr[-2], arr[-3]  # a decreasing pointer near the end
        del f[f"X/{name}"]
        f[f"X/{name}"] = arr
    return path


SCHEMA = PerturbationSchema(perturbation_col="target", control_labels=("ctrl",))


def test_a_column_index_past_the_genes_beyond_the_first_rows_is_refused_when_read(tmp_path):
    cells = DiskCells(_file(tmp_path, "index"), SCHEMA)  # the first 2,000 rows are sound
    assert cells.read(np.arange(10)).shape == (10, G)
    with pytest.raises(InputDataError, match="malformed sparse CSR matrix"):
        cells.read(np.arange(N - 5, N))


def test_a_decreasing_indptr_is_refused_when_the_file_is_opened(tmp_path):
    with pytest.raises(InputDataError, match=r"malformed sparse CSR matrix .*indptr"):
        DiskCells(_file(tmp_path, "indptr"), SCHEMA)


def test_a_sound_file_reads_as_stored(tmp_path):
    path = tmp_path / "sound.h5ad"
    rng = np.random.default_rng(1)
    x = sp.csr_matrix(rng.poisson(1.0, (N, G)).astype(np.float32))
    obs = pd.DataFrame({"target": ["ctrl", "A"] * (N // 2)}, index=[f"c{i}" for i in range(N)])
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(G)])).write_h5ad(path)
    rows = np.array([N - 1, 3, 2050])
    got = DiskCells(path, SCHEMA).read(rows, log=False)
    np.testing.assert_array_equal(got.toarray(), x[rows].toarray())


def _retyped(tmp_path, name, dtype, damage=None):
    """A sound file whose ``X/<name>`` is stored as ``dtype`` (``damage``: add 0.5 to one index of the last row)."""
    path = tmp_path / f"{name}_{dtype}.h5ad"
    rng = np.random.default_rng(2)
    x = sp.csr_matrix(rng.poisson(1.0, (N, G)).astype(np.float32))
    obs = pd.DataFrame({"target": ["ctrl", "A"] * (N // 2)}, index=[f"c{i}" for i in range(N)])
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(G)])).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        arr = f[f"X/{name}"][()].astype(dtype)
        if damage:
            arr[-3] += 0.5  # in the last row, past the 2,000 rows read to describe the matrix
        del f[f"X/{name}"]
        f[f"X/{name}"] = arr
    return path, x


@pytest.mark.parametrize(("name", "dtype", "damage", "said"), [
    ("indices", "float64", "half", "indices are stored as float64 values, not integers"),
    ("indices", "float64", None, "indices are stored as float64 values, not integers"),
    ("indices", "bool", None, "indices are stored as bool values, not integers"),
    ("indptr", "float64", None, "indptr are stored as float64 values, not integers"),
], ids=["a_fractional_index", "whole_float_indices", "bool_indices", "a_float_pointer"])
def test_sparse_positions_not_stored_as_integers_are_refused_when_the_file_is_opened(tmp_path, name, dtype, damage, said):
    """As the in-memory load and both readers of a pair refuse them (``types.layout.sparse_position_problem``): the
    streamed rows were re-typed by anndata's row reader before any check saw them, so a position 2.5 read as column 2
    (another cell's value moved, trained on), bool indices put every column past 0 in column 1, and a float pointer
    failed inside anndata ("slice indices must be integers")."""
    path, _ = _retyped(tmp_path, name, dtype, damage)
    with pytest.raises(InputDataError, match=rf"malformed sparse CSR matrix \(its {said}\)"):
        DiskCells(path, SCHEMA)


@pytest.mark.parametrize("dtype", ["uint32", "uint64", "int64", "int16"])
def test_sparse_positions_stored_as_other_integer_types_stream_as_stored(tmp_path, dtype):
    path, x = _retyped(tmp_path, "indices", dtype)
    rows = np.array([N - 1, 3, 2050])
    np.testing.assert_array_equal(DiskCells(path, SCHEMA).read(rows, log=False).toarray(), x[rows].toarray())
