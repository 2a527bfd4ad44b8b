"""Self-contained HTML reports of an evaluation and of a sweep (figures embedded, no server, no network).

``write_report(ReportInputs, "eval/report.html")`` for one evaluation; ``load_eval_dir(folder)``
reads an evaluation folder back into ``ReportInputs``; ``write_sweep_report`` for a sweep.
``python -m distgen.report EVAL_DIR`` (re)writes ``EVAL_DIR/report.html`` from the files.
"""

from distgen.report.inputs import Reference, ReportInputs, RunRecord, load_eval_dir, read_run_dir
from distgen.report.page import render, write_report

__all__ = ["Reference", "ReportInputs", "RunRecord", "load_eval_dir", "read_run_dir", "render", "write_report"]
