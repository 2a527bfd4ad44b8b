"""Words for the numbers: which metrics head the report, why a normalised score is undefined, which conditions are flagged."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from distgen.report.inputs import ReportInputs
from distgen.report.style import MetricInfo, metric_info
from distgen.wording import first_of, listing

#: Metrics that head the report when computed (one or two per family); other families get their first metric.
HEADLINE = ("mse", "pearson_delta", "discrimination_score_l1", "overlap_at_N", "de_direction_match", "edistance", "mmd")


def by_family(names: Sequence[str]) -> dict[str, list[str]]:
    """``{family: [metric, ...]}`` in the order the metrics come."""
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(metric_info(n).family, []).append(n)
    return out


def headline_metrics(names: Sequence[str]) -> dict[str, list[str]]:
    """The headline metrics grouped by family: those of ``HEADLINE`` present, else each family's first.

    A family of only global metrics (one value for all conditions, no interval) heads nothing unless
    one of them is in ``HEADLINE``; the table lists every metric.
    """
    out: dict[str, list[str]] = {}
    for family, members in by_family(names).items():
        chosen = [n for n in HEADLINE if n in members] or [m for m in members if metric_info(m).level != "global"][:1]
        if chosen:
            out[family] = chosen
    return out


def _f(v: float) -> str:
    return "nan" if v is None or math.isnan(v) else f"{v:.3g}"


#: Why a normalised score can be undefined, said once per page (keyed by the short reason).
BACKGROUND = {
    "baseline beats ceiling": (
        "Why a baseline can beat the ceiling: the ceiling compares two disjoint halves of the real cells, so both "
        "sides carry the sampling noise of half the cells; a baseline built from many training cells can be "
        "smoother than that, and on error metrics it can then score better than the ceiling. The scale "
        "(model − baseline) / (ceiling − baseline) has no meaning there: compare the model with the baseline directly "
        "(or evaluate with --replicate extrapolated, a ceiling at the truth's depth; docs/metrics.md)."),
    "baseline = ceiling": "When the best baseline equals the ceiling the scale from baseline to ceiling has zero length.",
}


def normalised_reason(row: Mapping[str, Any], info: MetricInfo, model_nan: str = "") -> tuple[str, str]:
    """``(short, sentence)``: why a metric's normalised score is undefined (``("", "")`` when it is defined).

    Worded from the numbers themselves, so a reader sees which reference causes it; the
    evaluation's own note is used when none of the known cases applies. ``model_nan``: the reason
    the model's values are NaN, when known. ``BACKGROUND[short]`` holds the longer explanation where there is one.
    """
    score = row.get("normalised", math.nan)
    if score is not None and not math.isnan(score):
        return "", ""
    note = str(row.get("normalised_note") or "")
    model, ceil = row.get("model", math.nan), row.get("ceiling", math.nan)
    bases = {b: v for b, v in (row.get("baselines") or {}).items() if v is not None and not math.isnan(v)}
    best = row.get("strongest_baseline")
    if model is None or math.isnan(model):
        why = f" ({model_nan})" if model_nan else (" (see the flagged conditions)" if info.level != "global" else "")
        return "model undefined", f"the model's {info.name} is undefined on every condition{why}."
    if not bases:
        return "no baseline", "no baseline could be scored on this metric, so the scale has no zero point."
    if ceil is None or math.isnan(ceil):
        return "no ceiling", "the ceiling is not available on this metric, so the scale has no top."
    if best in bases and abs(ceil - bases[best]) <= 1e-12 * max(1.0, abs(ceil)):
        return "baseline = ceiling", f"the best baseline ({best}, {_f(bases[best])}) equals the ceiling ({_f(ceil)})."
    if best in bases and not info.better(ceil, bases[best]):
        return "baseline beats ceiling", (f"the best baseline ({best}, {_f(bases[best])}) is already "
                                          f"{'better than' if info.better(bases[best], ceil) else 'as good as'} the ceiling ({_f(ceil)}).")
    return "undefined", note or "undefined."


#: A condition with fewer real cells than this is flagged: its metrics rest on too few cells to trust (it is still scored).
MIN_CELLS = 10


def flagged(inputs: ReportInputs) -> dict[str, list[str]]:
    """``{condition: [reasons]}``: conditions a reader should not take at face value.

    Flagged are conditions with atoms the model cannot embed (``summary["unembeddable"]``, the
    pre-flight check's answer that ``distgen run`` records), with NaN metrics (and why), with fewer
    than ``MIN_CELLS`` real cells, or named in the evaluation's notes. Global metrics (one value for
    all conditions) and notes about a baseline's fallbacks flag no condition.
    """
    out: dict[str, list[str]] = {}
    table = inputs.model
    unembedded = _unembeddable(inputs, out)
    local = [n for n in table.reasons if metric_info(n).level != "global"]  # a global metric's NaN is no condition's fault
    for p in table.perts:
        why: dict[str, list[str]] = {}
        for name in local:
            reasons = table.reasons[name]
            if p in reasons:
                why.setdefault(reasons[p], []).append(name)
        for reason, names in why.items():
            which = "all metrics" if len(names) == len(local) else first_of(names, 4)
            out.setdefault(p, []).append(f"{which}: NaN ({reason})")
    counts = table.info.get("n_cells_real")
    for p, n in zip(table.perts, counts or []):
        if isinstance(n, int | float) and not math.isnan(n) and n < MIN_CELLS and not any("real cell" in w for w in out.get(p, [])):
            out.setdefault(p, []).append(f"too few cells: {int(n)} real cell(s), fewer than {MIN_CELLS}; its metrics are noisy")
    quoted = {p: [f"'{a}'" for a in p.split("+")] for p in table.perts}  # notes list unpredictable atoms quoted
    for note in map(str, inputs.summary.get("notes") or []):
        if note.startswith("baseline "):
            continue  # about a baseline's fallback, not the model's conditions (listed under Notes)
        rows: list[str] = []
        for p in table.perts:
            # a plain substring test first: the pattern below is compiled only for the few conditions a note can name
            # (every pattern for every note was notes x conditions compilations: 22 s for 400 notes x 1,600 conditions)
            named = p in note and re.search(rf"(?<![\w+]){re.escape(p)}(?![\w+])", note)
            if not (named or any(q in note for q in quoted[p])):
                continue
            if note.startswith(f"{p}: all metrics NaN"):
                continue  # already listed from the table's reasons
            if p in unembedded and "pre-flight" in note:
                continue  # already listed, atom by atom
            rows.append(p)
        first = min(rows, default="")  # the page lists flagged rows by name: the note in full under the first it names
        for p in rows:  # (a note naming several rows was repeated in full under each until 2026-12-07)
            out.setdefault(p, []).append(note if p == first else f"the note under {first} names it too")
    return out


def _unembeddable(inputs: ReportInputs, out: dict[str, list[str]]) -> set[str]:
    """Flag (into ``out``) the rows whose condition has atoms the model cannot embed; returns those rows."""
    record = inputs.summary.get("unembeddable") or {}
    by_condition = record.get("conditions") or {}
    who = record.get("component") or "the model"
    rows = set()
    for p, condition in zip(inputs.model.perts, inputs.model.conditions(), strict=True):
        atoms = by_condition.get(condition)  # a "condition @ context" row: its condition, cut at its recorded context
        if atoms:
            rows.add(p)
            out.setdefault(p, []).append(
                f"unembeddable atom(s) {listing(atoms)}: {who} cannot embed them (never seen in training), "
                "so this prediction comes from an untrained embedding or the model's fallback")
    return rows


def condition_strength(inputs: ReportInputs) -> tuple[dict[str, float], str]:
    """Response strength of each condition and a sentence on how it was measured.

    In order of preference: a ``response_strength`` column the evaluation wrote; the norm of the
    real pseudobulk response when cells are loaded and name the table's rows; the root of the control baseline's ``mse``
    (the same quantity per gene, up to control sampling).
    """
    from distgen.report.stats import response_strength

    table = inputs.model
    index = inputs.cell_index()
    given = table.info.get("response_strength")
    if given is not None:
        return {p: float(v) for p, v in zip(table.perts, given)}, "response strength as computed by the evaluation"
    if index and any(p in index for p in table.perts):  # cells that name none of the rows measure nothing here
        per_data = {id(d): response_strength(d) for d, _ in index.values()}
        strength = {label: per_data[id(d)][d.perts[i]] for label, (d, i) in index.items()}
        return {p: strength.get(p, math.nan) for p in table.perts}, "response strength = ‖mean(real) − mean(real control)‖₂ over genes"
    ctrl = inputs.reference("control")
    if ctrl is not None and "mse" in ctrl.table.values:
        vals = [math.sqrt(v) if v == v and v >= 0 else math.nan for v in ctrl.table.values["mse"]]
        return dict(zip(table.perts, vals)), "response strength = √(mse of the control baseline): RMS per gene of real − control means"
    return {p: float(len(table.perts) - i) for i, p in enumerate(table.perts)}, "conditions in table order (no cells and no control baseline to measure response strength)"
