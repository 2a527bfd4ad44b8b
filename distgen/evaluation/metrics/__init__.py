"""Evaluation metrics registry."""

from distgen.evaluation.metrics.base import Metric, MetricResult, PerturbationEval
from distgen.registry import make_registry

metrics = make_registry("metrics", Metric)

from distgen.evaluation.metrics import de_metrics, discrimination, distributional, pseudobulk  # noqa: E402,F401
from distgen.evaluation.metrics import celleval2_de, celleval2_direction, celleval2_expr  # noqa: E402,F401

__all__ = ["Metric", "MetricResult", "PerturbationEval", "metrics"]
