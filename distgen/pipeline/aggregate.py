"""Aggregate a sweep: per-run per-perturbation metrics -> results table, mean +/- sd, paired tests."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from distgen import markdown as md
from distgen.evaluation.intervals import holm, signed_rank
from distgen.evaluation.report import read_table_csv
from distgen.evaluation.uncertainty import numerical_tolerance, sweep_units
from distgen.train.state_io import atomic_write_text

#: Metrics shown in summaries unless others are asked for.
SUMMARY_METRICS = ("mse", "pearson_delta", "discrimination_score_l1", "overlap_at_N", "edistance")


@dataclass
class Comparison:
    """Paired comparison of a variant against the reference on one metric (``paired_comparison``)."""

    variant: str
    metric: str
    n_pairs: int  # (seed, perturbation) pairs defined on both sides
    mean_diff: float
    statistic: float
    p_value: float
    better: str  # "variant", "reference" or "tie" (by mean difference and the metric's direction, whatever p is); "no direction"
    # for a diagnostic; "one pair: no test" or "no shared pairs" when fewer than 2 (seed, perturbation) pairs are defined on both
    test: str = ""  # "t over seeds" or "Wilcoxon over perturbations" (``sweep_units``)
    n_units: int = 0  # the seeds or the perturbations the test is over
    p_holm: float = math.nan  # p adjusted (Holm) for every test of the sweep's summary table (``summary_markdown``)


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a per-perturbation ``metrics.csv``; numeric columns parsed (empty -> NaN), labels kept as text."""
    return read_table_csv(path)


def metric_direction(name: str) -> bool | None:
    """True when higher is better for a registered metric, False when lower is; None for a diagnostic (no better value)
    or a name the registry does not hold (its direction is unknown: no side of a difference is called better)."""
    from distgen.registry import registry

    try:
        caps = registry("metrics").get(name).capabilities
    except KeyError:
        return None
    hib = getattr(caps, "higher_is_better", None)
    return None if getattr(caps, "diagnostic", False) or hib is None else bool(hib)


def _arrow(name: str) -> str:
    """``(up)``, ``(down)`` or ``(no direction)``: the header mark of a metric in ``summary.md``."""
    return {True: "(up)", False: "(down)", None: "(no direction)"}[metric_direction(name)]


def seed_means(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, dict[int, float]]:
    """``{variant: {seed: mean over perturbations}}`` of one metric (NaNs skipped)."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = r.get(metric, math.nan)
        if isinstance(v, float) and not math.isnan(v):
            acc[r["variant"]][int(r["seed"])].append(v)
    return {var: {s: float(np.mean(vs)) for s, vs in by_seed.items()} for var, by_seed in acc.items()}


def paired_comparison(rows: Sequence[dict[str, Any]], variant: str, reference: str, metric: str) -> Comparison:
    """``variant - reference`` tested over seeds, or over perturbations with one seed (``sweep_units``).

    Over seeds: a one-sample t-test of the per-seed mean differences (each a mean over many perturbations,
    so close to normal; a Wilcoxon test over 3-5 seeds could never reach p < 0.05). Over perturbations: the
    two-sided Wilcoxon signed-rank test. ``mean_diff``: the mean of the tested differences.
    """
    from scipy.stats import ttest_1samp

    unit, values, n_pairs = sweep_units(rows, variant, reference, metric)
    diffs = np.array(values)
    if n_pairs < 2 or diffs.size == 0:  # nothing to test; a single difference is not a tie
        return Comparison(variant, metric, n_pairs, float(diffs.mean()) if diffs.size else math.nan, math.nan, math.nan,
                          "no shared pairs" if not n_pairs else "one pair: no test")
    test = "t over seeds" if unit == "seed" else "Wilcoxon over perturbations"
    means = seed_means(rows, metric)
    size = [float(np.mean(list(means.get(v, {}).values()) or [math.nan])) for v in (variant, reference)]
    # a tie: every difference below what the inputs resolve (np.allclose's absolute 1e-8 called a metric of size 1e-8
    # tied however the variants differed)
    if np.all(np.abs(diffs) <= numerical_tolerance(*size)):
        return Comparison(variant, metric, n_pairs, float(diffs.mean()), math.nan, math.nan, "tie", test, diffs.size)
    if unit == "seed":
        res = ttest_1samp(diffs, 0.0)
    elif diffs.size < 2:
        res = None
    else:
        res = signed_rank(diffs)  # zeros dropped first: the same p under every scipy
    higher = metric_direction(metric)
    md = float(diffs.mean())
    better = "tie" if md == 0 else ("variant" if (md > 0) == higher else "reference")
    if higher is None:  # a count or a property of the real data (diagnostic), or an unknown metric: no value is better
        better = "no direction"
    stat, p = (math.nan, math.nan) if res is None else (float(res.statistic), float(res.pvalue))
    return Comparison(variant, metric, n_pairs, md, stat, p, better, test, diffs.size)


def identical_variants(rows: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str]) -> dict[str, str]:
    """``{variant: earlier variant}`` for each variant whose every (seed, perturbation, metric) value equals an earlier one's.

    Exactly equal tables mean the two runs generated the same cells: whatever setting tells the variants apart
    had no effect (a parameter the model never reads, or two settings that coincide on this data, e.g.
    ``data.matcher`` ``random`` and ``same_batch`` on data with one context and one batch).
    """

    def table(name: str) -> dict[tuple[int, str, str], float]:
        return {(int(r["seed"]), str(r["perturbation"]), m): r[m] for r in rows if r["variant"] == name for m in metrics if m in r}

    def same(a: dict[tuple[int, str, str], float], b: dict[tuple[int, str, str], float]) -> bool:
        return bool(a) and a.keys() == b.keys() and all(
            a[k] == b[k] or (isinstance(a[k], float) and isinstance(b[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a
        )

    tables = {v: table(v) for v in variants}
    out: dict[str, str] = {}
    for i, v in enumerate(variants):
        for earlier in variants[:i]:
            if earlier not in out and same(tables[v], tables[earlier]):
                out[v] = earlier
                break
    return out


def fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """All (variant, seed, perturbation) rows with every metric column, as CSV (replaced whole: never half-written)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, text.getvalue())


#: What ``summary.md`` says of the numbers it reports: they are test-split scores, not a selection criterion.
SELECTION_NOTE = ("Every run is scored on its test split: these numbers report an ablation; picking a variant by them is model "
                  "selection on the test set (select on validation, docs/data.md: the leakage audit).")


def summary_markdown(
    rows: Sequence[dict[str, Any]], variants: Sequence[str], reference: str, metrics: Sequence[str], failed: Sequence[str] = (),
    failures: Mapping[str, str] | None = None, diverged: Sequence[tuple[str, int, str]] = (),
) -> tuple[str, list[Comparison]]:
    """The sweep's ``summary.md`` text and the comparisons it reports.

    ``failures`` gives a failed run's error; ``diverged`` the (variant, seed, what happened) of finished runs whose training
    loss exploded: their scores stay in the tables (a setting that diverges is a result) and their variant is marked.
    """
    failures = failures or {}
    n_diverged = {v: sum(1 for d in diverged if d[0] == v) for v in variants}
    lines = ["# Sweep summary", "", f"Reference variant: {md.code(reference)}. Values: mean +/- sd over seeds of the per-run mean over perturbations.",
             "", f"{SELECTION_NOTE}", ""]
    lines.append("| variant | seeds | " + " | ".join(f"{md.cell(m)} {_arrow(m)}" for m in metrics) + " |")
    lines.append("|---|---|" + "---|" * len(metrics))
    for var in variants:
        cells, n_seeds = [], 0
        for m in metrics:
            means = list(seed_means(rows, m).get(var, {}).values())
            n_seeds = max(n_seeds, len(means))
            if len(means) > 1:
                cells.append(f"{fmt(float(np.mean(means)))} +/- {fmt(float(np.std(means, ddof=1)), 2)}")
            else:  # one seed has no spread to show
                cells.append(f"{fmt(means[0])} (1 seed: no sd)" if means else "- (no value)")
        mark = f" (DIVERGED: {n_diverged[var]} of {n_seeds} seeds)" if n_diverged.get(var) else ""
        lines.append(f"| {md.cell(var)}{mark} | {n_seeds} | " + " | ".join(cells) + " |")
    comparisons = [paired_comparison(rows, v, reference, m) for v in variants if v != reference for m in metrics]
    for c, adjusted in zip(comparisons, holm([c.p_value for c in comparisons])):
        c.p_holm = adjusted
    if comparisons:
        lines += ["", "## Paired comparison against the reference",
                  "", "With two or more seeds the unit is the seed: a t-test of the per-seed mean differences (a run's training noise "
                  "moves all its perturbations together, so its perturbations are not independent pairs); with one seed, the "
                  "Wilcoxon signed-rank test over perturbations (these two runs only). p is per metric and variant (p (Holm) below "
                  "adjusts it for their number). mean_diff = variant - reference (mean of the tested differences); pairs: "
                  "(seed, perturbation) pairs; better: the side the mean difference favours, marked (not significant) where "
                  "p >= 0.05, as on the sweep page. p (Holm): p adjusted for all the tests of this table (Holm's step-down): "
                  "where it is below 0.05 the chance that any of these claims is a false one is at most 5%.", "",
                  "| variant | metric | test | pairs | mean_diff | statistic | p | p (Holm) | better |", "|---|---|---|---|---|---|---|---|---|"]
        for c in comparisons:
            said = c.better + (" (not significant)" if c.better in ("variant", "reference") and not c.p_value < 0.05 else "")
            test = f"{c.test} ({c.n_units})" if c.test else "-"
            lines.append(f"| {md.cell(c.variant)} | {md.cell(c.metric)} | {test} | {c.n_pairs} | {fmt(c.mean_diff)} | {fmt(c.statistic)} | "
                         f"{fmt(c.p_value, 3)} | {fmt(c.p_holm, 3)} | {said} |")
        tested = [c for c in comparisons if not math.isnan(c.p_value)]
        named = [c for c in tested if c.p_value < 0.05 and c.better in ("variant", "reference")]
        if len(tested) > 1 and named:
            kept = sum(c.p_holm < 0.05 for c in named)
            lines += ["", f"p < 0.05 in {len(named)} of the {len(tested)} tests; after Holm's adjustment for the {len(tested)} tests, "
                      f"in {kept}. Were all the variants equally good, p < 0.05 somewhere would come in about "
                      f"{1 - 0.95 ** len(tested):.0%} of sweeps with independent tests (at most {min(1.0, 0.05 * len(tested)):.0%} "
                      "however they depend)."]
    same = identical_variants(rows, variants, metrics)
    if same:
        lines += ["", "## Variants without effect", "",
                  "These variants gave exactly the same value as another for every seed, perturbation and metric: the runs "
                  "generated the same cells, so the setting that tells them apart had no effect (a parameter the model does "
                  "not read, or two settings that coincide on this data).", ""]
        lines += [f"- {md.code(v)} = {md.code(other)}" for v, other in same.items()]
    if diverged:
        lines += ["", "## Diverged runs", "", "Their training loss exploded (more than 1,000 times its first step's) but stayed finite, so "
                  "they finished; their scores above are a diverged model's (the run's eval/summary.md has the details).", ""]
        lines += [f"- {md.code(v)}, seed {s}: {md.inline(what)}" for v, s, what in diverged]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {md.inline(f, True)}" + (f": {md.inline(failures[f])}" if f in failures else "")
                                               for f in failed]
    return "\n".join(lines) + "\n", comparisons


def plot_summary(rows: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    """Bar chart per metric: mean over seeds with sd error bars, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False}):  # a variant label with $...$ is text, not a formula
        _plot_summary(plt, rows, variants, metrics, path)


def _plot_summary(plt: Any, rows: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        sm = seed_means(rows, m)
        means = [np.mean(list(sm.get(v, {}).values()) or [np.nan]) for v in variants]
        sds = [np.std(list(sm.get(v, {}).values()), ddof=1) if len(sm.get(v, {})) > 1 else 0.0 for v in variants]
        ax.bar(range(len(variants)), means, yerr=sds, capsize=3, color="#4C72B0")
        ax.set_xticks(range(len(variants)), variants, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{m} {_arrow(m)}\nmean ± sd over seeds", fontsize=8)  # sd of the seeds, not an interval of the mean
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
