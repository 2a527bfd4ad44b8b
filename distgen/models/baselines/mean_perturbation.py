"""Negative baseline: every perturbation has the average effect of the training perturbations."""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.models.base import FittedModel
from distgen.models.baselines.effects import POOLED_DOSE_RULE, condition_effects, shift_perturbed
from distgen.types import CellTable, ConditionLabels


class MeanPerturbationBaseline(FittedModel):
    """Control cells shifted by the mean effect over all training perturbations (each weighted equally).

    Pseudobulk: the mean over training perturbations, the "mean baseline" that Ahlmann-Eltze et al.
    (2025) and others find hard to beat on pearson_delta. Control labels get the control cells back.
    """

    capabilities = ModelCapabilities(supports_unseen_perturbations=True)
    dose_rule = POOLED_DOSE_RULE  # it predicts no dose (docs/data.md, "Doses")

    def __init__(self) -> None:
        self.effect: Tensor | None = None

    def fit(self, train: CellTable) -> MeanPerturbationBaseline:
        self.info = train.info  # what its effect is indexed by (distgen.predict checks it)
        effects = condition_effects(train)
        if not effects:
            raise ValueError("mean_perturbation: the training cells contain no perturbed cells")
        self.effect = torch.stack(list(effects.values())).mean(0)
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        if self.effect is None:
            raise RuntimeError("mean_perturbation: call fit(train) before predict")
        return shift_perturbed(control, control_mask, labels, self.effect)
