"""Training cells summarised per population: one group per (atom set, context, batch).

A population is what the Bayesian model observes: its mean expression, its size and its within-
population spread. Grouping by batch as well as by condition keeps replicates apart, so the model
sees how population means of one condition vary between replicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from distgen.types import ConditionLabels


@dataclass(frozen=True)
class Populations:
    """``Np`` populations of training cells.

    Attributes
    ----------
    atoms
        Sorted atom ids of each population's condition (``()`` for control).
    context, batch
        ``[Np]`` long ids into ``DataInfo.contexts`` / ``DataInfo.batches``.
    mean
        ``[Np, G]`` mean expression.
    count
        ``[Np]`` number of cells.
    cell_index
        ``[N]`` population id of each cell (``-1`` for cells of populations that were dropped).
    dropped
        ``(atoms, context, batch, cells)`` of each population left out for having fewer than
        ``min_cells`` cells.
    """

    atoms: tuple[tuple[int, ...], ...]
    context: Tensor
    batch: Tensor
    mean: Tensor
    count: Tensor
    cell_index: Tensor
    dropped: tuple[tuple[tuple[int, ...], int, int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.atoms)


def atom_sets(perturbation: Tensor) -> list[tuple[int, ...]]:
    """``[B, P]`` padded atom ids -> one sorted tuple of distinct atom ids per row."""
    return [tuple(sorted({int(a) for a in row if a >= 0})) for row in perturbation.tolist()]


def summarise(X: Tensor, labels: ConditionLabels, min_cells: int = 2) -> Populations:
    """Group ``[N, G]`` cells by (atom set, context, batch); keep groups of at least ``min_cells``.

    Parameters
    ----------
    X
        ``[N, G]`` expression of training cells.
    labels
        Per-cell condition labels.
    min_cells
        Populations with fewer cells are dropped (their mean is too noisy to be informative).
    """
    if X.shape[0] != len(labels):
        raise ValueError(f"X has {X.shape[0]} cells but labels describe {len(labels)}")
    sets = atom_sets(labels.perturbation)
    keys = list(zip(sets, labels.context.tolist(), labels.batch.tolist()))
    uniq = sorted(set(keys), key=lambda k: (len(k[0]), k[0], k[1], k[2]))
    where = {k: i for i, k in enumerate(uniq)}
    raw_index = torch.tensor([where[k] for k in keys], dtype=torch.long)
    counts = torch.bincount(raw_index, minlength=len(uniq))
    keep = counts >= min_cells
    if not bool(keep.any()):
        raise ValueError(
            f"no population has at least min_cells={min_cells} cells (largest has {int(counts.max())}); lower min_cells"
        )
    new_id = torch.full((len(uniq),), -1, dtype=torch.long)
    new_id[keep] = torch.arange(int(keep.sum()))
    cell_index = new_id[raw_index]
    kept = [k for k, ok in zip(uniq, keep.tolist()) if ok]
    Xf = X.to(torch.float64)
    sums = torch.zeros(len(kept), X.shape[1], dtype=torch.float64)
    live = cell_index >= 0
    sums.index_add_(0, cell_index[live], Xf[live])
    count = counts[keep].to(torch.float64)
    return Populations(
        atoms=tuple(k[0] for k in kept),
        context=torch.tensor([k[1] for k in kept], dtype=torch.long),
        batch=torch.tensor([k[2] for k in kept], dtype=torch.long),
        mean=sums / count[:, None],
        count=count,
        cell_index=cell_index,
        dropped=tuple((k[0], k[1], k[2], int(n)) for k, n, ok in zip(uniq, counts.tolist(), keep.tolist()) if not ok),
    )


def within_variance(Z: Tensor, pops: Populations, prior_strength: float = 10.0) -> Tensor:
    """``[Np, K]`` within-population variance of coordinates ``Z [N, K]``, shrunk to the pooled value.

    Each population's variance is a precision-weighted blend of its own sample variance
    (``n - 1`` degrees of freedom) and the pooled variance (``prior_strength`` pseudo-degrees),
    so that small populations do not get a spuriously tiny sampling variance.
    """
    live = pops.cell_index >= 0
    idx = pops.cell_index[live]
    z = Z[live].to(torch.float64)
    mean = torch.zeros(len(pops), Z.shape[1], dtype=torch.float64).index_add_(0, idx, z) / pops.count[:, None]
    ss = torch.zeros_like(mean).index_add_(0, idx, (z - mean[idx]) ** 2)
    dof = (pops.count - 1.0).clamp_min(0.0)
    pooled = ss.sum(0) / dof.sum().clamp_min(1.0)
    return (ss + prior_strength * pooled) / (dof[:, None] + prior_strength)
