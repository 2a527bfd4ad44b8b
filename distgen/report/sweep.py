"""The sweep report: one row per variant, seeds as points, paired differences against the reference as intervals.

``SweepInputs`` holds plain data (the per-run, per-condition rows of ``results.csv`` and the
paired tests of ``summary.json``), so the page can be written by ``distgen sweep`` or from its
files (``load_sweep_dir``) without importing the sweep machinery.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from distgen.atomic import atomic_write_text
from distgen.errors import warn
from distgen.evaluation.report import RESULT_KEYS, ROW_FINGERPRINTS, read_table_csv, row_key
from distgen.evaluation.uncertainty import WITHOUT_EFFECT
from distgen.glyphs import stand_ins
from distgen.report.files import check_summary, read_json, read_rows
from distgen.report.html import Cell, Section, figure, labels_section, num, page, table
from distgen.report.stats import paired_interval
from distgen.report.style import (
    CEILING,
    MODEL,
    NEUTRAL,
    WORSE,
    baseline_look,
    metric_info,
    metric_labels,
    short_label,
    short_labels,
    theme,
    value_axis,
)
from distgen.wording import counted, listing


@dataclass
class SweepInputs:
    """A sweep's results.

    Attributes
    ----------
    rows
        One dict per (variant, seed, condition): ``variant``, ``seed``, ``perturbation`` and metric values.
    variants
        Variant names in grid order; ``reference`` is the one the others are compared against.
    metrics
        Metrics to show.
    comparisons
        Paired tests (``variant``, ``metric``, ``n_pairs``, ``mean_diff``, ``p_value``, ``better``; since 2026-12-06 also
        ``verdict``, ``ci_low``/``ci_high``, ``margin``, ``rank_direction``, ``test``), as in ``summary.json``.
    references
        Optional ``{baseline or "ceiling": {metric: (mean, low, high)}}`` over the runs (low/high: the
        range over runs), drawn like on the evaluation page: baselines as lines, the ceiling as a band.
    failed
        Runs that did not finish.
    identical
        ``{variant: other}``: variants whose results equal another's for every seed, perturbation and
        metric (``summary.json["identical"]``): the setting that tells them apart had no effect.
    failures, diverged
        ``{run: error}`` of failed runs, and ``{run: {"variant", "seed", "step", "loss", "first_loss", ...}}`` of finished
        runs whose training loss exploded (``summary.json["failures"]``, ``["diverged"]``).
    truths_differ
        ``{variant: why}``: variants scored on other real data than the reference (other genes, other real cells under a
        shared label; ``summary.json["truths_differ"]``, ``distgen.pipeline.aggregate.truth_mismatch``): no side is named.
    seeds_truths_differ
        ``{variant: why}``: variants whose runs were scored on other real cells at one seed than at another (a data file
        replaced between two invocations of the sweep; ``summary.json["seeds_truths_differ"]``,
        ``distgen.pipeline.aggregate.seeds_truth_mismatch``): their mean and sd over seeds mix two data sets.
    tables_edited
        ``{run: why}``: finished runs whose ``eval/metrics.csv`` is not what their evaluation wrote (``summary.json
        ["tables_edited"]``, ``distgen.evaluation.compare.check_table``): aggregated as they are now, and said.
    spread
        ``{variant: {"seeds", "mean", "sd", "n_seeds"}}``: the runs' spread scores of the model over seeds
        (``summary.json["spread"]``, ``distgen.evaluation.spread.spread_over_seeds``); empty when no run scored them.
    """

    rows: list[dict[str, Any]]
    variants: list[str]
    reference: str
    metrics: list[str]
    comparisons: list[Mapping[str, Any]] = field(default_factory=list)
    references: Mapping[str, Mapping[str, tuple[float, float, float]]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    identical: Mapping[str, str] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)
    diverged: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    truths_differ: Mapping[str, str] = field(default_factory=dict)
    seeds_truths_differ: Mapping[str, str] = field(default_factory=dict)
    tables_edited: Mapping[str, str] = field(default_factory=dict)
    spread: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    title: str = "distgen sweep report"


def seed_means(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, dict[int, float]]:
    """``{variant: {seed: mean over conditions}}`` (NaNs skipped)."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = r.get(metric)
        if isinstance(v, int | float) and not math.isnan(v):
            acc[str(r["variant"])][int(r["seed"])].append(float(v))
    return {var: {s: float(np.mean(vs)) for s, vs in by.items()} for var, by in acc.items()}


def paired_differences(rows: Sequence[Mapping[str, Any]], variant: str, reference: str, metric: str) -> list[float]:
    """``variant - reference`` on every (seed, condition) both have a value for."""
    def table_of(name: str) -> dict[tuple[int, str], float]:
        return {(int(r["seed"]), str(r["perturbation"])): float(r[metric]) for r in rows
                if r["variant"] == name and isinstance(r.get(metric), int | float) and not math.isnan(r[metric])}

    a, b = table_of(variant), table_of(reference)
    return [a[k] - b[k] for k in sorted(set(a) & set(b))]


def coverage_notes(rows: Sequence[Mapping[str, Any]], variants: Sequence[str], reference: str, metrics: Sequence[str]) -> list[str]:
    """One line per (variant, metric) whose scored (seed, condition) pairs differ from the reference's: a NaN on one side, or
    a condition one side has no row of (another panel of held-out conditions), counted apart.

    The table's means are over each variant's own scored conditions, the paired comparison over those both scored: a
    variant NaN on its hardest conditions has a better mean without being better (the comparison leaves them out)."""
    def scored(name: str, metric: str) -> set[tuple[int, str]]:
        return {(int(r["seed"]), str(r["perturbation"])) for r in rows
                if r["variant"] == name and isinstance(r.get(metric), int | float) and math.isfinite(r[metric])}

    def present(name: str) -> set[tuple[int, str]]:
        return {(int(r["seed"]), str(r["perturbation"])) for r in rows if r["variant"] == name}

    def why(only: set[tuple[int, str]], other: set[tuple[int, str]], side: str) -> str:
        if not only:
            return ""
        nan, absent = len(only & other), len(only - other)  # the other side has the row (its value NaN), or has none
        parts = ([f"{nan} NaN for the {side}"] if nan else []) + ([f"{absent} without a row of the {side}"] if absent else [])
        return f" ({'; '.join(parts)})"

    out = []
    rows_of = {v: present(v) for v in variants}
    for m in metrics:
        ref = scored(reference, m)
        for v in variants:
            if v == reference:
                continue
            own = scored(v, m)
            if own != ref and own and ref:
                out.append(f"{v}, {m}: {len(own & ref)} (seed, condition) pairs scored by both; {len(own - ref)} by the variant "
                           f"only{why(own - ref, rows_of[reference], 'reference')}, {len(ref - own)} by the reference only"
                           f"{why(ref - own, rows_of[v], 'variant')}")
    return out


def values_figure(inp: SweepInputs) -> Figure:
    """Per metric: each variant's seeds (open points) and their mean (filled), baselines as lines, the ceiling as a band."""
    n = len(inp.variants)
    fig = Figure(figsize=(2.3 * len(inp.metrics) + 1.4, 0.95 + 0.32 * n), layout="constrained")
    axes = fig.subplots(1, len(inp.metrics), sharey=True, squeeze=False)[0]
    y = np.arange(n)
    handles: dict[str, Any] = {
        "seed (mean over conditions)": Line2D([], [], marker="o", mfc="none", color=MODEL, ls="", ms=4),
        "mean over seeds": Line2D([], [], marker="D", color=MODEL, ls="", ms=5),
    }
    titles = metric_labels(inp.metrics)
    for ax, metric in zip(axes, inp.metrics):
        sm = seed_means(inp.rows, metric)
        for yi, var in zip(y, inp.variants):
            vals = list(sm.get(var, {}).values())
            if vals:
                ax.scatter(vals, [yi] * len(vals), facecolors="none", edgecolors=MODEL, s=18, lw=0.9, zorder=3)
                ax.scatter([np.mean(vals)], [yi], marker="D", color=MODEL if var != inp.reference else NEUTRAL, s=26, zorder=4)
        for name, by_metric in inp.references.items():
            v, lo, hi = by_metric.get(metric, (math.nan, math.nan, math.nan))
            if math.isnan(v):
                continue
            if name == "ceiling":
                ax.axvspan(lo, hi, color=CEILING, alpha=0.16, lw=0, zorder=1)
                ax.axvline(v, color=CEILING, lw=1.4, zorder=1)
                handles["ceiling (band: range over runs)"] = (Patch(color=CEILING, alpha=0.25, lw=0), Line2D([], [], color=CEILING, lw=1.4))
            else:
                look = baseline_look(name.split(" (=")[0])
                ax.axvline(v, color=look.color, lw=1.0, ls="--", zorder=1)
                handles[short_label(name)] = Line2D([], [], color=look.color, lw=1.0, ls="--")
        ax.set_xlabel(f"{titles[metric]} ({metric_info(metric).direction})")
        ax.set_title(titles[metric], fontsize=8.5, loc="left", fontweight="bold")
        ax.tick_params(axis="y", length=0)
        value_axis(ax, nbins=4)
    labels = [f"{s} (reference)" if v == inp.reference else s for v, s in zip(inp.variants, short_labels(inp.variants))]
    axes[0].set_yticks(y, labels)
    axes[0].set_ylim(n - 0.5, -0.5)
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncol=min(len(handles), 5),
               handler_map={tuple: HandlerTuple(ndivide=1)})
    return fig


def _comparison(inp: SweepInputs, variant: str, metric: str) -> Mapping[str, Any]:
    for c in inp.comparisons:
        if c.get("variant") == variant and c.get("metric") == metric:
            return c
    return {}


def named_side(c: Mapping[str, Any], alpha: float = 0.05) -> str | None:
    """``variant`` or ``reference`` where the comparison names a better side, else None.

    By its ``verdict`` (``distgen.pipeline.aggregate.summary_markdown``: the single-run rule at the table's Holm p < ``alpha``,
    beyond the margin and the signed ranks on the mean's side); a ``summary.json`` written before the verdict: p < ``alpha`` and the
    side of the mean (``better``), as the page coloured then."""
    if "verdict" in c:
        said = str(c.get("verdict"))
        return said if said in ("variant", "reference") else None
    p = c.get("p_value")
    said = str(c.get("better"))
    return said if isinstance(p, int | float) and p < alpha and said in ("variant", "reference") else None


def verdict_words(c: Mapping[str, Any], alpha: float = 0.05) -> str:
    """The verdict column of the page and of ``summary.md``: ``variant better`` / ``reference better`` / ``negligible`` /
    ``inconclusive (mean favours X)`` / ``tie`` ... of one comparison (``summary.json``'s, or a ``Comparison``'s fields).
    The verdict reads the table's Holm p; one that its own p alone would have named (``verdict_alone``) says so.

    A side named over the conditions of one seed says so (``one seed: these runs``: training noise alone tells two runs
    apart). An inconclusive verdict names the side of the mean difference (no finding), and why where the signed ranks and the
    mean disagree or a significant difference is within the margin by its estimate only. A ``summary.json`` written
    before the verdict: the side of the mean, marked not significant where p >= ``alpha``."""
    def number(key: str) -> float:
        v = c.get(key)
        return float(v) if isinstance(v, int | float) else math.nan

    better = str(c.get("better"))
    if "verdict" not in c:
        return better + (" (not significant)" if better in ("variant", "reference") and named_side(c, alpha) is None else "")
    said = str(c.get("verdict"))
    if said in ("variant", "reference"):  # over conditions: these two runs differ; whether the setting does needs seeds
        return f"{said} better" + (" (one seed: these runs)" if c.get("test") == "Wilcoxon over perturbations" else "")
    if said != "inconclusive":
        return said
    p, d, width, ranks = number("p_value"), number("mean_diff"), number("margin"), number("rank_direction")
    why = ""
    if c.get("verdict_alone") in ("variant", "reference"):  # named at its own p, not at the table's Holm p
        why = f"; p < {alpha:.2g} on its own, not after Holm's adjustment for the table"
    elif p < alpha and ranks and ranks != np.sign(d):
        why = "; the signed ranks favour the other side"
    elif p < alpha and abs(d) <= width:
        why = "; significant, within the margin by its estimate only"
    side = f"mean favours {better}" if better in ("variant", "reference") else ""
    return f"inconclusive ({side}{why})" if side or why else said


def differences_figure(inp: SweepInputs, alpha: float = 0.05) -> Figure | None:
    """Per metric: each variant's mean paired difference from the reference with a 95% interval (``paired_interval``: Student t
    over seeds, the interval of the sweep's t-test; bootstrap over conditions with one seed).

    Over the same units as the sweep's paired test (``distgen.evaluation.uncertainty.sweep_units``): the per-seed
    mean differences with two or more seeds, the per-condition differences with one. Blue: the verdict names the variant
    better (``named_side``: Holm's p < ``alpha``, beyond the margin, the ranks on the mean's side), vermillion: the reference, grey:
    neither.
    """
    from distgen.evaluation.uncertainty import sweep_units

    others = [v for v in inp.variants if v != inp.reference]
    if not others:
        return None
    fig = Figure(figsize=(2.3 * len(inp.metrics) + 1.4, 0.95 + 0.34 * len(others)), layout="constrained")
    axes = fig.subplots(1, len(inp.metrics), sharey=True, squeeze=False)[0]
    y = np.arange(len(others))
    titles = metric_labels(inp.metrics)
    for ax, metric in zip(axes, inp.metrics):
        info = metric_info(metric)
        for yi, var in zip(y, others):
            unit, diffs, _ = sweep_units(inp.rows, var, inp.reference, metric)
            m, lo, hi = paired_interval(diffs, bounds=info.bounds, unit=unit)
            if math.isnan(m):
                continue
            c = _comparison(inp, var, metric)
            p = c.get("p_value", math.nan)
            p = math.nan if p is None else float(p)
            color = {"variant": MODEL, "reference": WORSE}.get(named_side(c, alpha) or "", NEUTRAL)
            ax.errorbar([m], [yi], xerr=[[m - lo], [hi - m]], fmt="o", color=color, ms=5, elinewidth=1.5, capsize=0, zorder=3)
            if not math.isnan(p):
                ax.annotate(f"p={p:.2g}", (hi if math.isfinite(hi) else m, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=6.5, color=color)
        ax.axvline(0, color="#888888", lw=0.8, zorder=1)
        ax.set_xlabel(f"{titles[metric]}: variant − reference\n({info.direction})", labelpad=9)
        value_axis(ax, nbins=4)
        ax.set_title(titles[metric], fontsize=8.5, loc="left", fontweight="bold")
        ax.tick_params(axis="y", length=0)
        ax.margins(x=0.18)
    axes[0].set_yticks(y, short_labels(others))
    axes[0].set_ylim(len(others) - 0.5, -0.5)
    fig.legend([Patch(color=MODEL), Patch(color=WORSE), Patch(color=NEUTRAL)],
               [f"variant better (p < {alpha:g}, beyond the margin)", f"reference better (p < {alpha:g}, beyond the margin)",
                "negligible or inconclusive"],
               loc="outside upper center", ncol=3)
    return fig


def render_sweep(inp: SweepInputs) -> str:
    """The sweep page as an HTML string."""
    texts = [*inp.variants, *inp.metrics, *inp.references]
    with theme(texts):
        shown = stand_ins(texts)
        values = figure(values_figure(inp), "Each variant: one open point per seed (its mean over held-out conditions) and the "
                        "mean over seeds; dashed lines: baselines, green line and band: the ceiling (mean and range over the runs).", alt="sweep values")
        diffs = figure(differences_figure(inp), f"Mean paired difference from the reference variant <code>{escape(inp.reference)}</code> "
                       "with a 95% interval over seeds (each seed's mean difference, Student t: it holds 0 exactly where p >= 0.05; one seed: "
                       "a bootstrap interval over conditions); p: the paired test of the "
                       "sweep summary (t-test over seeds; one seed: Wilcoxon signed-rank over conditions).", alt="sweep differences")
    head = ["variant", "seeds", *[f"{m} ({metric_info(m).direction})" for m in inp.metrics]]  # tables: the whole names
    rows = []
    for var in inp.variants:
        same = f" (= {inp.identical[var]}: no effect)" if var in inp.identical else ""
        cells: list[Cell | str] = [var + (" (reference)" if var == inp.reference else "") + same]
        n_seeds = 0
        for m in inp.metrics:
            means = list(seed_means(inp.rows, m).get(var, {}).values())
            n_seeds = max(n_seeds, len(means))
            if len(means) > 1:
                cells.append(Cell(f"{num(float(np.mean(means)))} ± {num(float(np.std(means, ddof=1)), 2)}", "num"))
            else:  # one seed has no spread to show; no seed, no value
                cells.append(Cell(f"{num(means[0])} (1 seed: no sd)" if means else "– (no value)", "num"))
        n_div = sum(1 for d in inp.diverged.values() if d.get("variant") == var)
        if n_div:  # its scores are a diverged model's (summary.json "diverged")
            cells[0] = f"{cells[0]} (DIVERGED: {n_div} of {n_seeds} seeds)"
        cells.insert(1, Cell(str(n_seeds), "num"))
        rows.append(cells)
    comp_rows: list[list[Cell | str]] = []  # coloured only where the verdict names a side (``named_side``)
    for c in inp.comparisons:
        cls = {"variant": "num good", "reference": "num bad"}.get(named_side(c) or "", "num")
        lo, hi, width = (c.get(k) for k in ("ci_low", "ci_high", "margin"))
        ci = f"[{num(lo)}, {num(hi)}]" if isinstance(lo, int | float) and isinstance(hi, int | float) else "–"
        comp_rows.append([str(c.get("variant")), str(c.get("metric")), Cell(str(c.get("n_pairs")), "num"),
                          Cell(num(c.get("mean_diff")), cls), Cell(ci, "num"), Cell(num(c.get("p_value"), 3), "num"),
                          Cell(num(c.get("p_holm", math.nan) if c.get("p_holm") is not None else math.nan, 3), "num"),
                          Cell(num(width, 2) if isinstance(width, int | float) else "–", "num"), verdict_words(c)])
    body = values + "<h3>Mean ± sd over seeds</h3>" + table(head, rows)
    sections = [Section("variants", "Variants", body)]
    if inp.spread:
        sections.append(spread_seed_section(inp.spread))
    if diffs:
        comp = table(["variant", "metric", "pairs", "mean difference", "95% CI", "p", "p (Holm)", "margin", "verdict"],
                     comp_rows) if comp_rows else ""
        if comp_rows:
            comp += ('<p class="note">verdict, the rule of a single run against its baselines (and of distgen compare) at the '
                     "table's Holm p: a side is named only where p (Holm) &lt; 0.05, the mean difference exceeds the margin (the runs' split-half replicate "
                     "spread of the metric, else the numerical tolerance) and the signed ranks favour the mean's side; "
                     "negligible only where the 95% interval lies within ±margin; else inconclusive, with the side the mean "
                     "favours. With one seed the test is of these two runs, not of the setting.</p>")
        if len(comp_rows) > 1:
            comp += ('<p class="note">p is per test; p (Holm) is adjusted for all the tests of this table (Holm\'s step-down): '
                     "where it is below 0.05 the chance that any of these claims is false is at most 5%. Verdicts and colours "
                     "use p (Holm); a side the test's own p alone would name is said in its verdict as a lead.</p>")
        sections.append(Section("paired", "Paired comparison against the reference", diffs + comp))
    if inp.truths_differ:
        items = _why_items(inp.truths_differ)
        sections.append(Section("truths", "Variants scored on other real data", (
            "<p>These variants were evaluated on other genes or other real cells than the reference (a setting of "
            "<code>data:</code> such as <code>hvg</code>, <code>split</code> or the data file changes what is scored), so a "
            "row of one is not the same observation as the reference's row of that label: their means are each over its own "
            "truth, and the paired comparison names no side (verdict <em>truths differ</em>), as <code>distgen compare</code> "
            f"refuses such a pair.</p><ul>{items}</ul>")))
    if inp.seeds_truths_differ:
        sections.append(Section("seeds-apart", "Seeds scored on other real data", (
            "<p>The runs of one variant differ in their training seed alone, yet these were scored on other real cells at one "
            "seed than at another (a data file replaced between two invocations of this sweep): their mean and sd over seeds "
            "mix two data sets, and each seed's paired difference is over the data of that seed. Sweep into a new "
            f"<code>--out</code> to score every run on one version of the data.</p><ul>{_why_items(inp.seeds_truths_differ)}</ul>")))
    if inp.tables_edited:
        items = _why_items(inp.tables_edited)
        sections.append(Section("edited", "Tables edited after their evaluation", (
            "<p>These runs' <code>eval/metrics.csv</code> no longer hold what their evaluation wrote (their "
            "<code>summary.json</code> records each row's numbers and each metric's mean): the sweep aggregated the tables as "
            "they are now. Remove a run's folder and run the sweep again to redo it. An entry <code>results.csv</code> is the "
            "sweep's own table, checked against the row fingerprints its <code>summary.json</code> records: this page draws "
            f"it as it is now.</p><ul>{items}</ul>")))
    uneven = coverage_notes(inp.rows, inp.variants, inp.reference, inp.metrics)
    if uneven:
        sections.append(Section("uneven", "Conditions scored on one side only", (
            "<p>Scored on one side only: the other side's value is NaN (too few cells, a degenerate denominator) or the "
            "other side has no row of the condition (its runs held out other conditions); each line counts both. The means "
            "of the table are over each "
            "variant's own scored conditions, the paired comparison over those both scored. A variant NaN where it would "
            "do worst has a better mean without being better, and even the paired comparison favours it (which pairs are "
            "left out depends on its own values: a variant equal to the reference, NaN on its worst 30%, was named better "
            "in 9.5% of simulated comparisons instead of about 2.5%; docs/report.md, \"Sweep page\"). Read its verdict "
            "with the conditions it lacks.</p><ul>"
            + "".join(f"<li>{escape(line)}</li>" for line in uneven) + "</ul>")))
    if inp.identical:
        items = "".join(f"<li><code>{escape(v)}</code> = <code>{escape(o)}</code></li>" for v, o in inp.identical.items())
        sections.append(Section("identical", "Variants without effect", (
            f"<p>{escape(WITHOUT_EFFECT)} Their differences above are not evidence about the setting.</p><ul>{items}</ul>")))
    if inp.diverged:
        items = "".join(f"<li><code>{escape(str(d.get('variant')))}</code>, seed {escape(str(d.get('seed')))}: "
                        + (f"generation: {escape(str(d['generation']))}" if "generation" in d else  # sampling left the data's range
                           f"the training loss exploded at step {escape(str(d.get('step')))} to {num(d.get('loss'))} (first step "
                           f"{num(d.get('first_loss'))})") + "</li>"
                        for d in inp.diverged.values())
        sections.append(Section("diverged", "Diverged runs", (
            "<p>Their training loss exploded (more than 1,000 times its first step's) but stayed finite, or their generated cells "
            "left the range of log-normalised expression, so they finished; their "
            f"scores above are a diverged model's.</p><ul>{items}</ul>")))
    if inp.failed:
        sections.append(Section("failed", "Failed runs", "<ul>" + "".join(
            f"<li><code>{escape(f)}</code>" + (f": {escape(inp.failures[f])}" if f in inp.failures else "") + "</li>"
            for f in inp.failed) + "</ul>"))
    seeds = {int(r["seed"]) for r in inp.rows}
    lines = [f"{counted(len(inp.variants), 'variant')} · {counted(len(seeds), 'seed')} · reference <code>{escape(inp.reference)}</code> · "
             f"written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"]
    if inp.identical:
        n = len(inp.identical)
        lines.append(f"<strong>{counted(n, 'variant')} gave another's results</strong> (the setting had no "
                     "effect): see <a href=\"#identical\">Variants without effect</a>")
    if shown:
        lines.append(f"{counted(len(shown), 'label')} {'holds' if len(shown) == 1 else 'hold'} characters no installed font draws: the figures write those "
                     'characters as escapes (see <a href="#figure-labels">labels in figures</a>)')
        sections.append(Section("figure-labels", "Labels in figures", labels_section(shown)))
    return page(inp.title, lines, sections)


def spread_seed_section(spread: Mapping[str, Mapping[str, Any]]) -> Section:
    """The page's "Spread across batches (over seeds)": per variant the model's spread scores, mean ± sd over seeds."""
    from distgen.evaluation.spread import SPREAD_METRICS, distinguishable_counts, seeds_cell, seeds_count

    rows: list[list[Cell | str]] = [
        [var, Cell(seeds_count(v), "num"), *[Cell(seeds_cell(v, m, "±"), "num") for m in SPREAD_METRICS], distinguishable_counts(v)]
        for var, v in spread.items()]
    return Section("spread", "Spread across batches (over seeds)", (
        "<p>Each run's spread scores of the model (its evaluation's mean over the (condition, context) groups with several "
        "real batches), mean ± sd over seeds. spread_ratio: 1 = as spread as the real batches, 0 = one population for all; "
        "population_mmd2: lower is better; replicate_coverage: higher is better. distinguishable: groups whose real batches "
        "differ beyond noise (permutation test at 0.05) of those scored, per seed. seeds: “n of N” when only n of the "
        "variant's N runs scored the spread (the others are left out). Not tested between variants: each "
        "run's report has its baselines and split-half.</p>"
        + table(["variant", "seeds", *SPREAD_METRICS, "distinguishable"], rows)))


def write_sweep_report(inp: SweepInputs, path: str | Path) -> Path:
    """Write the sweep page (e.g. ``SWEEP/report.html``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_sweep(inp))
    return path


def load_sweep_dir(sweep_dir: str | Path, metrics: Sequence[str] | None = None) -> SweepInputs:
    """A sweep folder's ``results.csv`` and ``summary.json`` (and each finished run's ``eval/summary.json``) as ``SweepInputs``."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "results.csv").is_file() or not (sweep_dir / "summary.json").is_file():
        lacks = " and ".join(f for f in ("results.csv", "summary.json") if not (sweep_dir / f).is_file())
        if (sweep_dir / "sweep.yaml").is_file():  # was read as an evaluation folder: "write one with distgen evaluate"
            raise FileNotFoundError(
                f"{sweep_dir} is a sweep folder without its {lacks} (the sweep was interrupted, none of its runs finished, or "
                "the file was removed): run the same distgen sweep command again on it, which reuses its finished runs and "
                "writes them")
        raise FileNotFoundError(f"{sweep_dir} is not a finished sweep folder (results.csv and summary.json are written by distgen sweep)")
    text_rows = read_rows(sweep_dir / "results.csv", ("variant", "seed"))  # a damaged table is refused naming it
    rows = read_table_csv(sweep_dir / "results.csv")  # variant and perturbation labels as written (``001`` is not 1)
    summary = check_summary(read_json(sweep_dir / "summary.json"), sweep_dir / "summary.json")
    edited = results_table_note(sweep_dir / "results.csv", text_rows, summary)
    if not isinstance(summary.get("variants"), list) or "reference" not in summary:
        raise ValueError(f"{sweep_dir / 'summary.json'} lacks 'variants' or 'reference': it is not the summary distgen sweep "
                         "writes; run distgen sweep again on the folder (finished runs are reused)")
    shown = list(metrics or dict.fromkeys(str(c["metric"]) for c in summary.get("comparisons", [])))
    if not shown:
        shown = [k for k in rows[0] if k not in ("variant", "seed", "perturbation") and metric_info(k).higher_is_better is not None][:5] if rows else []
    return SweepInputs(rows=rows, variants=list(summary["variants"]), reference=str(summary["reference"]), metrics=shown,
                       comparisons=list(summary.get("comparisons", [])), references=run_references(sweep_dir / "runs", shown),
                       failed=list(summary.get("failed", [])),
                       identical={str(k): str(v) for k, v in (summary.get("identical") or {}).items()},
                       failures={str(k): str(v) for k, v in (summary.get("failures") or {}).items()},
                       diverged={str(k): v for k, v in (summary.get("diverged") or {}).items() if isinstance(v, Mapping)},
                       truths_differ={str(k): str(v) for k, v in (summary.get("truths_differ") or {}).items()},
                       seeds_truths_differ={str(k): str(v) for k, v in (summary.get("seeds_truths_differ") or {}).items()},
                       spread={str(k): v for k, v in (summary.get("spread") or {}).items() if isinstance(v, Mapping)},
                       tables_edited={**({"results.csv": edited} if edited else {}),
                                      **{str(k): str(v) for k, v in (summary.get("tables_edited") or {}).items()}})


def _shown_key(label: str) -> str:
    """A ``results.csv`` row label (``row_key``: the JSON list of variant, seed, perturbation) as ``variant/seed/perturbation``."""
    try:
        return "/".join(json.loads(label))
    except (ValueError, TypeError):
        return label


def _why_items(named: Mapping[str, str]) -> str:
    """``<li>`` items of a page section that names things and why (variants whose truths differ, tables edited)."""
    return "".join(f"<li><code>{escape(k)}</code>: {escape(why)}</li>" for k, why in named.items())


def results_table_note(path: Path, rows: list[dict[str, str]], summary: Mapping[str, Any]) -> str | None:
    """What a sweep's ``results.csv`` (``rows`` as text) changed since the sweep wrote it, against the row fingerprints its
    ``summary.json`` records (``ROW_FINGERPRINTS``, keyed by variant, seed and perturbation; ``compare.row_changes``):
    ``MismatchedEvaluations`` where rows hold the values of other (variant, seed, perturbation) keys (a sort of one column),
    a note naming the rows edited, removed or added, None when none (or a sweep from before the fingerprints)."""
    from distgen.evaluation.compare import MismatchedEvaluations, refuse_moved_rows, removed_columns, row_changes

    found = summary.get(ROW_FINGERPRINTS)
    if not isinstance(found, dict) or not isinstance(found.get("rows"), dict) or not rows:
        return None
    named = found.get("keys")
    keys = [str(k) for k in named] if isinstance(named, list) else list(RESULT_KEYS)
    if any(k not in rows[0] for k in keys):
        return None
    gone = removed_columns(rows, dict(summary))  # row_changes reads them as empty (text adds nothing to a fingerprint)
    try:
        edited = [_shown_key(k) for k in refuse_moved_rows(path, rows, dict(summary))]
    except MismatchedEvaluations:  # said again with the sweep's keys and fix (the evaluation's names another command)
        moved, _ = row_changes(rows, dict(summary))
        shown = listing(f"{_shown_key(a)!r} holds those of {_shown_key(b)!r}" for a, b in moved[:3])
        raise MismatchedEvaluations(
            f"{path}: {counted(len(moved), 'row')} of {len(rows)} hold the values the sweep wrote for another "
            f"variant/seed/perturbation ({shown}; summary.json row_fingerprints): a column was sorted or edited apart from the "
            "values, so a row's numbers are not its label's; run distgen sweep again on the folder (finished runs are "
            "reused) to write the table again, or restore the file") from None
    labels = [row_key(r, keys) for r in rows]
    present = set(labels)
    removed = [_shown_key(k) for k in found["rows"] if k not in present]
    added = [_shown_key(k) for k in present if k not in found["rows"]]
    # a row pasted twice matches its fingerprint and was averaged twice without a word (2026-12-07 review)
    repeated = [_shown_key(k) for k, n in Counter(labels).items() if n > 1]
    parts = [f"{counted(len(v), 'row')} {what} ({listing([repr(x) for x in v[:3]])})"
             for v, what in ((edited, "hold other values than the sweep wrote"), (removed, "removed"), (added, "added"),
                             (repeated, "on more than one line"))
             if v]
    if gone:
        parts.append(f"{counted(len(gone), 'column')} removed ({listing([repr(c) for c in gone[:3]])})")
    if not parts:
        return None
    note = (f"{path}: {'; '.join(parts)} (summary.json row_fingerprints, by variant/seed/perturbation): the table was "
            "changed after the sweep wrote it; this page draws it as it is now; run distgen sweep again on the folder "
            "(finished runs are reused) to write it as scored")
    warn(note)
    return note


def run_references(runs_dir: Path, metrics: Sequence[str]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{baseline or "ceiling": {metric: (mean, min, max) over runs}}`` from each run's ``eval/summary.json``."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(runs_dir.glob("*/eval/summary.json")):
        rows = json.loads(path.read_text(encoding="utf-8")).get("metrics", {})
        for m in metrics:
            row = rows.get(m) or {}
            for name, v in (row.get("baselines") or {}).items():
                if isinstance(v, int | float):
                    acc[name][m].append(float(v))
            if isinstance(row.get("ceiling"), int | float):
                acc["ceiling"][m].append(float(row["ceiling"]))
    means = {name: {m: (float(np.mean(v)), float(np.min(v)), float(np.max(v))) for m, v in by.items()} for name, by in acc.items()}
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for name, vals in means.items():  # baselines with the same numbers everywhere are drawn once
        same = next((k for k in out if k != "ceiling" and name != "ceiling" and out[k] == vals), None)
        if same is None:
            out[name] = vals
        else:
            out[f"{same} (= {name})" if "(=" not in same else same[:-1] + f", {name})"] = out.pop(same)
    return out
