"""Tiny seeded AnnData fixtures for the data tests."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest


def make_adata(
    n_per_group: int = 12,
    conditions: tuple[str, ...] = ("control", "A", "B", "C", "A+B", "B+C", "D+E"),
    contexts: tuple[str, ...] = ("ct1", "ct2"),
    batches: tuple[str, ...] = ("b1", "b2"),
    n_genes: int = 15,
    counts: bool = True,
    seed: int = 0,
) -> ad.AnnData:
    """Counts (or log1p) AnnData: every condition in every context and batch; genes include A..E."""
    rng = np.random.default_rng(seed)
    genes = ["A", "B", "C", "D", "E"] + [f"g{i}" for i in range(n_genes - 5)]
    rows, xs = [], []
    for ci, cond in enumerate(conditions):
        for ki, ctx in enumerate(contexts):
            for bi, bat in enumerate(batches):
                lam = np.exp(rng.normal(1.0, 0.5, n_genes) + 0.5 * ci * (np.arange(n_genes) == ci % n_genes) + 0.3 * ki + 0.1 * bi)
                xs.append(rng.poisson(lam, (n_per_group, n_genes)).astype(np.float32))
                rows += [(cond, ctx, bat)] * n_per_group
    x = np.concatenate(xs)
    if not counts:
        x = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "donor"])
    obs.index = pd.Index([f"c{i}" for i in range(len(obs))])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=pd.Index(genes)))


@pytest.fixture
def tiny_adata() -> ad.AnnData:
    return make_adata()


@pytest.fixture
def tiny_schema():
    from distgen.data import PerturbationSchema

    return PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")


def write_with_held_out_shuffled(adata: ad.AnnData, held: np.ndarray, tmp_path) -> tuple:
    """``adata`` written twice under ``tmp_path``: as it is (``orig.h5ad``) and with the genes of every ``held`` cell
    shuffled (``perm.h5ad``: library sizes kept, every value moved), for leakage tests that expect nothing fitted to change."""
    orig = tmp_path / "orig.h5ad"
    adata.write_h5ad(orig)
    rng = np.random.default_rng(7)
    x = adata.X.copy()
    for i in held:
        x[i] = x[i][rng.permutation(x.shape[1])]
    assert not np.array_equal(x[held], adata.X[held])
    shuffled = adata.copy()
    shuffled.X = x
    perm = tmp_path / "perm.h5ad"
    shuffled.write_h5ad(perm)
    return orig, perm
