"""Evaluation metrics registry."""

from distgen.evaluate.metrics.base import Metric, MetricResult, PerturbationEval
from distgen.registry import make_registry

metrics = make_registry("metrics", Metric)

from distgen.evaluate.metrics import de_metrics, discrimination, distributional, pseudobulk  # noqa: E402,F401

__all__ = ["Metric", "MetricResult", "PerturbationEval", "metrics"]
