"""A streamed run's file rewritten between training and ``predict_to_disk`` with the same cell names and labels but other
values was predicted without a word: the split checks names and labels only (streaming round, left over). The content
fingerprint (``distgen.data.disk_fingerprint``) recorded at training tells it, and is the same for an unchanged file and
a compressed copy of it."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data import PerturbationSchema
from distgen.data.disk import DiskCells
from distgen.data.disk_fingerprint import content_fingerprint
from distgen.data.disk_predict import predict_to_disk
from distgen.errors import InputDataError
from distgen.models.baselines.control import ControlBaseline

SCHEMA = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch")


def _adata(seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    rows = [(c, t, b) for c in ("control", "A", "B") for t in ("ct1", "ct2") for b in ("b1", "b2") for _ in range(5)]
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type", "batch"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(2.0, (len(rows), 8)).astype(np.float32)
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(8)]))


def _fp(path, **kw):
    return content_fingerprint(DiskCells(path, SCHEMA), **kw)


def test_the_same_content_keeps_its_fingerprint_and_other_values_change_it(tmp_path):
    a = _adata()
    a.write_h5ad(tmp_path / "a.h5ad")
    a.write_h5ad(tmp_path / "copy.h5ad", compression="gzip")
    a[np.random.default_rng(1).permutation(a.n_obs)].copy().write_h5ad(tmp_path / "shuffled.h5ad")
    fp = _fp(tmp_path / "a.h5ad")
    assert _fp(tmp_path / "copy.h5ad") == fp
    edited = a.copy()
    x = edited.X.copy()
    x.data[7] += 1  # one stored value of one cell: names, labels and the stored-value count unchanged
    edited.X = x
    edited.write_h5ad(tmp_path / "edited.h5ad")
    assert _fp(tmp_path / "edited.h5ad") != fp  # every row sampled in a small file
    other = _adata(seed=5)  # the same names and labels, other values
    other.write_h5ad(tmp_path / "other.h5ad")
    assert _fp(tmp_path / "other.h5ad") != fp
    assert _fp(tmp_path / "shuffled.h5ad") != fp  # as the split's data_hash: tied to the row order


def test_predict_to_disk_refuses_a_file_rewritten_since_training(tmp_path):
    path = tmp_path / "train.h5ad"
    _adata().write_h5ad(path)
    recorded = content_fingerprint(DiskCells(path, SCHEMA))  # at training
    out = predict_to_disk(ControlBaseline(), DiskCells(path, SCHEMA), tmp_path / "p1.h5ad", set_size=4, fingerprint=recorded)
    assert out.is_file()
    _adata(seed=5).write_h5ad(path)  # rewritten with the same names and labels: predicted without a word before
    with pytest.raises(InputDataError, match="not the file the run trained on") as e:
        predict_to_disk(ControlBaseline(), DiskCells(path, SCHEMA), tmp_path / "p2.h5ad", set_size=4, fingerprint=recorded)
    assert recorded in str(e.value) and not (tmp_path / "p2.h5ad").exists()
