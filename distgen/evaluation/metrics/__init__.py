"""Evaluation metrics registry."""

from distgen.evaluation.metrics.base import Metric, MetricResult, PerturbationEval
from distgen.registry import make_registry

metrics = make_registry("metrics", Metric)

from distgen.evaluation.metrics import (  # noqa: E402,F401
    celleval2_de,
    celleval2_direction,
    celleval2_expr,
    de_metrics,
    discrimination,
    distributional,
    pseudobulk,
)

__all__ = ["Metric", "MetricResult", "PerturbationEval", "metrics"]
