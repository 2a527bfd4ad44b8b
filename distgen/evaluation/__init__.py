"""Evaluation: metrics (cell-eval parity + distributional), DE tests, calibration, reports and plots.

``score(pred, truth, references) -> Report`` scores labelled populations (``distgen.types.Cells``);
no model is built and no file is read here. The one-call API is the function ``distgen.evaluate``.
"""

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.io import align, eval_data
from distgen.evaluation.report import Report
from distgen.evaluation.score import score
from distgen.evaluation.suite import DEFAULT_METRICS, MetricTable, run_metrics

__all__ = ["DEFAULT_METRICS", "EvalData", "MetricTable", "Population", "Report", "align", "eval_data", "run_metrics", "score"]
