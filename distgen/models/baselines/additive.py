"""Negative baseline for combinations: control + the sum of the single-perturbation effects."""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.models.base import FittedModel
from distgen.models.baselines.effects import add_effects, atoms_of, condition_effects
from distgen.types import CellTable, ConditionLabels


class AdditiveBaseline(FittedModel):
    """``control + sum_a delta_a`` with ``delta_a`` the effect of atom ``a`` applied alone in training.

    For a single perturbation seen in training this is its training mean (shifted onto the given
    controls); for a combination ``A+B`` it is the additive (no-interaction) prediction. Atoms never
    seen alone in training contribute nothing (``can_predict`` reports them as False).
    """

    def __init__(self) -> None:
        self.singles: dict[int, Tensor] = {}
        self.atom_names: tuple[str, ...] = ()
        self.fitted = False

    def fit(self, train: CellTable) -> AdditiveBaseline:
        self.info = train.info  # what its effects are indexed by (distgen.predict checks it)
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
        for b, row in enumerate(labels.perturbation):
            for a in atoms_of(row):
                if a in self.singles:
                    eff[b] += self.singles[a]
        return add_effects(control, control_mask, eff)

    def can_predict(self, atoms: list[str]) -> list[bool]:
        seen = {self.atom_names[a] for a in self.singles} if self.atom_names else set()
        return [a in seen for a in atoms]
