"""Evaluation metrics: the interface and registry (``base``); built-ins load on first use."""

from distgen.evaluation.metrics.base import Metric, MetricResult, PerturbationEval, metrics

__all__ = ["Metric", "MetricResult", "PerturbationEval", "metrics"]
