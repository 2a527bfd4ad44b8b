"""The positive ceiling: how well the real data agrees with itself (random disjoint half-splits).

Each perturbation's real cells (and the control cells) are shuffled and split into two disjoint
halves of ``floor(n / 2)``; one half plays "real", the other "prediction". Repeating with several
seeds (``n_splits``) and averaging is the resampling estimate of the best score any model can
reach at half depth. A bootstrap (drawing with replacement) would put the same cell in both halves
and inflate agreement, so the halves are disjoint, as in cell-eval's ``compute_ceiling``. Each group is
shuffled under its own seed (from the split's seed and the group's label) in an order of its cells that
does not depend on the file (``content_order``), so a perturbation's halves are the same whichever other
perturbations are scored beside it, and whatever the order of the rows or genes in the files.
``split_parts`` cuts each group into ``k`` parts from the same shuffle (the quarters of the extrapolated replicate).
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
    a, b = split_parts(codes, seed, 2, labels, order)
    return a, b


def split_parts(codes: Tensor, seed: int | torch.Generator, k: int, labels: Mapping[int, str] | None = None,
                order: Tensor | None = None) -> list[Tensor]:
    """``k`` disjoint parts of row indices, ``floor(n_g / k)`` rows of each group ``g`` (``half_split`` is ``k = 2``).

    Each group is shuffled as by ``half_split`` (same generator, same order), and part ``j`` takes the
    ``j``-th block of ``floor(n_g / k)`` shuffled rows: with the same seed, the first two quarters lie in
    the first half. Groups with fewer than ``k`` rows are dropped.
    """
    if k < 2:
        raise ValueError(f"split_parts needs k >= 2 parts, got {k}")
    parts: list[list[Tensor]] = [[] for _ in range(k)]
    for g in torch.unique(codes).tolist():
        idx = (codes == g).nonzero().flatten()
        if order is not None:
            idx = idx[torch.argsort(order[idx], stable=True)]
        gen = seed if isinstance(seed, torch.Generator) else group_generator(seed, (labels or {}).get(g, str(g)))
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        h = idx.numel() // k
        if h:
            for j in range(k):
                parts[j].append(idx[j * h : (j + 1) * h])
    if not parts[0]:
        raise ValueError(f"split_parts: no group has at least {k} rows to split into {k} parts")
    return [torch.cat(p) for p in parts]


def spearman_brown(r: float) -> float:
    """Full-depth reliability from a half-depth one: ``2r / (1 + r)`` for ``r > 0``, else NaN."""
    return 2.0 * r / (1.0 + r) if r > 0 and not math.isnan(r) else float("nan")
