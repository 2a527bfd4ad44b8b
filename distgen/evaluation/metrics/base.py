"""Metric interface: per-perturbation numbers comparing predicted and real cells.

A metric sees every perturbation at once (``compute(data: EvalData) -> MetricResult``) so that
shared work (pseudobulk means, DE tables) is done once and cross-perturbation metrics
(discrimination score) are possible. ``metric(ev)`` on a single ``PerturbationEval`` is the
one-perturbation convenience used by losses, notebooks and the contract suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.evaluation.evaldata import EvalData


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

    def to_data(self) -> EvalData:
        """The one-perturbation ``EvalData`` for this perturbation."""
        return EvalData.from_single(self.pred, self.real, self.control_pred, self.control_real, self.name or "pert",
                                    self.targets, self.genes)


@dataclass
class MetricResult:
    """``values [P]`` float64 (NaN where undefined) and, per NaN, the reason (``reasons[p]``)."""

    values: Tensor
    reasons: dict[int, str] = field(default_factory=dict)

    @staticmethod
    def from_values(values: Tensor, why_nan: str) -> MetricResult:
        """Wrap ``values``; every NaN gets the reason ``why_nan``."""
        values = values.to(torch.float64)
        nan = torch.isnan(values).nonzero().flatten().tolist()
        return MetricResult(values, dict.fromkeys(nan, why_nan))


class Metric(ABC):
    """``compute(data) -> MetricResult`` over all perturbations; ``higher_is_better`` orients scores.

    Capabilities: ``level`` (``pseudobulk``, ``de``, ``distribution``, ``global``: one value for all
    perturbations), ``higher_is_better``, ``celleval`` (the name cell-eval gives the same quantity,
    or None when it has none).
    """

    capabilities: ClassVar[dict[str, Any]] = {"level": "pseudobulk", "higher_is_better": False, "celleval": None}

    @property
    def higher_is_better(self) -> bool:
        return bool(self.capabilities.get("higher_is_better", False))

    @abstractmethod
    def compute(self, data: EvalData) -> MetricResult:
        """Values for each of ``data.n_perts`` perturbations (NaN with a reason when undefined)."""

    def __call__(self, ev: PerturbationEval) -> float:
        """The metric for one perturbation (its predicted and real cells and their controls)."""
        return float(self.compute(ev.to_data()).values[0])
