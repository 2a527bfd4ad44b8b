"""The positive ceiling: how well the real data agrees with itself (random disjoint half-splits).

Each perturbation's real cells (and the control cells) are shuffled and split into two disjoint
halves of ``floor(n / 2)``; one half plays "real", the other "prediction". Repeating with several
seeds (``n_splits``) and averaging is the resampling estimate of the best score any model can
reach at half depth. A bootstrap (drawing with replacement) would put the same cell in both halves
and inflate agreement, so the halves are disjoint, as in cell-eval's ``compute_ceiling``.
``spearman_brown`` maps a half-depth reliability ``r`` to full depth (``2r / (1 + r)``, ``r > 0``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def half_split(codes: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Disjoint halves ``(a, b)`` of row indices, ``floor(n_g / 2)`` rows of each group ``g`` in ``codes [N]``.

    Groups with fewer than 2 rows are dropped (they cannot be split).
    """
    a, b = [], []
    for g in torch.unique(codes).tolist():
        idx = (codes == g).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=generator)]
        h = idx.numel() // 2
        if h:
            a.append(idx[:h])
            b.append(idx[h : 2 * h])
    if not a:
        raise ValueError("half_split: no group has at least 2 rows to split")
    return torch.cat(a), torch.cat(b)


def spearman_brown(r: float) -> float:
    """Full-depth reliability from a half-depth one: ``2r / (1 + r)`` for ``r > 0``, else NaN."""
    return 2.0 * r / (1.0 + r) if r > 0 and not math.isnan(r) else float("nan")
