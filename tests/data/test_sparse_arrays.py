"""A file's matrix held as a scipy sparse *array* (``csr_array``/``csc_array``, what newer scipy and anndata code makes)
loads as the same dataset as the sparse *matrix* of the same values: counts are normalised by scanpy, which refused a
``csr_array`` ("Data matrix has wrong shape (N, 1)"), and log values are read as they are."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from distgen.data.dataset import PerturbationData


def _adata(x: object) -> ad.AnnData:
    n = 60
    obs = pd.DataFrame({"condition": ["control"] * 20 + ["A"] * 20 + ["B"] * 20}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(30)]))


def _counts() -> np.ndarray:
    x = np.random.default_rng(0).poisson(2.0, size=(60, 30)).astype(np.float32)
    x[:, 0] += 1  # no empty cell
    x[20:40, 1] *= 5  # A raises g1
    return x


@pytest.mark.parametrize("kind", [sp.csr_array, sp.csc_array])
@pytest.mark.parametrize("scale", ["counts", "log"])
def test_a_sparse_array_loads_as_the_sparse_matrix_of_its_values(kind: type, scale: str) -> None:
    x = _counts() if scale == "counts" else np.log1p(_counts())
    want = PerturbationData.from_anndata(_adata(sp.csr_matrix(x)))
    got = PerturbationData.from_anndata(_adata(kind(x)))
    assert torch.equal(got.table.X, want.table.X)
    assert got.hash == want.hash
    assert list(got.conditions) == list(want.conditions)
    if scale == "counts":  # normalised: each cell's expm1 sums to the target, not the raw counts read as log
        assert not torch.allclose(got.table.X, torch.log1p(torch.from_numpy(x)))
