"""An AnnData from a notebook is read, never shared or modified: a dense float32 ``X`` is copied (editing the AnnData
afterwards changes nothing distgen holds), and a backed AnnData is read into memory."""

import anndata as ad
import numpy as np
import pytest
import torch

from distgen.data import bundled
from distgen.data.dataset import PerturbationData


@pytest.fixture(scope="module")
def dense():
    adata = bundled.norman_k562()
    adata.X = adata.X.toarray()  # a dense float32 X, as most notebooks hold one
    assert adata.X.dtype == np.float32
    return adata


def test_editing_the_anndata_after_loading_changes_nothing_loaded(dense):
    adata = dense.copy()
    data = PerturbationData.from_anndata(adata, bundled.NORMAN_SCHEMA)
    encoded = data.encode(adata)
    kept, kept_encoded = data.table.X.clone(), encoded.X.clone()
    adata.X *= 0.0  # in place, as sc.pp.scale(adata) or a typo in a notebook cell would
    adata.X[:, :3] = 7.0
    torch.testing.assert_close(data.table.X, kept, rtol=0, atol=0)  # were the user's array before: zeros and sevens now
    torch.testing.assert_close(encoded.X, kept_encoded, rtol=0, atol=0)
    data.table.X[:] = -1.0  # and the other way round: what distgen does to its tensors never reaches the AnnData
    assert float(np.abs(adata.X[:, 3:]).max()) == 0.0


def test_a_backed_anndata_is_read_into_memory(dense, tmp_path):
    path = tmp_path / "cells.h5ad"
    dense.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    data = PerturbationData.from_anndata(backed, bundled.NORMAN_SCHEMA)  # was TypeError: ufunc 'isfinite' not supported
    want = PerturbationData.from_anndata(dense, bundled.NORMAN_SCHEMA)
    torch.testing.assert_close(data.table.X, want.table.X, rtol=0, atol=0)
    torch.testing.assert_close(want.encode(backed).X, want.table.X, rtol=0, atol=0)
    assert backed.isbacked  # the caller's object is still the backed one
