"""Per-condition perturbation effects (deltas from control) estimated from a training ``CellTable``.

Shared by the closed-form baselines. An effect is ``mean(perturbed cells) - mean(control cells)`` in
the same context, averaged over the contexts where both exist, so that a baseline can add it to the
control cells it is given (keeping their context and their spread).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from distgen.types import CellTable, ConditionLabels


def atoms_of(row: Tensor) -> tuple[int, ...]:
    """Sorted atom ids of one ``[P]`` perturbation row (``-1`` padding dropped)."""
    return tuple(sorted(int(a) for a in row.tolist() if a >= 0))


def context_control_means(train: CellTable) -> dict[int, Tensor]:
    """``{context id: [G] float64 mean of its control cells}`` for every context of ``train`` with control cells."""
    is_ctrl, ctx = train.labels.is_control, train.labels.context
    return {c: train.X[is_ctrl & (ctx == c)].to(torch.float64).mean(0) for c in ctx[is_ctrl].unique().tolist()}


def condition_effects(train: CellTable) -> dict[tuple[int, ...], Tensor]:
    """``{atom ids: [G] effect}`` for every perturbed condition of ``train`` (float64)."""
    x = train.X.to(torch.float64)
    ctx = train.labels.context
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
    for i, (c, row) in enumerate(zip(ctx.tolist(), train.labels.perturbation)):
        if (row >= 0).any():  # perturbed cells, grouped by (context, atoms); controls: context_control_means
            groups[(c, atoms_of(row))].append(i)
    ctrl = context_control_means(train)
    if not ctrl:
        raise ValueError("the training cells contain no control cells; baselines need controls to estimate effects from")
    per_cond: dict[tuple[int, ...], list[Tensor]] = defaultdict(list)
    for (c, atoms), idx in groups.items():
        if atoms and c in ctrl:
            per_cond[atoms].append(x[idx].mean(0) - ctrl[c])
    return {atoms: torch.stack(v).mean(0) for atoms, v in per_cond.items()}


def add_effects(control: Tensor, control_mask: Tensor, effects: Tensor) -> Tensor:
    """``control [B, m, G] + effects [B, G]`` on real cells (padding left as is), in the control's dtype."""
    out = control + effects[:, None, :].to(control.dtype)
    return torch.where(control_mask[..., None], out, control)


def shift_perturbed(control: Tensor, control_mask: Tensor, labels: ConditionLabels, effect: Tensor) -> Tensor:
    """Every perturbed group's control cells shifted by one ``effect [G]``; control groups get their cells back."""
    eff = effect[None].expand(len(labels), -1) * (~labels.is_control)[:, None]
    return add_effects(control, control_mask, eff)
