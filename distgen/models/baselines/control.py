"""The no-effect baseline: predict that the perturbation changes nothing."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from distgen.models import models
from distgen.models.base import FittedModel
from distgen.types import CellTable, ConditionLabels


@models.register("control")
class ControlBaseline(FittedModel):
    """Returns the supplied control cells unchanged (pseudobulk: the control mean)."""

    capabilities: ClassVar[dict[str, Any]] = {
        "supports_unseen_perturbations": True,
        "needs_control_cells": True,
        "output_kind": "cells",
        "stochastic": False,
    }

    def fit(self, train: CellTable, **kwargs: Any) -> ControlBaseline:
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        return control.clone()
