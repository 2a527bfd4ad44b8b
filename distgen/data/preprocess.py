"""Gene selection through scanpy, fitted on training cells only when a split is in force."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd

from distgen.errors import InputDataError, InputKeyError
from distgen.wording import first_of

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData


def perturbed_genes(data: PerturbationData) -> list[str]:
    """Perturbation atoms that are also measured genes (genetic perturbations only)."""
    if data.info.perturbation_type != "genetic":
        return []
    genes = set(data.info.genes)
    return [p for p in data.info.perturbations if p in genes]


def hvg_indices(x: Any, n_top_genes: int, flavor: str = "seurat") -> np.ndarray:
    """Sorted column indices of the ``n_top_genes`` most variable genes of log-normalised cells ``x [N, G]`` (scanpy).

    scDFM evaluates on the 1,000 most variable genes of the test and control cells, chosen so.
    """
    import scanpy as sc

    arr = np.asarray(x, dtype=np.float32)
    if n_top_genes >= arr.shape[1]:
        return np.arange(arr.shape[1])
    if n_top_genes < 1 or arr.shape[0] < 2:
        raise ValueError(f"hvg_indices needs n_top_genes >= 1 and >= 2 cells, got {n_top_genes} and {arr.shape[0]}")
    tmp = ad.AnnData(X=arr)
    tmp.uns["log1p"] = {"base": None}
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top_genes, flavor=flavor)
    return np.flatnonzero(tmp.var["highly_variable"].to_numpy())


def highly_variable_genes(
    data: PerturbationData,
    n_top_genes: int,
    fit_on: Sequence[int] | Any | None = None,
    force_genes: Sequence[str] | None = None,
    force_perturbed: bool = True,
    flavor: str = "seurat",
) -> PerturbationData:
    """Keep ``n_top_genes`` highly variable genes (scanpy), plus the perturbed genes (as scDFM does).

    Parameters
    ----------
    fit_on
        Cell indices the selection is fitted on, normally ``split.train``; ``None`` fits on all
        cells (recorded, so that the leakage check flags it under a split).
    force_genes
        Extra genes kept whatever their variability.
    flavor
        scanpy flavor on log data (``"seurat"``, ``"cell_ranger"``); ``"seurat_v3"`` expects counts
        and is refused here because distgen holds log-normalised values.
    """
    if flavor == "seurat_v3":
        raise ValueError("flavor='seurat_v3' needs raw counts; distgen's tables are log-normalised: use 'seurat' or 'cell_ranger'")
    g = data.info.n_genes
    if n_top_genes <= 0:
        raise ValueError(f"n_top_genes must be positive, got {n_top_genes}")
    idx = np.arange(data.n_cells) if fit_on is None else np.asarray(fit_on, dtype=np.int64)
    if len(idx) < 2:
        raise InputDataError("highly_variable_genes needs at least 2 cells to fit on")
    forced = list(dict.fromkeys([*(perturbed_genes(data) if force_perturbed else []), *(force_genes or [])]))
    known = set(data.info.genes)
    unknown = [f for f in forced if f not in known]
    if unknown:
        raise InputKeyError(f"force_genes {first_of(unknown, 5, render=repr)} are not in the dataset")
    genes = list(data.info.genes) if n_top_genes >= g else hvg_names(data.table.X[idx].numpy(), data.info.genes, n_top_genes, forced, flavor)
    return data.subset_genes(genes, fitted_on=idx, name="hvg")


def hvg_names(x: Any, genes: Sequence[str], n_top_genes: int, forced: Sequence[str] = (), flavor: str = "seurat") -> list[str]:
    """The ``n_top_genes`` most variable of ``genes`` in log-normalised cells ``x [n, G]`` (dense or sparse: scanpy gives
    both the same numbers) and the ``forced`` ones, in the order of ``genes``."""
    import scanpy as sc

    if x.shape[0] and not _varies(x).any():  # scanpy's seurat flavour ends in an IndexError
        raise InputDataError(
            f"choosing the {n_top_genes} most variable genes (data.hvg): none of the {len(genes)} genes varies across the "
            f"{x.shape[0]} cells they are chosen on (each holds one value in all of them), so there is nothing to rank: "
            "check the data's expression values (a matrix of one value?), or keep every gene (remove data.hvg)")
    tmp = ad.AnnData(X=x, var=pd.DataFrame(index=pd.Index(list(genes))))
    tmp.uns["log1p"] = {"base": None}
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top_genes, flavor=flavor)
    chosen = set(tmp.var_names[tmp.var["highly_variable"].to_numpy()]) | set(forced)
    return [name for name in genes if name in chosen]


def _varies(x: Any) -> np.ndarray:
    """Whether each column of ``x`` (dense or a scipy sparse matrix) holds more than one value."""
    high, low = x.max(axis=0), x.min(axis=0)
    if hasattr(high, "toarray"):
        high, low = high.toarray(), low.toarray()
    return np.asarray(high).ravel() != np.asarray(low).ravel()


def hvg_before_densifying(outline: PerturbationData, x: Any, n_top_genes: int, fit_on: Sequence[int] | Any) -> list[str] | None:
    """``highly_variable_genes(data, n_top_genes, fit_on)``'s genes, chosen on the normalised matrix ``x`` as stored (sparse)
    before the dense table is built; ``outline``: the cells' labels and genes (``PerturbationData.from_anndata(select=...)``).

    Same genes, order and numbers as selecting on the dense table (scanpy's ``seurat`` flavour computes the same means
    and dispersions from a CSR matrix); None when every gene is kept.
    """
    import scipy.sparse as sp

    genes = list(outline.info.genes)
    if n_top_genes >= len(genes):
        return None
    idx = np.asarray(fit_on, dtype=np.int64)
    if len(idx) < 2:
        raise InputDataError("highly_variable_genes needs at least 2 cells to fit on")
    rows = x[idx]
    if sp.issparse(rows):
        rows = sp.csr_matrix(rows)  # a CSC file's rows; duplicated entries summed, as toarray() sums them
        rows.sum_duplicates()
        rows = rows.astype(np.float32)  # the dense table's float32 values
    else:
        rows = np.asarray(rows, dtype=np.float32)
    return hvg_names(rows, genes, n_top_genes, perturbed_genes(outline))
