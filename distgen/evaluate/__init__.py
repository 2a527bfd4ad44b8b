"""Evaluation: metrics (cell-eval parity + distributional), DE tests, calibration, reports and plots."""

import sys as _sys
import types as _types
from typing import Any

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


class _CallableEvaluate(_types.ModuleType):
    """``distgen.evaluate`` is this package AND the API call ``distgen.evaluate(pred, real, out, ...)``.

    Importing any ``distgen.evaluate.*`` module makes Python set the package as the attribute
    ``evaluate`` of ``distgen``, replacing the lazy API function; calling the package does the same.
    """

    def __call__(self, pred: Any, real: Any, out: Any, **kwargs: Any) -> dict[str, Any]:
        from distgen.api import evaluate

        return evaluate(pred, real, out, **kwargs)


_sys.modules[__name__].__class__ = _CallableEvaluate
