"""Metric interface: a number comparing predicted and real cells of one perturbation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor


@dataclass
class PerturbationEval:
    """The cells a metric sees for one perturbation.

    Attributes
    ----------
    pred, real
        ``[n_pred, G]`` generated and ``[n_real, G]`` observed perturbed cells.
    control_real, control_pred
        ``[n_c, G]`` observed control cells; ``control_pred`` is the control population of the
        prediction file (cell-eval's convention takes deltas against each file's own controls).
    name
        The perturbation's label; ``targets`` its target genes (excluded where the field does so).
    cache
        Per-perturbation results shared between metrics (means, DE tables).
    """

    pred: Tensor
    real: Tensor
    control_real: Tensor
    control_pred: Tensor
    name: str = ""
    targets: tuple[str, ...] = ()
    genes: tuple[str, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict)


class Metric(ABC):
    """``metric(ev: PerturbationEval) -> float``; ``higher_is_better`` orients normalised scores."""

    capabilities: ClassVar[dict[str, Any]] = {"level": "pseudobulk", "higher_is_better": False}

    @property
    def higher_is_better(self) -> bool:
        return bool(self.capabilities.get("higher_is_better", False))

    @abstractmethod
    def __call__(self, ev: PerturbationEval) -> float:
        """The metric's value for one perturbation (NaN with a logged reason when undefined)."""
