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
from distgen.evaluation.intervals import LEVEL, difference_bounds, holm, mean_interval, rank_direction, signed_rank
from distgen.evaluation.report import RESULT_KEYS, read_table_csv, table_row_fingerprints
from distgen.evaluation.uncertainty import (
    NUMERIC_ATOL,
    SAME_RESULTS_RTOL,
    WITHOUT_EFFECT,
    margin,
    metric_bounds,
    numerical_tolerance,
    sweep_units,
    verdict,
)
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
    ci_low: float = math.nan  # 95% interval of mean_diff over the tested units (``intervals.mean_interval``: t over seeds,
    ci_high: float = math.nan  # the studentized bootstrap over perturbations), the interval the sweep page draws
    margin: float = math.nan  # below it a difference is too small to matter (``uncertainty.margin``)
    margin_source: str = ""  # "replicate spread" (the runs' eval/summary.json ceiling_band.std) or "numerical tolerance"
    rank_direction: int = 0  # the side the signed ranks favour (Wilcoxon over perturbations; 0 over seeds: a t-test has the mean's)
    #: ``uncertainty.verdict``, the single-run rule: "variant" / "reference" (p < 0.05, |mean_diff| > margin, the ranks on the
    #: mean's side), "negligible" (the interval inside +-margin), "inconclusive"; else ``better``'s "tie", "no direction",
    #: "one pair: no test", "no shared pairs". In a sweep's table (``summary_markdown``) the p it reads is ``p_holm``.
    verdict: str = ""
    #: the verdict at this test's own p (``p_value``), as if it were the only one: where it names a side and ``verdict`` does
    #: not, the side is a lead that Holm's adjustment for the table does not keep (``report.sweep.verdict_words`` says so)
    verdict_alone: str = ""
    #: over seeds: the per-seed differences are one value (a constant shift, no seed-to-seed spread): p is 0 and t undefined
    #: (NaN: a division by zero spread; JSON has no inf), not scipy's t-test, which warned "Precision loss ... nearly
    #: identical" on such data and gave t of 1e16
    constant_shift: bool = False


def comparison_verdict(c: Comparison, p: float, level: float = LEVEL) -> str:
    """``uncertainty.verdict`` of a tested comparison at the p-value ``p`` (its own, or Holm's over a table) in the sweep's
    words: ``variant`` / ``reference`` / ``negligible`` / ``inconclusive`` / ``no direction``."""
    test = {"n": c.n_units, "mean_difference": c.mean_diff, "wilcoxon_p": p, "ci": (c.ci_low, c.ci_high),
            "rank_direction": c.rank_direction}
    said, _ = verdict(test, metric_direction(c.metric), c.margin, 1.0 - level)
    return {"a": "variant", "b": "reference"}.get(said, said)


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


def seed_means(rows: Sequence[dict[str, Any]], metric: str, absolute: bool = False) -> dict[str, dict[int, float]]:
    """``{variant: {seed: mean over perturbations}}`` of one metric (NaNs skipped); ``absolute``: of ``|value|`` (the size
    the numerical tolerance scales with, ``uncertainty.magnitude``)."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v = r.get(metric, math.nan)
        if isinstance(v, float) and not math.isnan(v):
            acc[r["variant"]][int(r["seed"])].append(v)
    return {var: {s: float(np.mean(np.abs(vs) if absolute else vs)) for s, vs in by_seed.items()} for var, by_seed in acc.items()}


def paired_comparison(rows: Sequence[dict[str, Any]], variant: str, reference: str, metric: str,
                      noise: float = math.nan, level: float = LEVEL) -> Comparison:
    """``variant - reference`` tested over seeds, or over perturbations with one seed (``sweep_units``), with a verdict.

    Over seeds: a one-sample t-test of the per-seed mean differences (each a mean over many perturbations,
    so close to normal; a Wilcoxon test over 3-5 seeds could never reach p < 0.05). Over perturbations: the
    two-sided Wilcoxon signed-rank test (zero differences, ties, left out). ``mean_diff``: the mean of the tested
    differences; its interval over the same units (``intervals.mean_interval``). ``noise``: the split-half replicate's
    spread of the metric (the runs' ``ceiling_band.std``), the margin below which a difference is negligible
    (``uncertainty.margin``: at least the numerical tolerance). ``verdict``: ``uncertainty.verdict``, the rule of a single
    run against its baselines and of ``distgen compare``.
    """
    from scipy.stats import ttest_1samp

    unit, values, n_pairs = sweep_units(rows, variant, reference, metric)
    diffs = np.array(values)
    if n_pairs < 2 or diffs.size == 0:  # nothing to test; a single difference is not a tie
        said = "no shared pairs" if not n_pairs else "one pair: no test"
        return Comparison(variant, metric, n_pairs, float(diffs.mean()) if diffs.size else math.nan, math.nan, math.nan,
                          said, verdict=said)
    test = "t over seeds" if unit == "seed" else "Wilcoxon over perturbations"
    means = seed_means(rows, metric)
    size = [float(np.mean(list(m.get(v, {}).values()) or [math.nan])) for m in (means, seed_means(rows, metric, absolute=True))
            for v in (variant, reference)]  # the means and their magnitudes: a two-signed metric's means can cancel
    width, source = margin(size, noise)
    # a tie: every difference below what the inputs resolve (np.allclose's absolute 1e-8 called a metric of size 1e-8
    # tied however the variants differed)
    if np.all(np.abs(diffs) <= numerical_tolerance(*size)):
        d = float(diffs.mean())
        return Comparison(variant, metric, n_pairs, d, math.nan, math.nan, "tie", test, diffs.size, ci_low=d, ci_high=d,
                          margin=width, margin_source=source, verdict="tie")
    direction = 0
    flat = unit == "seed" and float(np.ptp(diffs)) <= numerical_tolerance(*size)  # the same difference at every seed
    if flat:  # no spread over seeds: p 0, t undefined (summary_markdown says so once, in the sweep's words)
        res = None
    elif unit == "seed":
        res = ttest_1samp(diffs, 0.0)
    elif diffs.size < 2:
        res = None
    else:
        res = signed_rank(diffs)  # zeros dropped first: the same p under every scipy
        direction = rank_direction(diffs)
    higher = metric_direction(metric)
    md = float(diffs.mean())
    better = "tie" if md == 0 else ("variant" if (md > 0) == higher else "reference")
    if higher is None:  # a count or a property of the real data (diagnostic), or an unknown metric: no value is better
        better = "no direction"
    stat, p = (math.nan, math.nan) if res is None else (float(res.statistic), float(res.pvalue))
    if flat:
        stat, p = math.nan, 0.0
    lo, hi = mean_interval(diffs, unit, level, bounds=difference_bounds(metric_bounds(metric)))
    c = Comparison(variant, metric, n_pairs, md, stat, p, better, test, diffs.size, ci_low=lo, ci_high=hi, margin=width,
                   margin_source=source, rank_direction=direction, constant_shift=flat)
    c.verdict = c.verdict_alone = comparison_verdict(c, p, level)
    return c


def identical_variants(rows: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str]) -> dict[str, str]:
    """``{variant: earlier variant}`` for each variant whose every (seed, perturbation, metric) value equals an earlier one's.

    Equal tables mean whatever setting tells the variants apart had no effect on the results (a parameter the model never
    reads, or two settings that coincide on this data, e.g. ``data.matcher`` ``random`` and
    ``same_batch`` on data with one context and one batch). Numbers are equal within ``SAME_RESULTS_RTOL`` of their
    size (its own, or its metric's median ``|value|`` for a value near 0), so that runs on a GPU, which differ in their
    last digits, are compared as the CPU's are; NaN equals NaN, anything else must be equal as written. Equal results
    are what is checked, not that the runs generated the same cells, and what summary.md says (``uncertainty.WITHOUT_EFFECT``).
    """

    def table(name: str) -> dict[tuple[int, str, str], Any]:
        return {(int(r["seed"]), str(r["perturbation"]), m): r[m] for r in rows if r["variant"] == name for m in metrics if m in r}

    def number(x: Any) -> float | None:
        return float(x) if isinstance(x, int | float | np.floating | np.integer) and not isinstance(x, bool) else None

    def size(*tables: dict[tuple[int, str, str], Any]) -> dict[str, float]:
        """Each metric's median ``|value|`` over the finite values of ``tables``: the size a value near 0 is rounded at
        (the mean was one large value's: a perturbation 1000 times the others' hid a 0.1% change of every other)."""
        seen: dict[str, list[float]] = defaultdict(list)
        for t in tables:
            for (_, _, m), x in t.items():
                if (f := number(x)) is not None and math.isfinite(f):
                    seen[m].append(abs(f))
        return {m: float(np.median(v)) for m, v in seen.items()}

    def same(a: dict[tuple[int, str, str], Any], b: dict[tuple[int, str, str], Any]) -> bool:
        if not a or a.keys() != b.keys():
            return False
        scale = size(a, b)
        for k, x in a.items():
            y = b[k]
            fx, fy = number(x), number(y)
            if fx is None or fy is None or not (math.isfinite(fx) and math.isfinite(fy)):
                if not (x == y or (fx is not None and fy is not None and math.isnan(fx) and math.isnan(fy))):
                    return False
            elif abs(fx - fy) > max(NUMERIC_ATOL, SAME_RESULTS_RTOL * max(scale.get(k[2], 0.0), abs(fx), abs(fy))):
                return False
        return True

    tables = {v: table(v) for v in variants}
    out: dict[str, str] = {}
    for i, v in enumerate(variants):
        for earlier in variants[:i]:
            if earlier not in out and same(tables[v], tables[earlier]):
                out[v] = earlier
                break
    return out


def inert_axes(variant_overrides: Mapping[str, Sequence[str]], identical: Mapping[str, str]) -> dict[str, list[str]]:
    """``{axis: [values]}`` for each grid axis whose values all gave the same results wherever the other settings were equal.

    ``variant_overrides`` maps each variant to its overrides (``key=value``; seeds left out), ``identical`` is
    ``identical_variants``' answer. An axis is inert when, in every group of variants that agree on every other override,
    each variant's results equal the group's first one's: none of its values changed anything (a parameter the model
    does not read in this configuration). "Variants without effect" lists the pairs; this names the setting.
    """
    root = {v: identical.get(v, v) for v in variant_overrides}
    parsed = {v: dict(x.split("=", 1) for x in ov if "=" in x) for v, ov in variant_overrides.items()}
    keys = list(dict.fromkeys(k for p in parsed.values() for k in p))
    out: dict[str, list[str]] = {}
    for key in keys:
        groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for v, p in parsed.items():
            groups.setdefault(tuple(sorted((k, x) for k, x in p.items() if k != key)), []).append(v)
        values = list(dict.fromkeys(parsed[v].get(key, "(as configured)") for v in parsed))
        varied = [g for g in groups.values() if len({parsed[v].get(key) for v in g}) > 1]
        if len(values) > 1 and varied and all(len({root[v] for v in g}) == 1 for g in varied):
            out[key] = values
    return out


def fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> dict[str, Any]:
    """All (variant, seed, perturbation) rows with every metric column, as CSV (replaced whole: never half-written).
    Returns the table's row fingerprints keyed by ``RESULT_KEYS`` (``table_row_fingerprints``), for ``summary.json``: the
    report reads ``results.csv`` and checks its rows against them (``distgen.report.sweep.results_table_note``)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, text.getvalue())
    return table_row_fingerprints(text.getvalue(), RESULT_KEYS)


#: What ``summary.md`` says of the numbers it reports: they are test-split scores, not a selection criterion.
SELECTION_NOTE = ("Every run is scored on its test split: these numbers report an ablation; picking a variant by them is model "
                  "selection on the test set (select on validation, docs/data.md: the leakage audit).")


def verdict_words(c: Mapping[str, Any]) -> str:
    """``distgen.report.sweep.verdict_words``: the words of a comparison's verdict (one wording for summary.md and the page)."""
    from distgen.report.sweep import verdict_words as words

    return words(c)


#: The verdict of a comparison whose variant was scored on other real data than the reference (``truth_mismatch``).
TRUTHS_DIFFER = "truths differ"


def truth_record(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a run's evaluation was scored on, from its ``eval/summary.json``: ``n_genes``, ``profile``, ``no_target_genes``
    and the per-condition digests of the real cells (``truth_digests``); ``{}`` without a summary."""
    if not isinstance(summary, Mapping):
        return {}
    from distgen.evaluation.compare import profile_of, recorded_truth_digests  # compare's reading of the same record

    return {"n_genes": summary.get("n_genes"), "profile": profile_of(dict(summary)), "no_target_genes": summary.get("no_target_genes"),
            "digests": recorded_truth_digests(dict(summary))}


def truth_mismatch(truths: Mapping[str, Mapping[int, Mapping[str, Any]]], variant: str, reference: str) -> str | None:
    """Why ``variant``'s runs were scored on other real data than ``reference``'s at the same seed, or None.

    ``truths``: ``{variant: {seed: truth_record}}``. Other genes (``data.hvg``, another gene list), another profile, or other
    real cells under a shared condition label (``data.split``, ``data.min_cells``, another data file: the
    ``truth_digests`` differ) make a row of the variant another observation than the reference's row of that label, as
    ``distgen compare`` refuses such a pair: a sweep paired them and named a side without a word."""
    a, b = truths.get(variant, {}), truths.get(reference, {})
    for seed in sorted(set(a) & set(b)):
        why = truths_apart(a[seed], b[seed], "the reference", f"run seed {seed}")
        if why:
            return why
    return None


def truths_apart(ta: Mapping[str, Any], tb: Mapping[str, Any], other: str, where: str) -> str | None:
    """Why a run whose ``truth_record`` is ``ta`` was scored on other real data than ``other`` (record ``tb``), or None
    (also where either record is empty: an evaluation from before they were kept); ``where`` ends each reason."""
    from distgen.evaluation.compare import other_truth_cells, scored_apart

    if not ta or not tb:
        return None
    apart = scored_apart(dict(ta), dict(tb))
    if apart is not None and apart[0] == "n_genes":
        return f"scored on {apart[1]} genes, {other} on {apart[2]} ({where})"
    if apart is not None and apart[0] == "profile":
        return f"scored under profile {apart[1]!r}, {other} under {apart[2]!r} ({where})"
    if apart is not None:
        return f"scored {'without' if apart[1] else 'with'} each perturbation's own gene, {other} " \
               f"{'without' if apart[2] else 'with'} it ({where})"
    da, db = ta.get("digests") or {}, tb.get("digests") or {}
    shared = sorted(set(da) & set(db))
    found = other_truth_cells(da, db, shared)
    if found:
        return (f"{len(found)} of {len(shared)} shared condition(s) scored on other real cells than {other}'s "
                f"({where}; e.g. {', '.join(found[:3])}: other cells, genes or control cells)")
    return None


def seeds_truth_mismatch(truths: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> dict[str, str]:
    """``{variant: why}`` for each variant whose runs were scored on other real data at one seed than at its first seed.

    The seeds of a variant differ in ``train.seed`` alone, which leaves the test cells as they are; other real cells come
    from a data file replaced between two invocations of the sweep (one extending its seeds, or re-running a failed run).
    Its mean and sd over seeds then mix two data sets: until 2026-12-07 without a word."""
    found = {}
    for variant, by_seed in truths.items():
        seeds = sorted(k for k, rec in by_seed.items() if rec)
        for seed in seeds[1:]:
            why = truths_apart(by_seed[seed], by_seed[seeds[0]], f"its run at seed {seeds[0]}", f"training seeds {seeds[0]} and {seed}")
            if why:
                found[variant] = f"its run at seed {seed} was {why}"
                break
    return found


def spread_seed_lines(spread: Mapping[str, Any]) -> list[str]:
    """The sweep's ``summary.md`` section of its runs' spread scores (``distgen.evaluation.spread.spread_over_seeds``): per
    variant the model's mean +/- sd over seeds of each run's mean over its groups; [] when no run scored them."""
    if not spread:
        return []
    from distgen.evaluation.spread import SPREAD_METRICS, distinguishable_counts, seeds_cell, seeds_count

    lines = ["", "## Spread across batches (over seeds)", "",
             "Each run's spread scores of the model (its eval/summary.json `spread`: the mean over the (condition, context) groups "
             "with several real batches), mean +/- sd over seeds. spread_ratio: 1 = as spread as the real batches, 0 = one "
             "population for all; population_mmd2: lower is better; replicate_coverage: higher is better. distinguishable: "
             "groups whose real batches differ beyond noise (permutation test at 0.05), of the groups scored, per seed. seeds: "
             "`n of N` when only n of the variant's N runs scored the spread (the others are left out). Not tested between variants (read each run's eval/summary.md for its baselines and split-half).", "",
             "| variant | seeds | " + " | ".join(SPREAD_METRICS) + " | distinguishable |", "|---|---|" + "---|" * (len(SPREAD_METRICS) + 1)]
    for var, v in spread.items():
        cells = [seeds_cell(v, m) for m in SPREAD_METRICS]
        lines.append(f"| {md.cell(var)} | {seeds_count(v)} | " + " | ".join(cells) + f" | {distinguishable_counts(v)} |")
    return lines


def summary_markdown(
    rows: Sequence[dict[str, Any]], variants: Sequence[str], reference: str, metrics: Sequence[str], failed: Sequence[str] = (),
    failures: Mapping[str, str] | None = None, diverged: Sequence[tuple[str, int, str]] = (),
    noise: Mapping[str, Mapping[str, float]] | None = None, truths: Mapping[str, Mapping[int, Mapping[str, Any]]] | None = None,
) -> tuple[str, list[Comparison]]:
    """The sweep's ``summary.md`` text and the comparisons it reports.

    ``failures`` gives a failed run's error; ``diverged`` the (variant, seed, what happened) of finished runs whose training
    loss exploded: their scores stay in the tables (a setting that diverges is a result) and their variant is marked.
    ``noise``: ``{variant: {metric: split-half replicate spread}}`` (``replicate_noise``); a comparison's margin is the larger
    of its two variants' (as ``distgen compare`` takes the larger of its two evaluations').
    ``truths``: ``{variant: {seed: truth_record}}``; a variant scored on other real data than the reference
    (``truth_mismatch``) gets the verdict ``truths differ`` on every metric, outside the Holm family, and a section saying why.
    """
    noise = noise or {}
    apart = {v: why for v in variants if v != reference and (why := truth_mismatch(truths or {}, v, reference))}
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
    comparisons = [paired_comparison(rows, v, reference, m, pair_noise(noise, v, reference, m))
                   for v in variants if v != reference for m in metrics]
    for c in comparisons:
        if c.variant in apart:  # not paired observations: no test of the table, no side named
            c.verdict = c.verdict_alone = TRUTHS_DIFFER
    family = [c for c in comparisons if c.variant not in apart]
    for c, adjusted in zip(family, holm([c.p_value for c in family])):
        c.p_holm = adjusted
        if math.isfinite(adjusted):  # the table's verdicts read Holm's p: a side named anywhere on it is a claim of the family
            c.verdict = comparison_verdict(c, adjusted)
    if comparisons:
        lines += ["", "## Paired comparison against the reference",
                  "", "With two or more seeds the unit is the seed: a t-test of the per-seed mean differences (a run's training noise "
                  "moves all its perturbations together, so its perturbations are not independent pairs; each seed's difference "
                  "is a mean over the perturbations both runs scored, NaNs left out). With one seed, the Wilcoxon signed-rank test "
                  "over perturbations: a test of these two runs, not of the setting (training noise alone can tell two runs "
                  "apart). p is per metric and variant; p (Holm) adjusts it for all the tests of this table (Holm's step-down: "
                  "where it is below 0.05 the chance that any of these claims is a false one is at most 5%). mean_diff = variant "
                  "- reference (mean of the tested differences), with its 95% interval over the same units; pairs: "
                  "(seed, perturbation) pairs. verdict (the rule of a single run against its baselines and of distgen compare, "
                  "at the table's Holm p): variant or reference only where p (Holm) < 0.05, |mean_diff| > margin and the signed "
                  "ranks favour the mean's side, so that the chance of any false side named in this table is at most 5%; "
                  "negligible where the interval lies within +-margin (shown, not estimated; per comparison); else inconclusive, "
                  "with the side the mean favours. margin: the runs' split-half replicate spread of the metric (ceiling_band.std; "
                  "the larger of the two variants'), else the numerical tolerance.", "",
                  "| variant | metric | test | pairs | mean_diff | 95% CI | statistic | p | p (Holm) | margin | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in comparisons:
            test = f"{c.test} ({c.n_units})" if c.test else "-"
            ci = f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]" if c.test else "-"
            lines.append(f"| {md.cell(c.variant)} | {md.cell(c.metric)} | {test} | {c.n_pairs} | {fmt(c.mean_diff)} | {ci} | "
                         f"{fmt(c.statistic)} | {fmt(c.p_value, 3)} | {fmt(c.p_holm, 3)} | {fmt(c.margin, 2) if c.test else '-'} | "
                         f"{md.cell(verdict_words(c.__dict__))} |")
        tested = [c for c in family if not math.isnan(c.p_value)]
        named = [c for c in tested if c.verdict in ("variant", "reference")]
        leads = [c for c in tested if c.verdict_alone in ("variant", "reference") and c not in named]
        if len(tested) > 1 and (named or leads):
            lines += ["", f"A side is named in {len(named)} of the {len(tested)} tests (at Holm's p)" + (
                f"; {len(leads)} more would be at their own p < 0.05 alone ("
                + ", ".join(f"{md.code(c.variant)} {md.cell(c.metric)}" for c in leads) + "): leads, not findings" if leads else "")
                + f". Were all the variants equally good, p < 0.05 somewhere in the table would come in about "
                f"{1 - 0.95 ** len(tested):.0%} of sweeps with independent tests (at most {min(1.0, 0.05 * len(tested)):.0%} "
                "however they depend); at Holm's p, in at most 5%."]
        shifted = [c for c in comparisons if c.constant_shift]
        if shifted:
            lines += ["", "The same difference at every seed (no spread over seeds, a constant shift): "
                      + ", ".join(f"{md.code(c.variant)} {md.cell(c.metric)} ({fmt(c.mean_diff)} at each of {c.n_units} seeds)"
                                  for c in shifted)
                      + ". Its t divides by a spread of zero (no statistic shown) and p is 0 by arithmetic: the seeds agree on "
                      "the shift exactly, which says nothing of its size beyond these runs (a setting that changes every output "
                      "by one amount, or runs that share their randomness)."]
        if any(c.test == "Wilcoxon over perturbations" and c.verdict in ("variant", "reference") for c in comparisons):
            lines += ["", "With one seed a named side says these two runs differ; whether the setting does needs seeds: two "
                      "equally good variants whose runs each carry a training offset of 0.3 x the per-perturbation noise were told "
                      "apart in 22.5% of one-seed tests at 20 perturbations at each test's own p, 10.4% at Holm's over a table of 6 "
                      "(docs/report.md, \"Sweep page\")."]
    if apart:
        lines += ["", "## Variants scored on other real data", "",
                  "These variants were evaluated on other genes or other real cells than the reference (a setting of `data:` such "
                  "as `hvg`, `split` or the data file changes what is scored), so a row of one is not the same observation as the "
                  "reference's row of that label: the means above are each over its own truth, and the paired comparison names no "
                  f"side (verdict `{TRUTHS_DIFFER}`, left out of the Holm adjustment), as `distgen compare` refuses such a pair. "
                  "Compare settings of the data by what each is for (a held-out score on one fixed truth), or make the data setting "
                  "the base of separate sweeps.", ""]
        lines += [f"- {md.code(v)}: {md.inline(why)}" for v, why in apart.items()]
    from distgen.report.sweep import coverage_notes

    uneven = coverage_notes(rows, variants, reference, metrics)
    if uneven:
        lines += ["", "## Conditions scored on one side only", "",
                  "Scored on one side only: the other side's value is NaN (too few cells, a degenerate denominator) or the other "
                  "side has no row of the condition (its runs held out other conditions); each line counts both. The means "
                  "above are over each variant's own scored perturbations, the paired "
                  "comparison over those both scored. A variant NaN where it would do worst has a better mean without being "
                  "better, and even the paired comparison favours it (which pairs are left out depends on its own values: "
                  "equal to the reference and NaN on its worst 30%, it was named better in 9.5% of simulated comparisons "
                  "instead of about 2.5%; docs/report.md, \"Sweep page\"). Read its verdict with the perturbations it lacks.", ""]
        lines += [f"- {md.inline(line)}" for line in uneven]
    same = identical_variants(rows, variants, metrics)
    if same:
        lines += ["", "## Variants without effect", "", WITHOUT_EFFECT, ""]
        lines += [f"- {md.code(v)} = {md.code(other)}" for v, other in same.items()]
    if diverged:
        lines += ["", "## Diverged runs", "", "Their training loss exploded (more than 1,000 times its first step's) but stayed finite, or "
                  "their generated cells left the range of log-normalised expression (`generation:`), so they finished; their scores "
                  "above are a diverged model's (the run's eval/summary.md has the details).", ""]
        lines += [f"- {md.code(v)}, seed {s}: {md.inline(what)}" for v, s, what in diverged]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {md.inline(f, True)}" + (f": {md.inline(failures[f])}" if f in failures else "")
                                               for f in failed]
    return "\n".join(lines) + "\n", comparisons


def pair_noise(noise: Mapping[str, Mapping[str, float]], variant: str, reference: str, metric: str) -> float:
    """The larger of the two variants' replicate spreads of ``metric`` (NaN where neither has one)."""
    vals = [float(noise.get(v, {}).get(metric, math.nan)) for v in (variant, reference)]
    vals = [v for v in vals if math.isfinite(v)]
    return max(vals) if vals else math.nan


def replicate_noise(run_summaries: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{variant: {metric: mean over its runs of ceiling_band.std}}`` from the runs' ``eval/summary.json`` documents
    (``run_summaries``: ``{variant: [summary, ...]}``); metrics without a band are left out."""
    out: dict[str, dict[str, float]] = {}
    for var, docs in run_summaries.items():
        for m in metrics:
            stds = []
            for doc in docs:
                row = (doc.get("metrics") or {}).get(m) if isinstance(doc, Mapping) else None
                std = (row.get("ceiling_band") or {}).get("std") if isinstance(row, Mapping) else None
                if isinstance(std, int | float) and math.isfinite(std):
                    stds.append(float(std))
            if stds:
                out.setdefault(var, {})[m] = float(np.mean(stds))
    return out


def plot_summary(rows: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    """Bar chart per metric: mean over seeds with sd error bars, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False}):  # a variant label with $...$ is text, not a formula
        _plot_summary(plt, rows, variants, metrics, path)


def _plot_summary(plt: Any, rows: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    from distgen.glyphs import short_labels

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    names, titles = short_labels(variants), dict(zip(metrics, short_labels(metrics)))  # cut and escaped, as the page's
    for ax, m in zip(axes[0], metrics):
        sm = seed_means(rows, m)
        means = [np.mean(list(sm.get(v, {}).values()) or [np.nan]) for v in variants]
        sds = [np.std(list(sm.get(v, {}).values()), ddof=1) if len(sm.get(v, {})) > 1 else 0.0 for v in variants]
        ax.bar(range(len(variants)), means, yerr=sds, capsize=3, color="#4C72B0")
        ax.set_xticks(range(len(variants)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{titles[m]} {_arrow(m)}\nmean ± sd over seeds", fontsize=8)  # sd of the seeds, not an interval of the mean
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
