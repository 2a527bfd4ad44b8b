"""Per-condition perturbation effects (deltas from control) estimated from a training ``CellTable``.

Shared by the closed-form baselines. An effect is ``mean(perturbed cells) - mean(control cells)`` in
the same context, averaged over the contexts where both exist, so that a baseline can add it to the
control cells it is given (keeping their context and their spread).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


def dosed_atoms_of(row: Tensor, dose: Tensor) -> tuple[tuple[int, float], ...]:
    """``((atom id, dose), ...)`` of one ``[P]`` perturbation row and its ``[P]`` doses, sorted by atom (padding dropped)."""
    return tuple(sorted((int(a), float(d)) for a, d in zip(row.tolist(), dose.tolist()) if a >= 0))


def is_dosed(train: CellTable) -> bool:
    """Whether ``train`` comes from data at several doses per (condition, context): a population per dose (``docs/data.md``,
    "Doses"; ``CellTable.meta['dosed']``, set where such data is loaded). Its baselines then read the doses."""
    return bool(train.meta.get("dosed", False))


def _effects(train: CellTable, key: Callable[[Tensor, Tensor], Any]) -> dict[Any, Tensor]:
    """``{key(row, dose): [G] effect}`` over the perturbed cells of ``train`` grouped by (context, key), averaged over contexts."""
    x = train.X.to(torch.float64)
    ctx = train.labels.context
    groups: dict[tuple[int, Any], list[int]] = defaultdict(list)
    for i, (c, row, dose) in enumerate(zip(ctx.tolist(), train.labels.perturbation, train.labels.dose)):
        if (row >= 0).any():  # perturbed cells, grouped by (context, key); controls: context_control_means
            groups[(c, key(row, dose))].append(i)
    ctrl = context_control_means(train)
    if not ctrl:
        raise ValueError("the training cells contain no control cells; baselines need controls to estimate effects from")
    per_cond: dict[Any, list[Tensor]] = defaultdict(list)
    for (c, k), idx in groups.items():
        if k and c in ctrl:
            per_cond[k].append(x[idx].mean(0) - ctrl[c])
    return {k: torch.stack(v).mean(0) for k, v in per_cond.items()}


def condition_effects(train: CellTable) -> dict[tuple[int, ...], Tensor]:
    """``{atom ids: [G] effect}`` for every perturbed condition of ``train`` (float64), its doses pooled."""
    return _effects(train, lambda row, dose: atoms_of(row))


def population_effects(train: CellTable) -> dict[tuple[tuple[int, float], ...], Tensor]:
    """``{((atom id, dose), ...): [G] effect}`` for every perturbed population of ``train``: a condition at each of its doses."""
    return _effects(train, dosed_atoms_of)


def single_dose_effects(train: CellTable) -> dict[int, dict[float, Tensor]]:
    """``{atom id: {dose: [G] effect}}`` of the atoms applied alone in ``train``, at each dose they were measured at."""
    out: dict[int, dict[float, Tensor]] = defaultdict(dict)
    for key, effect in population_effects(train).items():
        if len(key) == 1:
            out[key[0][0]][key[0][1]] = effect
    return dict(out)


def nearest_dose(measured: Iterable[float], dose: float) -> float:
    """The dose of ``measured`` nearest to ``dose``: ``dose`` itself when measured, else the nearest on a log scale (doses
    are usually spaced by factors: 10, 100, 1000), on a linear one when a dose is not positive; a tie goes to the lower dose."""
    doses = sorted(measured)
    if dose in doses:
        return dose
    if dose > 0 and doses[0] > 0:
        return min(doses, key=lambda m: abs(math.log(m) - math.log(dose)))
    return min(doses, key=lambda m: abs(m - dose))


def effects_at_doses(dosed: Mapping[int, Mapping[float, Tensor]], row: Tensor, dose: Tensor) -> list[Tensor]:
    """The effect alone (``single_dose_effects``) of each atom of one ``[P]`` perturbation row that ``dosed`` holds, at its
    ``[P]`` dose when measured there, else at its nearest training dose (``nearest_dose``), in atom order. An atom asked at
    dose 0 that training did not measure at 0 adds nothing (none of it given; the nearest dose, the lowest measured, was
    its effect until 2026-12-06)."""
    return [dosed[a][nearest_dose(dosed[a], d)] for a, d in dosed_atoms_of(row, dose) if a in dosed and not _none_of(dosed, a, d)]


def _none_of(dosed: Mapping[int, Mapping[float, Tensor]], atom: int, dose: float) -> bool:
    """Whether ``atom`` asked at ``dose`` is none of it: dose 0, where training did not measure it."""
    return dose == 0.0 and 0.0 not in dosed.get(atom, {})


def none_given(dosed: Mapping[int, Mapping[float, Tensor]], row: Tensor, dose: Tensor) -> bool:
    """Whether every atom of one ``[P]`` perturbation row is asked at dose 0, a dose training did not measure it at: none of
    any atom is given, so the condition is the control (``effects_at_doses`` has no effect for such an atom)."""
    atoms = dosed_atoms_of(row, dose)
    return bool(atoms) and all(_none_of(dosed, a, d) for a, d in atoms)


#: What a dose-reading baseline (``additive``, ``matching_mean``) does on data at several doses (its ``dose_rule``).
NEAREST_DOSE_RULE = ("each atom's effect alone at the asked dose when training measured it there, else at its nearest training "
                     "dose (log scale; a held-out highest dose is predicted from the next one down; at dose 0, no effect)")
#: What a baseline that reads no dose does on such data.
POOLED_DOSE_RULE = "dose-blind: every dose of a condition gets the one prediction, fitted on its training doses pooled"


def add_effects(control: Tensor, control_mask: Tensor, effects: Tensor) -> Tensor:
    """``control [B, m, G] + effects [B, G]`` on real cells (padding left as is), in the control's float dtype.

    Integer control cells (counts) give float32 cells, the dtype ``CellTable`` reads every other dtype as: a shift is
    fractional, and adding it in the controls' integer dtype truncated it (a baseline's prediction silently rounded)."""
    dtype = control.dtype if control.is_floating_point() else torch.float32
    control = control.to(dtype)
    out = control + effects[:, None, :].to(dtype)
    return torch.where(control_mask[..., None], out, control)


def shift_perturbed(control: Tensor, control_mask: Tensor, labels: ConditionLabels, effect: Tensor) -> Tensor:
    """Every perturbed group's control cells shifted by one ``effect [G]``; control groups get their cells back."""
    eff = effect[None].expand(len(labels), -1) * (~labels.is_control)[:, None]
    return add_effects(control, control_mask, eff)
