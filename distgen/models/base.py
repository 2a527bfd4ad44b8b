"""The predict contract every model answers, baselines and generators alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.registry import Registry
from distgen.types import CellTable, ConditionLabels


class PerturbationModel(ABC):
    """``predict(control, control_mask, labels) -> cells``: counterfactual generation.

    Given ``control [B, m, G]`` cells (mask ``[B, m]``) and the condition of each of the ``B``
    sets, return ``[B, m, G]`` cells as they would look under that condition. Reconstruction of
    observed cells is a different verb. ``fit(train)`` learns from a ``CellTable`` of training
    cells (closed form for baselines; the trainer for neural models).

    Capabilities: ``supports_unseen_perturbations`` (can predict atoms absent from training),
    ``needs_control_cells`` (uses the supplied controls), ``output_kind`` (``"cells"``).
    """

    capabilities: ModelCapabilities = ModelCapabilities()

    @abstractmethod
    def fit(self, train: CellTable, **kwargs: Any) -> PerturbationModel:
        """Learn from training cells; returns ``self``."""

    @abstractmethod
    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        """``[B, m, G]`` predicted cells for ``B`` conditions from ``[B, m, G]`` control cells."""

    def can_predict(self, atoms: list[str]) -> list[bool]:
        """Per perturbation atom: can this model predict conditions containing it?"""
        return [True] * len(atoms)


#: The models registry: built-ins here, plugins from entry points ``distgen.models``.
models: Registry[PerturbationModel] = Registry(
    "models",
    PerturbationModel,
    {
        "additive": "distgen.models.baselines.additive:AdditiveBaseline",
        "control": "distgen.models.baselines.control:ControlBaseline",
        "generator": "distgen.models.generator:Generator",
        "linear": "distgen.models.baselines.linear:LinearBaseline",
        "mean_perturbation": "distgen.models.baselines.mean_perturbation:MeanPerturbationBaseline",
    },
)
