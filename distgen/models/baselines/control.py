"""The no-effect baseline: predict that the perturbation changes nothing."""

from __future__ import annotations

from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.models.base import FittedModel
from distgen.types import CellTable, ConditionLabels


class ControlBaseline(FittedModel):
    """Returns the supplied control cells unchanged (pseudobulk: the control mean)."""

    capabilities = ModelCapabilities(supports_unseen_perturbations=True)

    def fit(self, train: CellTable) -> ControlBaseline:
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        return control.clone()
