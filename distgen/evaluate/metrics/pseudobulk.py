"""Pseudobulk metrics: compare mean expression profiles of predicted and real cells."""

from __future__ import annotations

from typing import Any, ClassVar

from distgen.evaluate.metrics import metrics
from distgen.evaluate.metrics.base import Metric, PerturbationEval


@metrics.register("mse")
class MeanSquaredError(Metric):
    """Mean over genes of the squared difference between predicted and real mean profiles."""

    capabilities: ClassVar[dict[str, Any]] = {"level": "pseudobulk", "higher_is_better": False}

    def __call__(self, ev: PerturbationEval) -> float:
        return float((ev.pred.mean(0) - ev.real.mean(0)).pow(2).mean())
