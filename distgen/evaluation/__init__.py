"""Evaluation: metrics (cell-eval parity + distributional), DE tests, calibration, reports and plots.

This package is the evaluation machinery; the one-call API is the function ``distgen.evaluate``.
"""

from typing import Any

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.suite import DEFAULT_METRICS, MetricTable, run_metrics

__all__ = ["DEFAULT_METRICS", "EvalData", "MetricTable", "Population", "evaluate_files", "load_pair", "run_metrics"]


def __getattr__(name: str) -> Any:  # AnnData-touching entry points load on first use
    if name == "load_pair":
        from distgen.evaluation.io import load_pair

        return load_pair
    if name == "evaluate_files":
        from distgen.evaluation.pipeline import evaluate_files

        return evaluate_files
    raise AttributeError(name)
