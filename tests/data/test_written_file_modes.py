"""Files published by temp file + rename (predictions, truth, split files) get the mode a plain write gives.

``tempfile.mkstemp`` makes its file ``0600`` whatever the umask and the rename keeps it: on a shared
cluster nobody but the owner could read a prediction or predict from a run (its ``split.json``). A write
that fails leaves no temp file behind.
"""

import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.data import layout
from distgen.data.split import Split


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _adata():
    obs = pd.DataFrame({"target": ["control", "A"]}, index=["c0", "c1"])
    return ad.AnnData(X=np.ones((2, 3), dtype=np.float32), obs=obs, var=pd.DataFrame(index=["g0", "g1", "g2"]))


def _split():
    idx = torch.arange(4)
    return Split(kind="random_conditions", seed=0, train=idx, val=idx[:0], test=idx[:2], train_conditions=("A",),
                 val_conditions=(), test_conditions=("B",), test_groups=(("B", "k"),), data_hash="0" * 16, n_cells=4)


def test_h5ad_and_split_files_follow_the_umask(tmp_path, umask):
    layout._write(_adata(), tmp_path / "pred.h5ad")
    _split().save(tmp_path / "split.json")
    for name in ("pred.h5ad", "split.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.h5ad", "split.json"]  # no temp file left


def test_a_failed_h5ad_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "pred.h5ad"
    layout._write(_adata(), path)
    before = path.read_bytes()

    def broken(self, filename, **kw):
        with open(filename, "wb") as fh:
            fh.write(b"\x89HDF half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", broken)
    with pytest.raises(OSError):
        layout._write(_adata(), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["pred.h5ad"]
