"""A large synthetic perturbation atlas written to disk in chunks (sparse CSR), for scale benchmarks.

``write_large_synthetic("/tmp/atlas.h5ad", n_cells=1_000_000, n_genes=2000)`` writes a valid AnnData
(h5ad, or zarr when the path ends in ``.zarr``) without ever holding the matrix in memory: each chunk
of cells is generated, appended to ``X`` through anndata's own ``sparse_dataset(...).append`` and freed.
Peak memory is set by ``chunk_cells`` (about ``chunk_cells * n_genes * 6`` bytes: a dense detection mask).

The expression model is simple but structured, so that models have something to learn:
``x = log1p(exp(mu_g + delta_{p,g} + ctx_{c,g} + batch_{b,g} + noise))`` on a random subset of genes
per cell (detection rate ``density``), where ``delta`` is a low-rank perturbation effect plus a
knock-down of the perturbed gene itself. Values look like log-normalised counts (non-negative, sparse).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

CONTROL = "control"


@dataclass(frozen=True)
class SyntheticAtlasSpec:
    """Sizes and seed of a synthetic atlas (stored in ``uns['distgen_synthetic']`` of the file)."""

    n_cells: int = 1_000_000
    n_genes: int = 2000
    n_perturbations: int = 200
    n_contexts: int = 4
    n_batches: int = 8
    control_fraction: float = 0.05
    density: float = 0.1
    layout: str = "shuffled"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_cells < 1 or self.n_genes < 2:
            raise ValueError(f"need n_cells >= 1 and n_genes >= 2, got n_cells={self.n_cells}, n_genes={self.n_genes}")
        if not 1 <= self.n_perturbations <= self.n_genes:
            raise ValueError(
                f"n_perturbations={self.n_perturbations} must be in [1, n_genes={self.n_genes}]: atoms are gene knock-downs"
            )
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        if not 0.0 < self.control_fraction < 1.0:
            raise ValueError(f"control_fraction must be in (0, 1), got {self.control_fraction}")
        if self.layout not in ("shuffled", "grouped"):
            raise ValueError(f"layout must be 'shuffled' (cells in random order) or 'grouped' (sorted by condition), got {self.layout!r}")


def synthetic_obs(spec: SyntheticAtlasSpec) -> pd.DataFrame:
    """``[N]`` per-cell labels: ``perturbation`` (gene symbol or ``control``), ``cell_type``, ``batch``."""
    rng = np.random.default_rng([spec.seed, 1])
    genes = gene_names(spec.n_genes)
    n = spec.n_cells
    is_ctrl = rng.random(n) < spec.control_fraction
    pert = rng.integers(0, spec.n_perturbations, n) + 1
    pert[is_ctrl] = 0
    ctx = rng.integers(0, spec.n_contexts, n)
    bat = rng.integers(0, spec.n_batches, n)
    if spec.layout == "grouped":
        order = np.lexsort((bat, ctx, pert))
        pert, ctx, bat = pert[order], ctx[order], bat[order]
    return pd.DataFrame(
        {
            "perturbation": pd.Categorical.from_codes(pert, categories=[CONTROL, *genes[: spec.n_perturbations]]),
            "cell_type": pd.Categorical.from_codes(ctx, categories=[f"type{i}" for i in range(spec.n_contexts)]),
            "batch": pd.Categorical.from_codes(bat, categories=[f"plate{i}" for i in range(spec.n_batches)]),
        },
        index=pd.Index([f"cell{i:08d}" for i in range(n)], dtype=object),
    )


def gene_names(n_genes: int) -> list[str]:
    return [f"GENE{i:05d}" for i in range(n_genes)]


class _Effects:
    """Fixed per-gene parameters of the expression model (small: ``[P + 1, G]`` at most)."""

    def __init__(self, spec: SyntheticAtlasSpec) -> None:
        rng = np.random.default_rng([spec.seed, 2])
        g, p = spec.n_genes, spec.n_perturbations
        self.mu = rng.normal(0.5, 0.8, g).astype(np.float32)
        detect = np.exp(self.mu)
        self.detect = np.minimum(1.0, spec.density * g * detect / detect.sum()).astype(np.float32)
        rank = 4
        delta = rng.normal(0, 1, (p + 1, rank)) @ rng.normal(0, 0.3, (rank, g))
        delta[0] = 0.0  # control
        delta[np.arange(1, p + 1), np.arange(p)] -= 2.0  # knock-down of the target gene
        self.delta = delta.astype(np.float32)
        self.ctx = rng.normal(0, 0.4, (spec.n_contexts, g)).astype(np.float32)
        self.batch = rng.normal(0, 0.1, (spec.n_batches, g)).astype(np.float32)


def synthetic_chunk(
    spec: SyntheticAtlasSpec, effects: _Effects, pert: np.ndarray, ctx: np.ndarray, bat: np.ndarray, seed: int
) -> sp.csr_matrix:
    """``[n, G]`` CSR float32 expression of ``n`` cells with codes ``pert`` (0 = control), ``ctx``, ``bat``."""
    rng = np.random.default_rng([spec.seed, 3, seed])
    n = pert.shape[0]
    detected = rng.random((n, spec.n_genes), dtype=np.float32) < effects.detect  # Bernoulli per (cell, gene)
    rows, cols = np.nonzero(detected)  # row-major: already in CSR order
    del detected
    cols = cols.astype(np.int32)
    logit = effects.mu[cols] + effects.delta[pert[rows], cols] + effects.ctx[ctx[rows], cols] + effects.batch[bat[rows], cols]
    logit += rng.normal(0, 0.3, logit.shape[0]).astype(np.float32)
    values = np.log1p(np.exp(logit)).astype(np.float32)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((values, cols, indptr), shape=(n, spec.n_genes))


def write_large_synthetic(
    path: str | Path,
    n_cells: int = 1_000_000,
    n_genes: int = 2000,
    n_perturbations: int = 200,
    n_contexts: int = 4,
    n_batches: int = 8,
    control_fraction: float = 0.05,
    density: float = 0.1,
    layout: str = "shuffled",
    chunk_cells: int = 20_000,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic atlas of ``n_cells x n_genes`` to ``path`` (h5ad, or zarr if ``.zarr``) in chunks.

    Returns the path. ``obs`` has ``perturbation`` (``control`` or a gene symbol), ``cell_type`` and
    ``batch``; ``var`` is indexed by gene symbols; ``X`` is CSR float32 log-expression. The file is
    written under a temporary name and renamed at the end, so a killed run leaves no half-file.
    """
    from anndata.io import sparse_dataset, write_elem

    from distgen.data.layout import object_strings

    spec = SyntheticAtlasSpec(n_cells, n_genes, n_perturbations, n_contexts, n_batches, control_fraction, density, layout, seed)
    if chunk_cells < 1:
        raise ValueError(f"chunk_cells must be >= 1, got {chunk_cells}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    tmp = path.with_name(path.name + ".partial")
    _remove(tmp)
    obs = synthetic_obs(spec)
    codes = [obs[c].cat.codes.to_numpy().astype(np.int64) for c in ("perturbation", "cell_type", "batch")]
    effects = _Effects(spec)
    root = _open_root(tmp)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*autosharding.*", category=UserWarning)  # zarr v3 notice
            root.attrs["encoding-type"] = "anndata"
            root.attrs["encoding-version"] = "0.1.0"
            for i, start in enumerate(range(0, n_cells, chunk_cells)):
                sl = slice(start, min(start + chunk_cells, n_cells))
                chunk = synthetic_chunk(spec, effects, codes[0][sl], codes[1][sl], codes[2][sl], seed=i)
                if i == 0:
                    write_elem(root, "X", chunk)
                else:
                    sparse_dataset(root["X"]).append(chunk)
            write_elem(root, "obs", object_strings(obs))  # pandas 3's string categories: anndata 0.12 refuses them
            write_elem(root, "var", pd.DataFrame(index=pd.Index(gene_names(n_genes), dtype=object)))
            write_elem(root, "uns", {"distgen_synthetic": json.dumps(asdict(spec))})
    finally:
        if hasattr(root, "close"):
            root.close()
    _remove(path)
    tmp.rename(path)
    return path


def _open_root(path: Path):  # type: ignore[no-untyped-def]
    if path.suffix == ".zarr" or path.name.endswith(".zarr.partial"):
        import anndata as ad
        import zarr

        if int(zarr.__version__.split(".")[0]) < 3:
            return zarr.open_group(str(path), mode="w")
        # the format anndata's own write_zarr writes (settings.zarr_write_format, 2 unless set): zarr 3 opens format 3
        # by default, into which anndata 0.12.0 (pyproject's lowest) cannot write text ("Expected an ArrayArrayCodec")
        return zarr.open_group(str(path), mode="w", zarr_format=ad.settings.zarr_write_format)
    import h5py

    return h5py.File(path, "w")


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
