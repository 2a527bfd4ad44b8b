"""Evaluation outputs: ``Report`` and its files ``metrics.csv``, ``calibration.csv``, ``summary.json``,
``summary.md`` and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen import markdown as md
from distgen.atomic import atomic_path, atomic_write_text
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.io import finite_rows
from distgen.evaluation.pca import principal_axes
from distgen.evaluation.strata import N_STRATA
from distgen.evaluation.suite import MetricTable
from distgen.seeds import content_keys, content_subset
from distgen.wording import counted, first_of, listing, row_noun

#: The file that marks a folder as an evaluation's from its first write (``Report.write``, ``distgen evaluate --out``):
#: a rerun into a folder an interrupted evaluation left without ``summary.json`` writes it again, no ``--overwrite``.
EVALUATION_MARK = ".distgen-evaluation"


def mark_evaluation(out: str | os.PathLike[str]) -> None:
    """Mark ``out`` as an evaluation folder (``EVALUATION_MARK``) before any of its files is written."""
    if not os.path.isfile(os.path.join(out, EVALUATION_MARK)):
        atomic_write_text(os.path.join(out, EVALUATION_MARK), "written by distgen evaluate (summary.json last)\n")


#: Metrics shown in the per-perturbation bar plot (when computed).
BAR_METRICS = ("pearson_delta", "mse", "discrimination_score_l1", "overlap_at_N", "mmd", "edistance")
#: Most perturbations ``metrics_per_perturbation.png`` names one by one. Beyond, the bars keep the table's order without
#: names in a figure of fixed width: 0.3 inch a bar made 1,600 perturbations 480 inches (52,800 pixels) wide, and
#: matplotlib refuses a PNG over 65,536 pixels (about 2,000 perturbations).
BAR_LABEL_LIMIT = 100


def fmt_value(v: Any) -> str:
    """A table cell: ``-`` for None, 4 significant digits for floats (``nan`` spelled out)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


#: ``summary.json`` key: ``{"columns": [...], "rows": {label: [fingerprint, finite cells]}, "form": "log"}`` of each
#: ``metrics.csv`` row's numbers other than its label (``row_fingerprint``), as written. ``distgen compare`` checks each row it reads against its
#: label's: a spreadsheet sort of the ``perturbation`` column alone moves every value to another condition while every
#: column's mean (``compare.edited_table``) and every label's ``truth_digests`` stay the same.
ROW_FINGERPRINTS = "row_fingerprints"
#: Relative difference of two fingerprints below which they are one row's: a table written again with 6 significant digits
#: or more (a spreadsheet's save) keeps its rows' fingerprints; a value edited by more than about 1e-5 of the row does not.
FINGERPRINT_TOLERANCE = 1e-5


@functools.lru_cache(maxsize=4096)
def _column_weight(column: str) -> float:
    """A fixed weight in [1, 2) per column name: values exchanged between two columns change the row's fingerprint."""
    return 1.0 + int(hashlib.blake2b(column.encode(), digest_size=4).hexdigest(), 16) / 2**32


def _number(text: Any) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


#: ``ROW_FINGERPRINTS["form"]`` of the fingerprints written now (``row_fingerprint``); a record without it has ``"linear"`` ones.
FINGERPRINT_FORM = "log"


def _log_size(v: float) -> float:
    """``v`` on a scale where a relative change is an absolute one: ``sign(v) (1 + ln(|v| / 1e-300))`` (0 for 0; linear
    below 1e-300). A value rounded to 6 significant digits moves by at most 5e-6 here, whatever its size."""
    a = abs(v)
    g = a / 1e-300 if a <= 1e-300 else 1.0 + math.log(a) + 300 * math.log(10)
    return math.copysign(g, v)


def row_fingerprint(row: Mapping[str, Any], columns: Sequence[str], form: str = FINGERPRINT_FORM) -> tuple[float, int, float]:
    """``(sum of w_c x g(value), finite cells, tolerance scale)`` over ``row``'s cells in ``columns`` (numbers; text and
    NaN left out): the first two are recorded, the third scales the tolerance of a comparison (``same_fingerprint``).
    Equal for two rows of equal values, so a row that holds another label's values is told from an edited one.

    ``form`` ``"log"`` (written now): ``g`` is ``_log_size``, so each cell counts by its relative change and the tolerance
    is the sum of the weights. ``"linear"`` (the first records, 2026-12-06): ``g(v) = v``, tolerance scaled by the sum of
    ``|w_c x value|``, where a row's large numbers (``n_cells_real`` of 3,000) hid an edit of its small ones: a
    ``perturbation`` column sorted on its own over metrics ~1e-3 was compared silently."""
    total = size = 0.0
    n = 0
    for c in columns:
        v = _number(row.get(c))
        if math.isfinite(v):
            w = _column_weight(c)
            if form == "linear":
                total += w * v
                size += abs(w * v)
            else:
                total += w * _log_size(v)
                size += w
            n += 1
    return total, n, size


def same_fingerprint(found: tuple[float, int, float], recorded: Any) -> bool:
    """Whether a row's ``row_fingerprint`` is the one recorded (``[fingerprint, finite cells]``), to ``FINGERPRINT_TOLERANCE``;
    True where nothing checkable is recorded."""
    if not isinstance(recorded, list | tuple) or len(recorded) != 2 or not isinstance(recorded[1], int | float):
        return True
    total, n, size = found
    if n != int(recorded[1]):
        return False
    if n == 0 or not isinstance(recorded[0], int | float) or not math.isfinite(total):
        return True
    return abs(total - float(recorded[0])) <= FINGERPRINT_TOLERANCE * size + 1e-300


#: The columns that name a row of a table whose ``ROW_FINGERPRINTS`` record no ``"keys"`` (a ``metrics.csv``).
ROW_KEYS = ("perturbation",)
#: The columns that name a row of a sweep's ``results.csv`` (its ``summary.json`` ``row_fingerprints`` are keyed by them).
RESULT_KEYS = ("variant", "seed", "perturbation")


def row_key(row: Mapping[str, Any], keys: Sequence[str] = ROW_KEYS) -> str:
    """The label of ``row`` under which its fingerprint is recorded: its ``perturbation`` for a ``metrics.csv``; for more
    key columns (a sweep's ``results.csv``: variant, seed, perturbation) the JSON list of their texts as written."""
    if tuple(keys) == ROW_KEYS:
        return str(row["perturbation"])
    return json.dumps([str(row.get(k, "")) for k in keys])


def table_row_fingerprints(text: str, keys: Sequence[str] = ROW_KEYS) -> dict[str, Any]:
    """``ROW_FINGERPRINTS`` of a csv text (a ``metrics.csv``; a sweep's ``results.csv`` with ``keys`` variant, seed and
    perturbation): every column but the ``keys``, each row's by its ``row_key``."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = sorted(c for c in (reader.fieldnames or []) if c not in keys)
    rows = {}
    for row in reader:
        total, n, _ = row_fingerprint(row, columns)
        rows[row_key(row, keys)] = [total if math.isfinite(total) else None, n]  # JSON has no inf (a sum past 1e308)
    out = {"columns": columns, "rows": rows, "form": FINGERPRINT_FORM}
    return out if tuple(keys) == ROW_KEYS else {**out, "keys": list(keys)}


def write_csv(table: MetricTable, path: str) -> dict[str, Any]:
    """One row per perturbation: counts, metric values and the reasons for NaNs. Returns the table's ``ROW_FINGERPRINTS``,
    for ``summary.json``."""
    rows = table.rows()
    return table_row_fingerprints(write_rows(rows, path, list(rows[0]) if rows else ["perturbation"]))


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], fieldnames: Sequence[str]) -> str:
    """A csv table of ``rows`` at ``path``, written whole or not at all (``distgen.atomic``); returns its text."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(fieldnames))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue(), newline="")
    return buf.getvalue()


#: Columns of ``metrics.csv`` / a sweep's ``results.csv`` that hold labels or text, never numbers: a perturbation
#: called ``001``, ``1e3`` or ``1.0`` is that text (as a float the three would be 1, 1000 and 1, and merge).
TEXT_COLUMNS = ("variant", "perturbation", "context", "nan_reasons")


def read_table_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` or ``results.csv``: ``TEXT_COLUMNS`` as written, other columns as floats where they
    parse (empty -> NaN), else as text."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out: dict[str, Any] = {}
            for k, v in row.items():
                if k in TEXT_COLUMNS:
                    out[k] = v
                    continue
                try:
                    out[k] = float(v) if v != "" else math.nan
                except (TypeError, ValueError):
                    out[k] = v
            rows.append(out)
    return rows


#: ``calibration.csv``'s source of the ceiling's split ``i`` (0: the split seeded by ``seed``; docs/metrics.md).
CEILING_SPLIT = "ceiling_split_{}"


def write_long_csv(tables: Mapping[str, MetricTable], path: str) -> None:
    """``source, perturbation, metric, value`` for the baselines and the ceiling."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["source", "perturbation", "metric", "value"])
    for src, t in tables.items():
        for name, vals in t.values.items():
            for p, v in zip(t.perts, vals):
                w.writerow([src, p, name, v])
    atomic_write_text(path, buf.getvalue(), newline="")


def clean_nan(obj: Any) -> Any:
    """``obj`` with every NaN float replaced by None (JSON has no NaN), through dicts, lists and tuples."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_nan(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int = 2) -> str:
    """Strict JSON text of ``obj`` (NaN as null, as in ``summary.json``): Python's default writes ``NaN``, which is not
    JSON (``jq`` and JavaScript refuse it)."""
    return json.dumps(clean_nan(obj), indent=indent, default=str, allow_nan=False)


def write_json(summary: Mapping[str, Any], path: str) -> None:
    """``summary.json`` (NaN written as null), written whole or not at all."""
    atomic_write_text(path, json_text(dict(summary)))


def markdown(summary: Mapping[str, Any]) -> str:
    """A readable table: model next to each baseline and the ceiling, with the normalised score."""
    rows = summary["metrics"]
    bases = sorted({b for r in rows.values() for b in r["baselines"]})
    folded: dict[str, list[str]] = {}
    for alias, v in (summary.get("baseline_aliases") or {}).items():
        folded.setdefault(v["same_as"], []).append(alias)
    positives = sorted({p for r in rows.values() for p in (r.get("positive_references") or {})})
    head = ["metric", "better", "model", *[md.cell(b + (f" (= {', '.join(folded[b])})" if b in folded else "")) for b in bases],
            "ceiling", *[md.cell(f"{p} (positive)") for p in positives], "normalised", "vs", "NaN"]
    lines = [
        "# distgen evaluate",
        "",
        f"prediction {md.code(summary['pred'])} vs truth {md.code(summary['real'])}: {_rows_counted(summary)}, "
        f"{counted(summary['n_genes'], 'gene')} ("
        + (f"{md.code(summary['pert_col'])}, " if summary.get("pert_col") else "")
        + f"control {md.code(summary['control'])})."
        + (f" Scored per context: {md.inline(listing(summary['contexts']))}." if summary.get("contexts") else ""),
        "",
        "normalised = (model - strongest baseline) / (ceiling - strongest baseline): 0 = baseline, 1 = ceiling; in brackets its "
        "95% interval over perturbations (percentile bootstrap of the ratio of means), \\* where the ceiling - baseline gap is "
        "not told apart from 0 (the score divides by noise).",
        ("The ceiling is the extrapolated replicate (halves and quarters of each perturbation's real cells, all controls on "
         "both sides, extrapolated to the truth's depth): a model drawing fresh cells of the true population scores about 1."
         if summary.get("replicate") == "extrapolated" else
         "The ceiling compares disjoint halves of the real cells (half depth), so for error metrics it is pessimistic: "
         "a model drawing fresh cells of the true population scores above 1."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for name, r in rows.items():
        better = "none (diagnostic)" if r.get("diagnostic") else ("higher" if r["higher_is_better"] else "lower")
        cells = [md.cell(name), better, fmt_value(r["model"]), *[fmt_value(r["baselines"].get(b)) for b in bases],
                 fmt_value(r["ceiling"]), *[fmt_value((r.get("positive_references") or {}).get(p)) for p in positives],
                 _normalised_cell(r), md.cell(fmt_value(r["strongest_baseline"])), str(r["n_nan"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += uncertainty_lines(summary)
    lines += spread_lines(summary.get("spread"))
    unstable = [f"- {md.inline(name, True)}: {md.inline(r['normalised_caution'])}" for name, r in rows.items() if r.get("normalised_caution")]
    if unstable:
        lines += ["", "## Normalised scores without a scale (marked \\*)", "", *unstable]
    undefined = [f"- {md.inline(name, True)}: normalised score NaN: {md.inline(r['normalised_note'])}" for name, r in rows.items()
                 if r.get("normalised_note") and (r["normalised"] is None or math.isnan(r["normalised"]))]
    if undefined:
        lines += ["", "## Undefined scores", "", *undefined]
    nan_bases = [f"- {md.inline(name, True)}, {md.inline(b)}: {md.inline(why or 'undefined')}" for name, r in rows.items()
                 for b, why in [*(r.get("baseline_notes") or {}).items(), *([("ceiling", r["ceiling_note"])] if r.get("ceiling_note") else [])]]
    if nan_bases:
        lines += ["", "## Undefined baseline scores", "", "A baseline's (or the ceiling's) nan in the table above is undefined on every "
                  "perturbation:", "", *nan_bases]
    fewer = [(name, r["normalised_rows"]) for name, r in rows.items() if r.get("normalised_rows")]
    if fewer:
        lines += ["", "## Normalised over fewer perturbations", "",
                  "The normalised score compares means over the same perturbations: those where the model, the strongest "
                  "baseline and the ceiling are all defined. Left out (model defined, the other side not):", ""]
        for name, c in fewer:
            out = first_of(list(c["left_out"].items()), 5, "; ", lambda pw: f"{md.inline(pw[0])} ({md.inline(pw[1])})")
            lines.append(f"- {md.inline(name, True)}: over {c['n']} (model {fmt_value(c['model'])}, baseline {fmt_value(c['baseline'])}, "
                         f"ceiling {fmt_value(c['ceiling'])}); left out: {out}")
    if summary.get("notes"):
        lines += ["", "## Notes", "", *[f"- {md.inline(n, True)}" for n in summary["notes"]]]
    return "\n".join(lines) + "\n"


def spread_lines(spread: Mapping[str, Any] | None) -> list[str]:
    """The ``summary.md`` section of the spread scores (``summary.json["spread"]``, ``distgen.evaluation.spread``): their
    means over the groups with several real batches, per model, baseline, collapsed copy and the real split-half."""
    if not spread:
        return []
    from distgen.evaluation.spread import SPREAD_METRICS, batch_test_line

    head = ["who", "role", *SPREAD_METRICS]
    lines = ["", "## Spread across batches (distribution over distributions)", "",
             f"Per group with several real batches ({counted(len(spread['rows']), 'group')}; batches: donors, plates... the data's "
             f"batch column): the generated populations, one per batch, against the real ones ({md.inline(str(spread['kernel']))} "
             "kernel, unbiased MMD^2 between populations, at most "
             f"{spread['cells_per_population']} cells each). spread_ratio: 1 = as spread as the real batches, 0 = one population "
             "for all; population_mmd2: lower is better; replicate_coverage: higher is better. `_collapsed`: the same cells "
             "pooled and copied to every batch. split_half: one half of each real batch against the other (positive reference, "
             "half depth).", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    ivs = spread.get("intervals") or {}

    def cell(who: str, m: str, mean: float) -> str:  # the mean, and its interval over groups where there is one
        # NaN (below 2 groups) is null in summary.json: a page written again from the folder reads None
        lo, hi = (math.nan if v is None else float(v) for v in ((ivs.get(who) or {}).get(m) or (None, None)))
        return fmt_value(mean) + (f" [{fmt_value(lo)}, {fmt_value(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else "")

    for who, means in spread["means"].items():
        lines.append("| " + " | ".join([md.cell(who), spread["roles"].get(who, ""), *[cell(who, m, means[m]) for m in SPREAD_METRICS]]) + " |")
    if any(v is not None and math.isfinite(v) for iv in ivs.values() for pair in iv.values() for v in pair):
        lines += ["", "[lo, hi]: 95% interval of the mean over the groups (studentized bootstrap; Student t at 3 groups or fewer): "
                  "how far it would move with other groups like these, not the noise of one group's estimate."]
    tested = batch_test_line(spread)
    if tested:
        lines += ["", tested]
    notes = [f"{label}: {r['note']}" for label, r in spread["rows"].items() if r.get("note")]
    notes += sorted({f"{who}: {r[who]['note']}" for r in spread["rows"].values() for who in spread["means"] if r[who].get("note")})
    if notes:
        lines += ["", *[f"- {md.inline(n, True)}" for n in notes]]
    return lines


#: Fewest values below which ``claims_lines`` says an interval of a mean undercovers skewed scores (``docs/metrics.md``).
FEW_VALUES = 10


def _rows_counted(summary: Mapping[str, Any]) -> str:
    """The header's count of rows: ``4 perturbations``, or with several contexts ``4 (condition, context) rows of 2
    perturbations`` (``n_conditions``; a summary.json written before it: the rows alone)."""
    n = summary["n_perturbations"]
    noun = row_noun(summary.get("contexts"))
    if noun == "perturbation" or not isinstance(summary.get("n_conditions"), int):
        return counted(n, noun)
    return f"{counted(n, noun)} of {counted(summary['n_conditions'], 'perturbation')}"


def claims_lines(rows: Mapping[str, Mapping[str, Any]], level: float, noun: str = "perturbation") -> list[str]:
    """What the uncertainty table does not say by itself: how many verdicts name a winner against how many survive Holm's
    adjustment for the metrics tested, and which intervals rest on fewer than ``FEW_VALUES`` values. ``noun``: what a
    value is (``wording.row_noun``)."""
    out = []
    tested = {k: r["vs_strongest_baseline"] for k, r in rows.items()
              if isinstance(r.get("vs_strongest_baseline"), Mapping) and r["vs_strongest_baseline"].get("holm_p") is not None
              and not math.isnan(r["vs_strongest_baseline"]["holm_p"])}
    named = [k for k, t in tested.items() if t.get("verdict") in ("model", "baseline")]
    alpha = 1 - level
    if len(tested) > 1 and named:
        kept = [k for k in named if tested[k]["holm_p"] < alpha]
        out += ["", f"{len(named)} of the {len(tested)} metrics tested against their strongest baseline "
                f"{'names' if len(named) == 1 else 'name'} a winner, each at "
                f"a claim p < {alpha:.2g} on its own; {len(kept)} {'keeps its' if len(kept) == 1 else 'keep theirs'} after Holm's "
                f"adjustment for the {len(tested)} tests" + (f" ({', '.join(md.inline(k) for k in kept)})" if kept else "")
                + ". Two equally good predictions get a winner on some metric far more often than on one (docs/metrics.md)."]
    held = [(k, t) for k, t in ((k, r.get("vs_strongest_baseline") or {}) for k, r in rows.items())
            if t.get("held_by") and t.get("verdict") == "inconclusive" and isinstance(t.get("wilcoxon_p"), int | float)
            and t["wilcoxon_p"] < alpha]
    if held:
        out += ["", f"Ahead of the strongest baseline at its own Wilcoxon p < {alpha:.2g} but not shown better than every "
                "baseline (the claim p is the largest per-baseline p, docs/metrics.md): the claim is held back by"]
        out += [""] + [f"- {md.inline(k, True)}: {md.inline(str(t['held_by']))} ("
                       + (f"claim p {float(t['claim_p']):.2g}" if isinstance(t.get("claim_p"), int | float) and t["claim_p"] == t["claim_p"]
                          else "fewer than 2 perturbations scored by both: untestable") + ")" for k, t in held]
    from distgen.evaluation.uncertainty import runner_up_notes

    sentences, grouped = runner_up_notes(rows, level, noun)
    unranked = [f"- {md.inline(k, True)}: {md.inline(said)}" for k, said in sentences.items()]
    if unranked:
        out += ["", "The strongest baseline is the one with the best mean; on these metrics it is not told apart from the "
                "next one by mean (their paired interval holds 0), so which of the two the difference and the verdict are "
                "against is a pick of the data's noise:", "", *unranked]
    out += [line for said in grouped for line in ("", md.inline(said))]
    few = sorted({int(r["ci_n"]) for r in rows.values() if isinstance(r.get("ci_n"), int | float) and 2 <= r["ci_n"] < FEW_VALUES})
    if few:
        out += ["", f"Some intervals rest on {listing(str(n) for n in few)} {noun}(s): at so few, a nominal {level:.0%} interval "
                "of a mean covers it less often when the scores are skewed (lognormal scores: 84% at 3, about 90% at 5-8; normal ones "
                "about 95%; docs/metrics.md)."]
    from distgen.evaluation.uncertainty import min_pairs

    need = min_pairs(alpha)
    short = sorted({int(t["n"]) for r in rows.values() for t in [r.get("vs_strongest_baseline") or {}]
                    if isinstance(t.get("n"), int | float) and 0 < t["n"] < need})
    if short:
        out += ["", f"A paired test over {listing(str(n) for n in short)} {noun}(s) cannot reach p < {alpha:.2g} (the "
                f"two-sided Wilcoxon test needs at least {need}): its verdict is inconclusive whatever the difference, even where "
                "its interval leaves out 0; score more perturbations to decide."]
    flat = [k for k, r in rows.items() if isinstance(r.get("ci_n"), int | float) and r["ci_n"] >= 2
            and isinstance(r.get("model_ci"), list | tuple) and len(r["model_ci"]) == 2
            and isinstance(r["model_ci"][0], float) and r["model_ci"][0] == r["model_ci"][1]]
    if flat:
        out += ["", f"Zero-width intervals ({', '.join(md.inline(k) for k in flat)}): every perturbation has the same value, so "
                "no spread was seen; that is not certainty about perturbations not scored."]
    if any(r.get("ci_n") == 1 for r in rows.values()):
        out += ["", "A metric defined on one perturbation only has no interval (a single value has no spread to measure)."]
    return out


def _normalised_cell(r: Mapping[str, Any]) -> str:
    """The normalised score with its interval (``normalised_ci``), or marked ``*`` when its scale is noise (``normalised_caution``)."""
    text = fmt_value(r["normalised"])
    if r.get("normalised_caution"):
        return text + " \\*"
    ci = r.get("normalised_ci")
    if ci and all(isinstance(v, float) and math.isfinite(v) for v in ci):
        text += f" [{fmt_value(ci[0])}, {fmt_value(ci[1])}]"
    return text


def uncertainty_lines(summary: Mapping[str, Any]) -> list[str]:
    """The ``summary.md`` table of intervals: model CI, ceiling band over splits, paired test against the strongest baseline."""
    rows = {k: r for k, r in summary["metrics"].items() if "model_ci" in r}
    if not rows:
        return []
    level = next(iter(rows.values())).get("ci_level", 0.95)

    def interval(v: Any) -> str:
        return f"[{fmt_value(v[0])}, {fmt_value(v[1])}]" if v else "-"

    head = ["metric", f"model {level:.0%} CI", "n", "ceiling band (min-max over splits)", "vs strongest baseline", "mean difference",
            "CI", "Wilcoxon p", "claim p", "Holm p", "pairs", "margin", "verdict"]
    lines = ["", f"## Uncertainty ({counted(summary.get('ceiling_splits', 0), 'ceiling split')}; studentized bootstrap over perturbations; "
             "paired Wilcoxon signed-rank test per perturbation)", "",
             f"verdict: model or baseline only where the claim p < {1 - level:.2g}, |mean difference| > margin (the ceiling band's "
             "std, the replicate's own spread, at least 1e-6 of the metric's size) and the signed ranks favour the mean's side; "
             "negligible where the CI lies within +-margin (shown to be smaller than it, not estimated so); else inconclusive. "
             "The strongest baseline is picked on these data, so its own Wilcoxon p is not the verdict's: 'model' claims the "
             "model is better than every baseline (claim p: the largest of its per-baseline Wilcoxon p, each on the model's side, "
             "an intersection-union test that needs no adjustment), 'baseline' that the strongest beats the model (claim p: its "
             "Wilcoxon p after Holm's adjustment over the baselines). Holm p: the claim p adjusted over the metrics tested.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, r in rows.items():
        b = r.get("ceiling_band") or {}
        t = r.get("vs_strongest_baseline") or {}
        n_ci = r.get("ci_n", "-")
        cells = [md.cell(name), interval(r["model_ci"]), fmt_value(n_ci), interval([b["min"], b["max"]]) if b else "-",
                 md.cell(fmt_value(t.get("baseline"))), fmt_value(t.get("mean_difference")), interval(t.get("ci")),
                 fmt_value(t.get("wilcoxon_p")), fmt_value(t.get("claim_p")), fmt_value(t.get("holm_p")), fmt_value(t.get("n")),
                 fmt_value(t.get("margin")),
                 fmt_value(t.get("verdict"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += claims_lines(rows, level, row_noun(summary.get("contexts")))
    roles = summary.get("reference_roles")
    if roles:
        lines += ["", "References: " + ", ".join(f"{md.inline(k)} ({md.inline(v)})" for k, v in roles.items()) + "."]
    return lines + strata_lines(rows)


def strata_lines(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``summary.md``'s difficulty strata table of the metric rows that have ``strata`` (``evaluation.strata.stratify``), with
    their notes; a stratum left empty by equal values at an edge has no entry, and the entries then name their stratum."""
    strata = {name: r["strata"] for name, r in rows.items() if r.get("strata")}
    if not strata:
        return []
    thr = next(iter(strata.values()))["near_solved_threshold"]
    head = ["metric", "baseline", "by response strength (model / baseline, tertiles low to high)",
            "by baseline saturation (model / baseline, tertiles low to high)", f"near-solved (saturation >= {thr:g})"]
    lines = ["", "## Difficulty strata (response = distance of the real mean from control; saturation = baseline's share "
             "of the control-to-ceiling range)", "", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, st in strata.items():
        def tiers(key: str, st: Mapping[str, Any] = st) -> str:
            bins = st[key]
            gaps = len(bins) < N_STRATA and bool(bins)  # an empty stratum left out: name each entry's
            return "; ".join(f"{fmt_value(b['model'])} / {fmt_value(b['baseline'])} (n={b['n']}"
                             + (f", stratum {b['stratum']} of {N_STRATA})" if gaps else ")") for b in bins) or "-"
        lines.append(f"| {md.cell(name)} | {md.cell(st['baseline'])} | {tiers('by_response')} | {tiers('by_saturation')} | "
                     f"{fmt_value(st['near_solved_fraction'])}" + (f" (of {st['n_saturation']})" if "n_saturation" in st else "") + " |")
    noted = [f"- {md.inline(name)}: {md.inline(st['note'], True)}" for name, st in strata.items() if st.get("note")]
    if noted:
        lines += ["", *noted]
    return lines


def plots(data: EvalData | Sequence[EvalData], table: MetricTable, out: str, max_cells: int = 2000) -> list[str]:
    """Per-perturbation metric bars, predicted-vs-real delta scatter and a PCA overlay of cells (contexts pooled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distgen.glyphs import BASE, fallback_families

    # a label "dose $x_1$" is text, not a formula to set (or fail on); installed fonts that draw the labels' characters
    # DejaVu Sans lacks (CJK) follow it, and the characters none draws are written as escapes (glyphs.drawable)
    with matplotlib.rc_context({"text.parse_math": False, "font.family": [BASE, *fallback_families(table.perts)]}):
        return _plots(plt, data, table, out, max_cells)


def _savefig(fig: Any, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def pick_rows(blocks: Sequence[torch.Tensor], max_cells: int, genes: Sequence[str]) -> torch.Tensor:
    """At most ``max_cells`` rows of the blocks stacked, gathered from each block without the copy of every cell that
    stacking them makes: a subset chosen, and ordered, by the cells' values (``distgen.seeds.content_subset``, genes
    ``genes`` by name), so the same files in another row or gene order draw the same figure. Before 2026-12-06 they were
    evenly spaced rows in row order, and a truth saved in another row order drew another ``embedding_overlay.png``."""
    rows = content_subset(np.concatenate([content_keys(b, genes) for b in blocks]), max_cells)
    parts, start, where = [], 0, []
    for b in blocks:
        mine = (rows >= start) & (rows < start + b.shape[0])
        parts.append(b[(rows[mine] - start).to(b.device)])
        where.append(torch.nonzero(mine).flatten())
        start += int(b.shape[0])
    out = torch.cat(parts)
    return out[torch.argsort(torch.cat(where)).to(out.device)]  # row k of out is rows[k]


def _plots(plt: Any, data: EvalData | Sequence[EvalData], table: MetricTable, out: str, max_cells: int) -> list[str]:
    from distgen.glyphs import short_labels

    files = []
    names = [m for m in BAR_METRICS if m in table.values]
    if names:
        n = len(table.perts)
        named = n <= BAR_LABEL_LIMIT
        fig, axes = plt.subplots(len(names), 1, figsize=(max(6, 0.3 * min(n, BAR_LABEL_LIMIT)), 2.2 * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            ax.bar(range(n), table.values[name], color="tab:blue", **({} if named else {"width": 1.0, "linewidth": 0}))
            ax.set_ylabel(name, fontsize=8)
            if named:
                ax.set_xticks(range(n))
                ax.set_xticklabels(short_labels(table.perts) if ax is axes[-1, 0] else [], rotation=90, fontsize=6)
            elif ax is axes[-1, 0]:
                ax.set_xlabel(f"{n} rows of metrics.csv, in its order (names left out above {BAR_LABEL_LIMIT}; every value is in metrics.csv)",
                              fontsize=8)
        fig.tight_layout()
        files.append(os.path.join(out, "metrics_per_perturbation.png"))
        _savefig(fig, files[-1])
        plt.close(fig)

    datas = [data] if isinstance(data, EvalData) else list(data)
    real_d = torch.cat([d.delta("real").flatten() for d in datas])
    pred_d = torch.cat([d.delta("pred").flatten() for d in datas])
    ok = torch.isfinite(real_d) & torch.isfinite(pred_d)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(real_d[ok].numpy(), pred_d[ok].numpy(), s=3, alpha=0.4)
    lim = float(torch.cat([real_d[ok], pred_d[ok]]).abs().max()) if bool(ok.any()) else 1.0
    ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
    ax.set_xlabel("observed delta (real - real control)")
    ax.set_ylabel("predicted delta (pred - pred control)")
    ax.set_title("per gene and perturbation")
    fig.tight_layout()
    files.append(os.path.join(out, "delta_scatter.png"))
    _savefig(fig, files[-1])
    plt.close(fig)

    genes = datas[0].genes
    real_x, pred_x = pick_rows([d.real.X for d in datas], max_cells, genes), pick_rows([d.pred.X for d in datas], max_cells, genes)
    pred_x = pred_x[finite_rows(pred_x)]  # torch.isfinite(pred_x) made a copy of it (its abs) and three bool tables
    if real_x.shape[0] >= 3 and pred_x.shape[0] >= 1:
        centred = real_x.to(torch.float64, copy=True)  # a copy: real_x can be the cells themselves; one float64 table, not 4
        mu = centred.mean(0)
        centred.sub_(mu)  # the values of real_x.double() - mu
        _, v = principal_axes(centred, 2)  # seeded (or exact) and oriented: the same figure for the same files
        zr, zp = centred @ v, (pred_x.double() - mu) @ v
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(zr[:, 0], zr[:, -1], s=3, alpha=0.4, label="real")
        ax.scatter(zp[:, 0], zp[:, -1], s=3, alpha=0.4, label="generated")
        ax.set_xlabel("PC1 (of real perturbed cells)")
        ax.set_ylabel("PC2")
        ax.legend()
        fig.tight_layout()
        files.append(os.path.join(out, "embedding_overlay.png"))
        _savefig(fig, files[-1])
        plt.close(fig)
    return files


@dataclass
class Report:
    """An evaluation: per-group metric tables of the model, its references and the ceiling, and the summary.

    Attributes
    ----------
    table
        The model's metrics, one row per (condition[, context]) group.
    references
        ``{baseline: table}`` on the same groups.
    ceiling
        The half-split ceiling's table (None when not computed).
    summary
        Means per metric next to each baseline and the ceiling, normalised scores, notes (``summary.json``).
    data
        What the metrics saw, one ``EvalData`` per scored context (for plots).
    positives
        ``{name: table}`` of positive references other than the ceiling (``interpolated_duplicate`` with
        ``--interpolated``): written to ``calibration.csv`` and drawn on the page, never a baseline.
    ceiling_splits
        The ceiling's table of each split (``ceiling`` is their mean): written to ``calibration.csv`` as sources
        ``ceiling_split_<i>`` (``CEILING_SPLIT``), from which ``summary.json``'s ``ceiling_band`` is recomputed.
    """

    table: MetricTable
    references: dict[str, MetricTable]
    ceiling: MetricTable | None
    summary: dict[str, Any]
    data: list[EvalData] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    positives: dict[str, MetricTable] = field(default_factory=dict)
    ceiling_splits: list[MetricTable] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per metric: ``model``, ``baselines``, ``ceiling``, ``normalised``... (``summary["metrics"]``)."""
        return self.summary["metrics"]  # type: ignore[no-any-return]

    def write(self, out: str | os.PathLike[str], make_plots: bool = True) -> dict[str, Any]:
        """Write ``metrics.csv``, ``calibration.csv``, plots, ``summary.json`` and ``summary.md`` to ``out``; returns the summary.

        Each file is written whole or not at all; the folder is marked first (``EVALUATION_MARK``) and ``summary.json``
        comes after the tables and plots, so a folder with tables but no summary is an interrupted evaluation."""
        out = os.fspath(out)
        Path(out).mkdir(parents=True, exist_ok=True)
        mark_evaluation(out)
        self.summary[ROW_FINGERPRINTS] = write_csv(self.table, os.path.join(out, "metrics.csv"))
        extra = {**self.references, **self.positives}
        if self.ceiling is not None:
            extra["ceiling"] = self.ceiling
            if len(self.ceiling_splits) > 1:  # one split is the ceiling itself
                extra.update({CEILING_SPLIT.format(i): t for i, t in enumerate(self.ceiling_splits)})
        write_long_csv(extra, os.path.join(out, "calibration.csv"))
        if make_plots:
            self.summary["plots"] = [os.path.basename(f) for f in plots(self.data, self.table, out)]
        self.summary["seconds"] = round(time.perf_counter() - self.started, 2)
        write_json(self.summary, os.path.join(out, "summary.json"))
        atomic_write_text(os.path.join(out, "summary.md"), markdown(self.summary))
        return self.summary
