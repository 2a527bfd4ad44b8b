"""Self-contained HTML reports of an evaluation and of a sweep (figures embedded, no server, no network).

``write_report(ReportInputs, "eval/report.html")`` for one evaluation; ``load_eval_dir(folder)``
reads an evaluation folder back into ``ReportInputs``; ``write_sweep_report`` for a sweep.
``python -m distgen.report EVAL_DIR`` (re)writes ``EVAL_DIR/report.html`` from the files.

The names below are imported when first used: ``distgen.report.profile`` (the page of ``distgen evaluate --profile``)
needs none of the evaluation page's modules, which import the training package (and anndata with it): ~120 MB and ~1 s
of a one-shot profile run's imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distgen.report.inputs import Reference, ReportInputs, RunRecord, load_eval_dir, read_run_dir
    from distgen.report.page import render, write_report

_HOMES = {"Reference": "inputs", "ReportInputs": "inputs", "RunRecord": "inputs", "load_eval_dir": "inputs", "read_run_dir": "inputs",
          "render": "page", "write_report": "page"}

__all__ = ["Reference", "ReportInputs", "RunRecord", "load_eval_dir", "read_run_dir", "render", "write_report"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"distgen.report.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'distgen.report' has no attribute {name!r}")
