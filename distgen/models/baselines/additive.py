"""Negative baseline for combinations: control + the sum of the single-perturbation effects."""

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
    single_dose_effects,
)
from distgen.types import CellTable, ConditionLabels


class AdditiveBaseline(FittedModel):
    """``control + sum_a delta_a`` with ``delta_a`` the effect of atom ``a`` applied alone in training.

    For a single perturbation seen in training this is its training mean (shifted onto the given
    controls); for a combination ``A+B`` it is the additive (no-interaction) prediction. Atoms never
    seen alone in training contribute nothing (``can_predict`` reports them as False).

    On data at several doses (``docs/data.md``, "Doses") ``delta_a`` is the effect of ``a`` alone at the dose asked
    (``labels.dose``), or at its nearest training dose when training never measured it there (``dose_rule``).
    """

    dose_rule = NEAREST_DOSE_RULE

    def __init__(self) -> None:
        self.singles: dict[int, Tensor] = {}
        self.dosed: dict[int, dict[float, Tensor]] | None = None  # {atom: {dose: effect}} on data at several doses
        self.atom_names: tuple[str, ...] = ()
        self.fitted = False

    def fit(self, train: CellTable) -> AdditiveBaseline:
        self.info = train.info  # what its effects are indexed by (distgen.predict checks it)
        if is_dosed(train):
            self.dosed = single_dose_effects(train)
            self.singles = {a: next(iter(e.values())) for a, e in self.dosed.items()}  # which atoms it has (can_predict)
        else:
            effects = condition_effects(train)
            self.singles = {atoms[0]: e for atoms, e in effects.items() if len(atoms) == 1}
        self.atom_names = train.info.perturbations
        self.n_genes = train.info.n_genes
        self.fitted = True
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        if not self.fitted:  # unfitted it has no effects: it would return the controls as every prediction
            raise RuntimeError("additive: call fit(train) before predict")
        eff = torch.zeros(len(labels), control.shape[-1], dtype=torch.float64)
        for b, (row, dose) in enumerate(zip(labels.perturbation, labels.dose)):
            if self.dosed is not None:
                for e in effects_at_doses(self.dosed, row, dose):
                    eff[b] += e
                continue
            for a in atoms_of(row):
                if a in self.singles:
                    eff[b] += self.singles[a]
        return add_effects(control, control_mask, eff)

    def can_predict(self, atoms: list[str]) -> list[bool]:
        seen = {self.atom_names[a] for a in self.singles} if self.atom_names else set()
        return [a in seen for a in atoms]
