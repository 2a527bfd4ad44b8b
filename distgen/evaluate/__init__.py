"""Evaluation: metrics (cell-eval parity + distributional), DE tests, calibration, reports and plots."""

from distgen.evaluate.evaldata import EvalData, Population
from distgen.evaluate.suite import DEFAULT_METRICS, MetricTable, run_metrics

__all__ = ["DEFAULT_METRICS", "EvalData", "MetricTable", "Population", "evaluate_files", "load_pair", "run_metrics"]


def __getattr__(name: str):  # AnnData-touching entry points load on first use
    if name == "load_pair":
        from distgen.evaluate.io import load_pair

        return load_pair
    if name == "evaluate_files":
        from distgen.evaluate.pipeline import evaluate_files

        return evaluate_files
    raise AttributeError(name)
