"""Systema's matching mean: a combination predicted as the average of its single perturbations' means."""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.models.base import FittedModel
from distgen.models.baselines.effects import (
    NEAREST_DOSE_RULE,
    add_effects,
    atoms_of,
    condition_effects,
    effects_at_doses,
    is_dosed,
    none_given,
    single_dose_effects,
)
from distgen.models.baselines.noncontrol_mean import noncontrol_effect
from distgen.types import CellTable, ConditionLabels


class MatchingMeanBaseline(FittedModel):
    """``control + mean_a delta_a`` over the atoms ``a`` of a condition seen alone in training.

    Systema's "matching mean" (Vinas Torne et al. 2025): for ``A+B`` the average of the centroids of
    ``A`` and ``B`` (in deltas from control: the average of their effects; ``additive`` sums them). A
    single perturbation seen in training gets its own training mean. Atoms never seen alone are
    skipped; a condition with none seen falls back to the non-control mean (``noncontrol_mean``), and
    ``can_predict`` reports those atoms as False. Effects are measured within contexts and averaged
    (``condition_effects``), then added to the given context's controls. On data at several doses each atom's effect is
    the one at the dose asked, or at its nearest training dose (``dose_rule``, as ``additive``).
    """

    dose_rule = NEAREST_DOSE_RULE

    def __init__(self) -> None:
        self.singles: dict[int, Tensor] = {}
        self.dosed: dict[int, dict[float, Tensor]] | None = None  # {atom: {dose: effect}} on data at several doses
        self.fallback: Tensor | None = None
        self.atom_names: tuple[str, ...] = ()

    def fit(self, train: CellTable) -> MatchingMeanBaseline:
        self.info = train.info  # what its effects are indexed by (distgen.predict checks it)
        effects = condition_effects(train)
        if not effects:
            raise ValueError("matching_mean: the training cells contain no perturbed cells")
        self.singles = {atoms[0]: e for atoms, e in effects.items() if len(atoms) == 1}
        self.dosed = single_dose_effects(train) if is_dosed(train) else None
        self.fallback = noncontrol_effect(train)
        self.atom_names = train.info.perturbations
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        if self.fallback is None:
            raise RuntimeError("matching_mean: call fit(train) before predict")
        eff = torch.zeros(len(labels), control.shape[-1], dtype=torch.float64)
        for b, (row, dose) in enumerate(zip(labels.perturbation, labels.dose)):
            atoms = atoms_of(row)
            if self.dosed is not None:
                if none_given(self.dosed, row, dose):  # every atom at dose 0: the control, not the non-control fallback
                    continue
                seen = effects_at_doses(self.dosed, row, dose)
            else:
                seen = [self.singles[a] for a in atoms if a in self.singles]
            if seen:
                eff[b] = torch.stack(seen).mean(0)
            elif atoms:
                eff[b] = self.fallback
        return add_effects(control, control_mask, eff)

    def can_predict(self, atoms: list[str]) -> list[bool]:
        seen = {self.atom_names[a] for a in self.singles} if self.atom_names else set()
        return [a in seen for a in atoms]
