"""Systema's non-control mean: every perturbation predicted as the average of all perturbed training cells."""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.models.base import FittedModel
from distgen.models.baselines.effects import POOLED_DOSE_RULE, shift_perturbed
from distgen.types import CellTable, ConditionLabels


def noncontrol_effect(train: CellTable) -> Tensor:
    """``[G]`` mean of all perturbed cells minus the control mean, within each context, averaged over contexts (float64)."""
    x = train.X.to(torch.float64)
    ctx = train.labels.context
    pert = ~train.labels.is_control
    effects = []
    for c in torch.unique(ctx).tolist():
        p, k = pert & (ctx == c), ~pert & (ctx == c)
        if bool(p.any()) and bool(k.any()):
            effects.append(x[p].mean(0) - x[k].mean(0))
    if not effects:
        raise ValueError("noncontrol_mean: no context of the training cells has both perturbed and control cells")
    return torch.stack(effects).mean(0)


class NonControlMeanBaseline(FittedModel):
    """Control cells shifted to the mean of ALL perturbed training cells (each cell weighted equally).

    Systema's "perturbed mean" (Vinas Torne et al. 2025): the centroid of every perturbed cell, which a
    model that only learns the generic response to perturbation already reaches. It differs from
    ``mean_perturbation`` (each perturbation weighted equally) when perturbations have different cell
    counts. Context-aware: the shift is measured within each training context (perturbed minus control
    cells of that context) and averaged over contexts, then added to the given context's controls; with
    one context the prediction's mean is exactly the perturbed cells' mean when the training controls
    are given. Control labels get the control cells back.
    """

    capabilities = ModelCapabilities(supports_unseen_perturbations=True)
    dose_rule = POOLED_DOSE_RULE  # it predicts no dose (docs/data.md, "Doses")

    def __init__(self) -> None:
        self.effect: Tensor | None = None

    def fit(self, train: CellTable) -> NonControlMeanBaseline:
        self.info = train.info  # what its effect is indexed by (distgen.predict checks it)
        if not bool((~train.labels.is_control).any()):
            raise ValueError("noncontrol_mean: the training cells contain no perturbed cells")
        self.effect = noncontrol_effect(train)
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        if self.effect is None:
            raise RuntimeError("noncontrol_mean: call fit(train) before predict")
        return shift_perturbed(control, control_mask, labels, self.effect)
