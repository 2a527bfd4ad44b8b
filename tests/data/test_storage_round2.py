"""Storage round 2, 2026-12-07: what the on-disk path records of a file tells a changed file from the one it used.

Before: a zarr store's stamp covered its top entries only, so a chunk rewritten inside ``X/data``, ``obs/<col>/codes``
or ``layers/counts`` was read under the labels of the old store without a word; the streamed run's content fingerprint
differed for the same values stored dense or sparse, float32 or float64.
"""

import os
import pickle

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import zarr

from distgen.data import PerturbationSchema
from distgen.data.disk import DiskCells, file_stamp, stamp_matches
from distgen.errors import InputDataError, InputFileError

SCHEMA = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch")


def _adata(dense: bool = False, dtype: type = np.float32) -> ad.AnnData:
    """Counts (every row distinct) of control, A, B in ct1/ct2 x b1/b2, with a counts layer."""
    rng = np.random.default_rng(0)
    rows = [(c, t, b) for c in ("control", "A", "B") for t in ("ct1", "ct2") for b in ("b1", "b2") for _ in range(6)]
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type", "batch"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(2.0, (len(rows), 12)).astype(dtype)
    x[:, 0] = np.arange(len(rows)) + 1
    a = ad.AnnData(X=x if dense else sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(12)]))
    a.layers["counts"] = sp.csr_matrix(x)
    return a


def _edit(path, name, edit):
    """Rewrite the zarr array ``name`` of the store at ``path`` through zarr, then put the top entries' times back (the
    older stamp saw those only)."""
    top = {p: os.stat(p) for p in [path, *path.iterdir()]}
    arr = zarr.open_array(str(path / name), mode="r+")
    edit(arr)
    for p, st in top.items():
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("name,edit", [
    ("X/data", lambda a: a.__setitem__(slice(0, 3), 99.0)),
    ("obs/cell_type/codes", lambda a: a.__setitem__(slice(0, 2), a[2:4])),
    ("layers/counts/data", lambda a: a.__setitem__(slice(0, 3), 99.0)),
])
def test_a_nested_zarr_chunk_changed_after_open_is_refused(tmp_path, name, edit):
    path = tmp_path / "atlas.zarr"
    _adata().write_zarr(path)
    cells = DiskCells(path, SCHEMA)
    cells.read(np.arange(3))
    _edit(path, name, edit)
    with pytest.raises(InputFileError, match="changed since"):  # the open handle: its folders' times changed
        cells.read(np.arange(3))
    worker = pickle.loads(pickle.dumps(cells))  # as a DataLoader worker gets it
    with pytest.raises(InputFileError, match="changed since"):
        worker.read(np.arange(3))


def test_a_zarr_chunk_rewritten_in_place_is_refused_at_the_next_open(tmp_path):
    path = tmp_path / "atlas.zarr"
    _adata().write_zarr(path)
    cells = DiskCells(path, SCHEMA)
    cells.close()
    chunk = next(p for p in (path / "X" / "data").iterdir() if not p.name.startswith("."))
    st = os.stat(chunk)
    with open(chunk, "r+b") as f:  # the same bytes, written again in place: no folder changes, the file's time does
        data = f.read()
        f.seek(0)
        f.write(data)
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(InputFileError, match="changed since"):
        cells.read(np.arange(3))


def test_an_older_top_level_zarr_stamp_is_still_checked_as_written(tmp_path):
    path = tmp_path / "atlas.zarr"
    _adata().write_zarr(path)
    new = file_stamp(path)
    old = new[1:-2]  # the form an older distgen recorded: folder and top entries, no marker, no digests
    assert stamp_matches(path, old) and stamp_matches(path, new)
    cells = DiskCells(path, SCHEMA)
    cells._stamp = old  # a DiskCells pickled by an older distgen
    cells.close()
    assert cells.read(np.arange(3)).shape == (3, 12)
    os.utime(path / "obs", ns=(0, 1_000_000))
    assert not stamp_matches(path, old)
    with pytest.raises(InputFileError, match="changed since"):
        cells.read(np.arange(3))


def _fingerprint(tmp_path, name, adata, form=None):
    from distgen.data.disk_fingerprint import content_fingerprint

    path = tmp_path / name
    adata.write_h5ad(path)
    cells = DiskCells(path, SCHEMA)
    return content_fingerprint(cells) if form is None else content_fingerprint(cells, form=form)


def test_the_content_fingerprint_depends_on_the_values_not_their_storage(tmp_path):
    base = _fingerprint(tmp_path, "csr32.h5ad", _adata())
    assert _fingerprint(tmp_path, "dense32.h5ad", _adata(dense=True)) == base
    assert _fingerprint(tmp_path, "csr64.h5ad", _adata(dtype=np.float64)) == base  # counts: exactly equal in float32
    assert _fingerprint(tmp_path, "dense64.h5ad", _adata(dense=True, dtype=np.float64)) == base
    zeros = _adata()  # a CSR matrix holding explicit zeros: the same matrix
    x = zeros.X.toarray()
    r, c = np.nonzero(x == 0)
    m = sp.csr_matrix(x)
    m = sp.csr_matrix((np.r_[m.data, np.zeros(r.size, np.float32)], (np.r_[m.nonzero()[0], r], np.r_[m.nonzero()[1], c])),
                      shape=x.shape)
    zeros.X = m
    assert zeros.X.nnz > _adata().X.nnz
    assert _fingerprint(tmp_path, "zeros.h5ad", zeros) == base
    edited = _adata(dense=True)
    edited.X[17, 5] += 1  # one value of one (sampled: every row of a small file) cell, dense
    assert _fingerprint(tmp_path, "edited.h5ad", edited) != base


def test_an_older_content_fingerprint_is_checked_as_written(tmp_path):
    from distgen.data.disk_fingerprint import check_fingerprint

    old = _fingerprint(tmp_path, "a.h5ad", _adata(), form=1)
    assert ":" not in old and len(old) == 16
    cells = DiskCells(tmp_path / "a.h5ad", SCHEMA)
    check_fingerprint(cells, old)  # a run recorded before: the same file passes
    check_fingerprint(cells, _fingerprint(tmp_path, "b.h5ad", _adata()))
    _adata(dense=True).write_h5ad(tmp_path / "dense.h5ad")  # the old form tells storage apart, as it did
    with pytest.raises(InputDataError, match="not the file the run trained on"):
        check_fingerprint(DiskCells(tmp_path / "dense.h5ad", SCHEMA), old)
    with pytest.raises(InputDataError, match="form this distgen does not know"):
        check_fingerprint(cells, "9:0123456789abcdef")


def _deep(n_genes: int = 3000) -> ad.AnnData:
    """Counts with cell 0's library size about 3e7 (odd counts: a float32 running sum past 2**24 rounds)."""
    rng = np.random.default_rng(3)
    rows = [(c, t, b) for c in ("control", "A") for t in ("ct1",) for b in ("b1",) for _ in range(4)]
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type", "batch"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(2.0, (len(rows), n_genes)).astype(np.float32)
    x[0] = 2 * rng.integers(4000, 6000, n_genes) + 1
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))


def test_a_library_of_3e7_counts_is_normalised_with_its_exact_size_on_disk_and_in_memory(tmp_path):
    from distgen.data.dataset import _lognormalize

    a = _deep()
    counts = a.X.toarray().astype(np.float64)
    size = counts.sum(1)
    assert size[0] > 2.5e7
    exact = np.log1p(counts / size[:, None] * 1e4).astype(np.float32)
    path = tmp_path / "deep.h5ad"
    a.write_h5ad(path)
    cells = DiskCells(path, SCHEMA)
    streamed = cells.read(np.arange(a.n_obs)).toarray()
    assert np.array_equal(streamed[0], exact[0])  # the float32 running sum was off: values one float32 step away
    assert cells.library_sizes(np.arange(1))[0] == size[0]
    memory = _lognormalize(ad.read_h5ad(path).X, 1e4)  # what PerturbationData.from_anndata normalises counts with
    assert np.array_equal(memory.toarray(), streamed)
    assert np.array_equal(_lognormalize(a.X.toarray(), 1e4), streamed)  # dense in memory too
    small = _adata()  # cells of ordinary depth: as before, bit for bit (scanpy's float32 normalisation)
    import scanpy as sc

    ref = ad.AnnData(X=small.X.copy())
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    assert np.array_equal(_lognormalize(small.X, 1e4).toarray(), ref.X.toarray())


def test_a_count_past_float32s_exact_range_is_written_with_a_warning():
    import warnings

    from distgen.data.counts import stored_counts, to_counts
    from distgen.errors import DistgenWarning

    x = np.log1p(np.array([[1e4, 1.0]]))  # all of a 3e7 library in one gene: an expected count of 3e7 (odd: 30,000,001)
    with pytest.warns(DistgenWarning, match="exceed 2\\*\\*24"):
        to_counts(x, 30_000_001.0, 1e4, "round")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_counts(x, 16_000_000.0, 1e4, "round")[0, 0] == 16_000_000  # within the exact range: no word, exact
    large = sp.csr_matrix(np.array([[30_000_001.0, 0.0]]))
    with pytest.warns(DistgenWarning, match="stored counts"):
        stored_counts(np.zeros((1, 2), np.float32), large, np.array([0]), np.array([0, 1]))


@pytest.mark.parametrize("layout", ["unsorted", "stored zero", "stored twice"])
def test_a_deep_row_stored_out_of_order_is_normalised_by_column_in_memory(layout):
    """Review of storage round 2: ``exact_deep_rows`` wrote the float64 values of a deep row over scanpy's output by
    position, but scanpy's copy of a CSR matrix sorts its columns (and sums values stored twice), ``x[rows]`` keeps them
    as stored: a deep row with unsorted column indices, or a stored zero among its values, got its values in the wrong
    genes (log values off by up to 9) without a word. Each value must sit in its own gene, as the float64 sums give it."""
    from distgen.data.dataset import _lognormalize

    x = _deep().X.astype(np.float64).toarray()
    n = int((x[0] > 0).sum())  # row 0, the deep one, stores every gene
    assert n == x.shape[1] and x[0].sum() > 2**24
    exact = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    m = sp.csr_matrix(x)
    r0 = slice(m.indptr[0], m.indptr[1])
    data, indices, indptr = m.data.copy(), m.indices.copy(), m.indptr.copy()
    if layout == "unsorted":  # row 0 (the deep one) with its columns in reverse order
        data[r0], indices[r0] = data[r0][::-1].copy(), indices[r0][::-1].copy()
    elif layout == "stored zero":  # a zero stored first in row 0, in gene 5 (one more entry)
        data, indices = np.r_[0.0, data], np.r_[5, indices]
        indptr = np.r_[0, indptr[1:] + 1]
    else:  # gene 7's count of row 0 stored as two parts, the second at the row's end
        half = data[7] // 2
        data = np.r_[data[:7], data[7] - half, data[8:n], half, data[n:]]
        indices = np.r_[indices[:n], 7, indices[n:]]
        indptr = np.r_[0, indptr[1:] + 1]
    odd = sp.csr_matrix((data, indices, indptr), shape=m.shape)
    assert np.array_equal(odd.toarray(), x)  # the same matrix, stored otherwise
    got = _lognormalize(odd, 1e4)
    assert np.allclose(np.asarray(got.toarray(), dtype=np.float64), exact, rtol=1e-6, atol=1e-6)
    assert np.array_equal(got.toarray()[0], _lognormalize(m, 1e4).toarray()[0])  # as the sorted, plain row gives it


def test_a_zarr_store_is_walked_once_when_opened_and_never_at_a_read(tmp_path, monkeypatch):
    """Review of storage round 2: ``DiskCells(path)`` walked the whole store twice (``store_stamp``, then the first
    ``_open`` compared a fresh full stamp with the one just taken), a ``stat`` of every chunk file twice: 2x the open's
    cost on a store of 20,000 chunk files (0.8 s a walk measured). The stamp is taken once at open; a read in the same
    process checks the folders only; a pickled copy (a worker) walks it once again."""
    from distgen.data import disk

    _adata().write_zarr(tmp_path / "a.zarr")
    walks = []
    real = disk._walk
    monkeypatch.setattr(disk, "_walk", lambda path: walks.append(path) or real(path))
    cells = DiskCells(tmp_path / "a.zarr", SCHEMA)
    assert len(walks) == 1
    cells.read(np.arange(5))
    assert len(walks) == 1
    copy = pickle.loads(pickle.dumps(cells))
    copy.read(np.arange(5))
    assert len(walks) == 2  # the copy checks every file of the store once, at its own open
    copy.read(np.arange(5, 9))
    assert len(walks) == 2


def test_the_per_read_folder_check_agrees_with_the_walk_where_scandir_gives_no_inode(tmp_path, monkeypatch):
    """Review of storage round 2: the walk stamped each entry with ``os.scandir``'s ``DirEntry.stat()``, the per-read
    check with ``os.stat``; on Windows ``DirEntry.stat()`` gives ``st_ino`` (and ``st_dev``) 0 where ``os.stat`` gives the
    file's index, so every read of a zarr store there was refused as changed. Here ``scandir``'s entries are made to
    answer as on Windows: a store only read must still be read."""
    from distgen.data import disk

    class WindowsEntry:
        def __init__(self, entry):
            self._e = entry
            self.name, self.path = entry.name, entry.path

        def is_dir(self, follow_symlinks=True):
            return self._e.is_dir(follow_symlinks=follow_symlinks)

        def stat(self, follow_symlinks=True):
            st = list(self._e.stat(follow_symlinks=follow_symlinks))
            st[1] = st[2] = 0  # st_ino, st_dev: 0 from DirEntry.stat() on Windows
            return os.stat_result(st)

    class Listing:
        def __init__(self, folder):
            self._it = real(folder)

        def __enter__(self):
            return (WindowsEntry(e) for e in self._it.__enter__())

        def __exit__(self, *exc):
            return self._it.__exit__(*exc)

    real = os.scandir
    _adata().write_zarr(tmp_path / "a.zarr")
    monkeypatch.setattr(disk.os, "scandir", Listing)
    cells = DiskCells(tmp_path / "a.zarr", SCHEMA)
    assert cells.read(np.arange(5)).shape[0] == 5
    assert cells.read(np.arange(5, 9)).shape[0] == 4
