"""The positive ceiling: how well the real data agrees with itself (random disjoint half-splits).

Each perturbation's real cells (and the control cells) are shuffled and split into two disjoint
halves of ``floor(n / 2)``; one half plays "real", the other "prediction". Repeating with several
seeds (``n_splits``) and averaging is the resampling estimate of the best score any model can
reach at half depth. A bootstrap (drawing with replacement) would put the same cell in both halves
and inflate agreement, so the halves are disjoint, as in cell-eval's ``compute_ceiling``. Each group is
shuffled under its own seed (from the split's seed and the group's label) in an order of its cells that
does not depend on the file (``content_order``), so a perturbation's halves are the same whichever other
perturbations are scored beside it, and whatever the order of the rows or genes in the files.
``spearman_brown`` maps a half-depth reliability ``r`` to full depth (``2r / (1 + r)``, ``r > 0``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from distgen.seeds import content_order as content_order  # moved to distgen.seeds: also the order of a prediction's control cells
from distgen.seeds import label_seed


def group_generator(seed: int, label: str) -> torch.Generator:
    """A generator for one group's shuffle, seeded by ``seed`` and the group's ``label`` only."""
    return torch.Generator().manual_seed(label_seed(seed, (label,)))


def half_split(codes: Tensor, seed: int | torch.Generator, labels: Mapping[int, str] | None = None,
               order: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Disjoint halves ``(a, b)`` of row indices, ``floor(n_g / 2)`` rows of each group ``g`` in ``codes [N]``.

    Group ``g``'s rows are taken in ``order [N]`` (ranks; default: row order) and shuffled by
    ``group_generator(seed, labels[g])`` (default label: ``str(g)``), so its halves depend on its own rows only.
    A ``torch.Generator`` instead shuffles every group in turn with it (successive splits of the same
    rows, e.g. many draws of one group). Groups with fewer than 2 rows are dropped (they cannot be split).
    """
    a, b = [], []
    for g in torch.unique(codes).tolist():
        idx = (codes == g).nonzero().flatten()
        if order is not None:
            idx = idx[torch.argsort(order[idx], stable=True)]
        gen = seed if isinstance(seed, torch.Generator) else group_generator(seed, (labels or {}).get(g, str(g)))
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
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
