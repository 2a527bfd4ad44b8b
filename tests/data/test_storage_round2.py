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
from distgen.errors import InputFileError

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
