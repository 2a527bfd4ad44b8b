"""Streaming round, 2026-12-06: the on-disk path (``DiskCells`` and what reads through it) gives what the in-memory
path gives on the same file, and refuses what it refuses.

Before: a file with a duplicated cell name streamed (the in-memory load refuses it: the split, the written files and
the leakage checks identify cells by name; on disk a shuffled copy of it gave other batches, the name order being
ambiguous); a file replaced or rewritten after a ``DiskCells`` opened it was read, by a ``DataLoader`` worker or any
reopened copy, with the labels of the old file (another cell's values under a cell's condition, without a word); a
missing label was named by its row number (``'3'``), not by the cell's name as in memory.
"""

import os
import pickle

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.disk import DiskCells
from distgen.errors import InputDataError, InputFileError

SCHEMA = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch")


def _adata(seed: int = 0, shuffle: bool = False) -> ad.AnnData:
    """Counts (every row distinct) of control, A, B, A+B in ct1/ct2 x b1/b2."""
    rng = np.random.default_rng(seed)
    rows = [(c, t, b) for c in ("control", "A", "B", "A+B") for t in ("ct1", "ct2") for b in ("b1", "b2") for _ in range(6)]
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type", "batch"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(2.0, (len(rows), 12)).astype(np.float32)
    x[:, 0] = np.arange(len(rows)) + 1
    a = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(12)]))
    return a[rng.permutation(a.n_obs)].copy() if shuffle else a


def test_a_duplicated_cell_name_is_refused_on_disk_as_in_memory(tmp_path):
    a = _adata()
    a.obs_names = [f"c{i % 40}" for i in range(a.n_obs)]
    path = tmp_path / "dup.h5ad"
    a.write_h5ad(path)
    with pytest.raises(InputDataError, match="occur more than once") as mem:
        PerturbationData.from_anndata(ad.read_h5ad(path), SCHEMA)
    with pytest.raises(InputDataError, match="occur more than once") as disk:
        DiskCells(path, SCHEMA)
    assert "obs_names_make_unique" in str(disk.value) and "'c0'" in str(disk.value) and "'c0'" in str(mem.value)


def test_a_missing_label_on_disk_is_named_by_the_cell_as_in_memory(tmp_path):
    a = _adata()
    a.obs["cell_type"] = a.obs["cell_type"].astype(object)
    a.obs.loc["c30", "cell_type"] = np.nan
    path = tmp_path / "nan.h5ad"
    a.write_h5ad(path)
    with pytest.raises(InputDataError, match="'c30'"):
        DiskCells(path, SCHEMA)


def _replace(path, adata):
    adata.write_h5ad(str(path) + ".new")
    os.replace(str(path) + ".new", path)


def test_a_file_replaced_after_it_was_opened_is_refused_where_it_is_read_again(tmp_path):
    path = tmp_path / "atlas.h5ad"
    _adata().write_h5ad(path)
    cells = DiskCells(path, SCHEMA)
    before = cells.read(np.arange(8)).toarray()
    _replace(path, _adata(shuffle=True))  # same names and labels, other row order: the old labels fit other rows now
    worker = pickle.loads(pickle.dumps(cells))  # as a DataLoader worker (spawn) or any reopened copy gets it
    with pytest.raises(InputFileError, match="changed since") as err:
        worker.read(np.arange(8))
    assert str(path) in str(err.value) and "DiskCells" in str(err.value)
    with pytest.raises(InputFileError, match="changed since"):  # the open handle too: the labels are the old file's
        cells.read(np.arange(8))
    again = DiskCells(path, SCHEMA)  # opened anew: read as it is now
    assert not np.array_equal(again.read(np.arange(8)).toarray(), before)


def test_a_file_rewritten_in_place_after_it_was_opened_is_refused(tmp_path):
    import h5py

    path = tmp_path / "atlas.h5ad"
    _adata().write_h5ad(path)
    cells = DiskCells(path, SCHEMA)
    cells.close()
    st = os.stat(path)
    with h5py.File(path, "r+") as f:
        f["X"]["data"][:3] = 99.0
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # at least one tick later, on any file system
    with pytest.raises(InputFileError, match="changed since"):
        cells.read(np.arange(3))


@pytest.mark.parametrize("store", ["h5ad", "zarr"])
def test_an_unchanged_file_reopened_reads_as_before(tmp_path, store):
    path = tmp_path / f"atlas.{store}"
    getattr(_adata(), f"write_{store}")(path)
    cells = DiskCells(path, SCHEMA)
    before = cells.read(np.arange(20)).toarray()
    cells.close()
    worker = pickle.loads(pickle.dumps(cells))
    assert np.array_equal(worker.read(np.arange(20)).toarray(), before)
    assert np.array_equal(cells.read(np.arange(20)).toarray(), before)


def test_a_zarr_store_written_again_after_it_was_opened_is_refused(tmp_path):
    path = tmp_path / "atlas.zarr"
    _adata().write_zarr(path)
    cells = DiskCells(path, SCHEMA)
    cells.close()
    import shutil

    shutil.rmtree(path)
    _adata(shuffle=True).write_zarr(path)  # as anndata writes a store again: a new folder at the same path
    with pytest.raises(InputFileError, match="changed since"):
        cells.read(np.arange(3))


_WORKERS_AFTER_SCANPY = """
import sys, numpy as np
from distgen.data import PerturbationSchema
from distgen.data.disk import DiskCells
from distgen.data.streaming import StreamBatches
cells = DiskCells(sys.argv[1], PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch"))
cells.read(np.arange(10))  # raw counts normalised here, in the parent: numba's threads start
source = StreamBatches(cells, set_size=4, sets_per_batch=2, num_workers=1, chunk_cells=7)
try:
    print("batch", tuple(source.batch(0).shape))
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("layer, scanpy_first", [("omp", False), ("workqueue", False), (None, False), (None, True)])
def test_workers_forked_after_scanpy_ran_say_why_instead_of_dying(tmp_path, layer, scanpy_first):
    """None: the user chose no layer, and importing distgen asks numba for a fork-safe one (``runtime.NUMBA_LAYER``): the
    workers read. Before, numba's default on Linux without TBB (GNU OpenMP) killed them. ``scanpy_first``: numba was
    imported before distgen (``import scanpy`` first, as notebooks do), its threads not started: the layer is asked for
    all the same (before: the variable was set only where numba was not imported yet, and the worker got the error)."""
    import subprocess
    import sys

    path = tmp_path / "counts.h5ad"
    _adata().write_h5ad(path)
    env = {**{k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}, "OMP_NUM_THREADS": "1",
           **({"NUMBA_THREADING_LAYER": layer} if layer else {})}
    script = ("import scanpy\n" if scanpy_first else "") + _WORKERS_AFTER_SCANPY
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    if layer == "omp":  # before: "RuntimeError DataLoader worker (pid(s) ...) exited unexpectedly"
        assert "DistgenError" in done.stdout and "NUMBA_THREADING_LAYER=workqueue" in done.stdout, done.stdout + done.stderr
    else:
        assert "batch (2, 4, 12)" in done.stdout, done.stdout + done.stderr


def test_raw_counts_stream_as_they_load_in_memory(tmp_path):
    import scanpy as sc
    import torch

    a = _adata()
    a.raw = a.copy()  # the counts, every gene
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    a = a[:, :5].copy()  # X: fewer genes, scaled, as scanpy leaves a file
    sc.pp.scale(a)
    path = tmp_path / "raw.h5ad"
    a.write_h5ad(path)
    schema = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch", expression="raw")
    mem = PerturbationData.from_anndata(ad.read_h5ad(path), schema)
    disk = DiskCells(path, schema)  # before: "streaming reads 'X' or a layer"
    assert disk.info == mem.info and len(disk.info.genes) == 12
    assert torch.equal(disk.labels.perturbation, mem.table.labels.perturbation)
    assert np.array_equal(disk.read(np.arange(disk.n_cells)).toarray(), mem.table.X.numpy())
    _adata().write_h5ad(tmp_path / "plain.h5ad")
    with pytest.raises(KeyError, match=r"has no \.raw"):
        DiskCells(tmp_path / "plain.h5ad", schema)


def _late_value(tmp_path, value, n=2600):
    """Counts of 2,600 cells with ``value`` at row 2,400: past the 2,000 rows a DiskCells describes the file from."""
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"perturbation": np.repeat(["control", "A", "B"], [1000, 800, 800]), "cell_type": "ct1", "batch": "b1"},
                       index=[f"c{i}" for i in range(n)])
    x = rng.poisson(2.0, (n, 10)).astype(np.float32)
    x[2400, 3] = value
    path = tmp_path / "late.h5ad"
    ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(10)])).write_h5ad(path)
    return path


@pytest.mark.parametrize(("value", "said"), [(np.nan, "NaN/inf"), (np.inf, "NaN/inf"), (-3.0, "negative values"),
                                             (0.37, "not whole numbers")])
def test_a_bad_value_past_the_rows_a_file_is_described_from_is_refused_when_streamed(tmp_path, value, said):
    from distgen.data.streaming import StreamBatches

    path = _late_value(tmp_path, value)
    with pytest.raises(InputDataError):  # in memory, the whole matrix is checked
        PerturbationData.from_anndata(ad.read_h5ad(path), SCHEMA)
    source = StreamBatches(DiskCells(path, SCHEMA), set_size=64, sets_per_batch=4)
    # before: NaN and inf ended in scanpy's "Input contains NaN", -3 and 0.37 were streamed as counts without a word
    with pytest.raises(InputDataError, match=said) as err:
        for step in range(source.steps_per_epoch):
            source.batch(step)
    assert str(path) in str(err.value)


def test_an_unlogged_value_past_the_rows_a_log_file_is_described_from_is_refused_when_streamed(tmp_path):
    from distgen.data.streaming import StreamBatches

    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"perturbation": np.repeat(["control", "A", "B"], [1000, 800, 800]), "cell_type": "ct1", "batch": "b1"},
                       index=[f"c{i}" for i in range(2600)])
    x = np.log1p(rng.poisson(2.0, (2600, 10)).astype(np.float32) * 1.7)
    x[2400] = np.expm1(x[2400]) * 100.0  # one cell normalised but never logged
    path = tmp_path / "late_log.h5ad"
    ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(10)])).write_h5ad(path)
    with pytest.raises(InputDataError):
        PerturbationData.from_anndata(ad.read_h5ad(path), SCHEMA)
    source = StreamBatches(DiskCells(path, SCHEMA), set_size=64, sets_per_batch=4)
    with pytest.raises(InputDataError, match="not read it as log values"):  # before: streamed as log values
        for step in range(source.steps_per_epoch):
            source.batch(step)


def test_a_value_stored_twice_in_a_sparse_row_streams_as_it_loads_in_memory(tmp_path):
    x = _adata().X.toarray()
    m = sp.csr_matrix(x)
    # row 1 holds its first stored entry twice (5 more counts), as a hand-written or concatenated matrix may
    at = m.indptr[1]
    indices = np.insert(m.indices, at, m.indices[at])
    data = np.insert(m.data, at, 5.0)
    indptr = m.indptr.copy()
    indptr[2:] += 1
    a = _adata()
    a.X = sp.csr_matrix((data, indices, indptr), shape=m.shape)
    assert not a.X.has_canonical_format
    path = tmp_path / "dup_entries.h5ad"
    a.write_h5ad(path)
    mem = PerturbationData.from_anndata(ad.read_h5ad(path), SCHEMA).table.X.numpy()
    disk = DiskCells(path, SCHEMA).read(np.arange(a.n_obs)).toarray()
    assert np.array_equal(disk, mem)  # before: log1p of each part, summed (row 1 off by up to 5.8)


def test_a_log2_file_after_natural_log_first_rows_is_refused_on_disk_as_in_memory(tmp_path):
    """The log base was told from the file's first 2,000 rows on disk, from 200 rows spread over the whole matrix in
    memory: natural-log first rows over a log2 rest streamed as natural log (every later value 1.44x too large)."""
    rng = np.random.default_rng(0)
    n = 20_000
    counts = rng.poisson(rng.gamma(2.0, 1.0, (n, 12))).astype(np.float64) + (np.arange(12) < 5)  # 5+ non-zeros a cell
    normalised = counts / counts.sum(1, keepdims=True) * 1e4
    x = np.log1p(normalised) / np.log(2.0)
    x[:2000] = np.log1p(normalised[:2000])  # the rows a DiskCells was described from: natural log
    obs = pd.DataFrame({"perturbation": np.repeat(["control", "A", "B"], [n - 2000, 1000, 1000]), "cell_type": "ct1",
                        "batch": "b1"}, index=[f"c{i}" for i in range(n)])
    path = tmp_path / "late_log2.h5ad"
    ad.AnnData(X=sp.csr_matrix(x.astype(np.float32)), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(12)])).write_h5ad(path)
    with pytest.raises(InputDataError, match="log2"):
        PerturbationData.from_anndata(ad.read_h5ad(path), SCHEMA)
    with pytest.raises(InputDataError, match="log2"):  # before: opened, and streamed as natural log
        DiskCells(path, SCHEMA)
    small = tmp_path / "ln.h5ad"  # natural log throughout, fewer cells than the sample: opens as before
    x[:] = np.log1p(normalised)
    ad.AnnData(X=sp.csr_matrix(x[:150].astype(np.float32)), obs=obs.iloc[:150].assign(perturbation=["control"] * 100 + ["A"] * 50),
               var=pd.DataFrame(index=[f"g{i}" for i in range(12)])).write_h5ad(small)
    assert DiskCells(small, SCHEMA).scale == "log"
