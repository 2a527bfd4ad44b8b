"""The page of a ``distgen evaluate --profile`` folder: a reference profile's numbers, as the reference defines them.

A profile (``celleval2``, ``vcc2026``, ``cell-eval-0.7.6``, ``cell-eval-0.8.2``; ``docs/metrics.md``) scores no
baselines and no ceiling per perturbation, so the evaluation page's comparisons (model vs baselines vs ceiling, the
normalised score per metric, the advantage per condition) have nothing to draw from. What the folder does hold is
shown here, read back from its files: the mean of every metric over the perturbations (``summary.json``), for
``vcc2026`` the score table with the baseline and split-half replicate each metric is normalised between
(``vcc2026_score.csv``; one per context when contexts were scored one by one), the per-perturbation table
(``metrics.csv``, with the reasons for NaN) and the notes. Tables only: no figure, so the page is the same
whatever the cells.
"""

from __future__ import annotations

import csv
import math
import os
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from distgen.atomic import atomic_write_text
from distgen.report.files import check_summary, read_json, read_rows
from distgen.report.html import Cell, Section, num, page, table
from distgen.report.style import metric_info
from distgen.wording import counted, listing

#: Columns of ``metrics.csv`` that describe a row rather than score it.
ROW_COLUMNS = ("perturbation", "context", "n_cells_real", "n_cells_pred", "nan_reasons")


def is_profile_dir(eval_dir: str | Path) -> bool:
    """Whether ``eval_dir/summary.json`` is that of a ``--profile`` evaluation."""
    path = Path(eval_dir) / "summary.json"
    if not path.is_file():
        return False
    return bool(read_json(path).get("profile"))


def _number_cell(v: Any, digits: int = 4) -> Cell:
    """A number as the page writes numbers; text (a CSV field that is not a number) as it is, an empty field as "–"."""
    if isinstance(v, str):
        try:
            v = float(v) if v.strip() else None
        except ValueError:
            return Cell(v)
    return Cell(num(v, digits), "num") if v is not None else Cell("–", "num")


def _scores(summary: dict[str, Any], rows: list[dict[str, Any]], metrics: list[str]) -> str:
    n = len(rows)
    body: list[list[Cell]] = []
    for name in metrics:
        vals = [r.get(name) for r in rows]
        defined = sum(isinstance(v, float) and not math.isnan(v) for v in vals)
        hib = metric_info(name).higher_is_better
        better = "" if hib is None else ("higher" if hib else "lower")
        body.append([Cell(name, html=f"<code>{escape(name)}</code>"), Cell(better), _number_cell((summary.get("metrics") or {}).get(name)),
                     Cell(f"{defined} of {n}", "num")])
    lead = ('<p class="lead">The mean of each metric over the perturbations, NaN left out, as the reference aggregates it; '
            "a profile scores no baselines and no ceiling per perturbation, so no normalised score per metric is defined here"
            + (" (the vcc2026 score below normalises the aggregates)" if summary.get("profile") == "vcc2026" else "") + ".</p>")
    return lead + table(["metric", "better", "mean", "defined"], body)


def _vcc(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in ("context", "metric", "user", "baseline", "replicate", "from_replicate", "from_baseline", "note") if rows and c in rows[0]]
    body = [[_number_cell(r.get(c)) if c in ("user", "baseline", "replicate", "from_replicate", "from_baseline")
             else Cell(r.get(c) or "", "why" if c == "note" else "") for c in cols] for r in rows]
    lead = ('<p class="lead">Each scored metric of the submission (<b>user</b>) is normalised between the mean-response '
            "<b>baseline</b> (0) and the split-half <b>replicate</b> of the real cells (1): <code>from_replicate</code> = "
            "(user − baseline) / (replicate − baseline), signs flipped for the lower-is-better ones, clipped or floored as cell-eval2 does for some of them; "
            "<code>avg_score</code> is their mean. <code>from_baseline</code> uses fixed anchors instead of the replicate. "
            "A metric without a usable scale is left out of the average, with the reason (docs/metrics.md).</p>")
    return lead + table(cols, body)


#: Most rows of ``metrics.csv`` the page repeats. A genome-wide screen's table (20,000 rows x 54 metrics) made a page of
#: tens of MB; the file itself holds every row.
PAGE_ROWS = 1000


def _per_perturbation(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    cols = [c for c in ROW_COLUMNS[:4] if rows and c in rows[0]] + metrics + (["nan_reasons"] if rows and "nan_reasons" in rows[0] else [])
    shown = rows[:PAGE_ROWS]
    body = [[Cell(str(r.get(c, ""))) if c in ("perturbation", "context") else
             Cell(str(r.get(c) or ""), "why") if c == "nan_reasons" else _number_cell(r.get(c)) for c in cols] for r in shown]
    which = (f"{counted(len(rows), 'row')} of <code>metrics.csv</code>" if len(shown) == len(rows) else
             f"The first {len(shown)} of the {len(rows)} rows of <code>metrics.csv</code> (the file holds every row)")
    return (f'<p class="lead">{which}, one per perturbation'
            + (" and context" if rows and "context" in rows[0] else "") + ", in the file's order.</p>"
            + f"<details{' open' if len(shown) <= 100 else ''}><summary>{counted(len(shown), 'row')}</summary>" + table(cols, body) + "</details>")


def render_profile(eval_dir: str | os.PathLike[str]) -> str:
    """The page of profile evaluation folder ``eval_dir`` (``metrics.csv``, ``summary.json``, ``vcc2026_score.csv``) as HTML."""
    from distgen.evaluation.report import read_table_csv

    eval_dir = Path(eval_dir)
    summary = check_summary(read_json(eval_dir / "summary.json"), eval_dir / "summary.json")
    read_rows(eval_dir / "metrics.csv", ("perturbation",))  # a damaged table is refused naming it
    rows = read_table_csv(eval_dir / "metrics.csv")
    from distgen.report.inputs import table_checked

    summary = table_checked(eval_dir, summary, summary)
    metrics = [c for c in (rows[0] if rows else {}) if c not in ROW_COLUMNS]
    contexts = [str(c) for c in summary.get("contexts") or []]
    lines = [f"profile <code>{escape(str(summary.get('profile')))}</code>: the numbers of {escape(str(summary.get('reference')))} "
             f"({escape(str(summary.get('scale')))} values)" + (" · --no-target-genes" if summary.get("no_target_genes") else ""),
             f"{counted(summary.get('n_perturbations'), 'perturbation' if not contexts else '(perturbation, context) row')}"
             + (f" in {counted(len(contexts), 'context')} ({escape(listing(contexts))}), each scored on its own" if contexts else "")
             + f" · {counted(summary.get('n_genes'), 'gene')} · {counted(len(metrics), 'metric')} · written "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"]
    sections = [Section("scores", "Scores", _scores(summary, rows, metrics))]
    if (eval_dir / "vcc2026_score.csv").is_file():
        with (eval_dir / "vcc2026_score.csv").open(newline="", encoding="utf-8") as fh:  # as written: an empty field is no value, not NaN
            sections.append(Section("vcc2026", "VCC 2026 score", _vcc(list(csv.DictReader(fh)))))
    sections.append(Section("per-perturbation", "Per perturbation", _per_perturbation(rows, metrics)))
    notes = summary.get("notes") or []
    if notes:
        sections.append(Section("notes", "Notes", "<ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>"))
    return page(f"distgen evaluation report: profile {summary.get('profile')}", lines, sections)


def write_profile_report(eval_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None) -> Path:
    """Write the page of profile evaluation folder ``eval_dir`` to ``path`` (default ``eval_dir/report.html``); returns the path."""
    path = Path(path) if path is not None else Path(eval_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_profile(eval_dir))
    return path
