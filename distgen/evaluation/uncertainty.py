"""How sure a score is: the ceiling over several half-splits, bootstrap intervals and paired tests over perturbations.

* ``ceiling_tables``: the positive ceiling (``calibration.ceiling_data``) over ``n_splits`` seeded
  disjoint half-splits; ``mean_table`` averages them per perturbation, ``band`` summarises the
  spread of their aggregate means (the replicate's own noise).
* ``bootstrap_ci`` and the other intervals of a mean, ``holm`` and ``normalised_interval``: pure functions of arrays in
  ``distgen.evaluation.intervals``; this module applies them to metric tables.
* ``paired_test``: two tables on the same perturbations (model vs a baseline, or two runs), paired
  per perturbation: mean difference, its bootstrap interval and the two-sided Wilcoxon signed-rank
  p-value (``scipy.stats.wilcoxon``, zero differences dropped first, as ``zero_method="wilcox"`` does: ``signed_rank``).
* ``sweep_units``: what a sweep's variant-vs-reference difference is tested over: one mean difference per seed
  (a run's training noise moves all its perturbations together), or the perturbations of a single seed.
* ``margin`` and ``verdict``: statistical AND practical significance of a paired difference. A
  difference is a win only when the test rejects and the mean difference exceeds a margin: the
  split-half replicate's spread of the metric (``band``'s ``std``), a margin the user states, and never
  less than the numerical tolerance (``NUMERIC_RTOL`` of the metric's scale). A difference whose interval
  lies inside the margin is ``negligible`` (``small_unshown``: a significant one whose estimate alone is inside).
* ``calibrate``: adds those to ``summarise``'s per-metric rows (``summary.json``): ``model_ci`` with its ``ci_n``,
  ``ceiling_band``, ``vs_strongest_baseline`` with ``holm_p`` and ``runner_up`` (is the strongest baseline told apart from the
  next one?), ``normalised_ci`` and, without a scale, ``normalised_caution``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from distgen.evaluation.calibration import REPLICATES, ceiling_data, extrapolated_table, shared_control_data
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.intervals import (
    LEVEL,
    N_BOOT,
    bootstrap_ci,
    difference_bounds,
    holm,
    normalised_interval,
    rank_direction,
    signed_rank,
)
from distgen.evaluation.suite import MetricTable, run_metrics
from distgen.wording import counted, listing

#: Default number of half-splits of the ceiling (bootstrap resamples and interval level: ``intervals.N_BOOT``, ``LEVEL``).
CEILING_SPLITS = 5
#: Numerical tolerance of a mean difference: ``NUMERIC_RTOL`` of the larger ``|mean|`` (at least ``NUMERIC_ATOL``).
#: Metrics are computed from float32 expression (about 7 significant digits) and summed in float64 in an order
#: that differs between runs; a difference below one part in a million of the metric's own size is below what
#: the inputs resolve, whatever a test on it says (a constant 2e-9 on every perturbation gives p = 2 / 2**n).
NUMERIC_RTOL, NUMERIC_ATOL = 1e-6, 1e-12

#: Two variants' values of one metric are "the same results" (``distgen.pipeline.aggregate.identical_variants``, behind a
#: sweep's "Variants without effect" and "Settings without effect") when they differ by at most this part of their size:
#: the larger ``|value|`` of the two, or, for a value nearer 0, the median ``|value|`` over both variants' rows of that
#: metric (a value near 0 is rounded at the size of what it was computed from; the mean was one large value's, which hid
#: a 0.1% change of every other); at least ``NUMERIC_ATOL``. Exact
#: equality was right on the CPU, where a run is bit for bit reproducible, and blind on a GPU, where two runs of one
#: config differ in their last digits (accumulation orders of atomics, cuDNN's algorithm choice): no variant was ever
#: named there. Float32 holds about 7 digits and a run sums them over many steps, so 1e-5 leaves room above a GPU's
#: reordering, while a setting that does anything moves a metric far more (a change of 0.1% on one perturbation of
#: typical size is 100 times this). Not yet measured on a GPU: if two runs of one config differ by more, the check stays
#: blind there; it does not call an effect inert.
SAME_RESULTS_RTOL = 1e-5
#: What summary.md and the sweep page say of variants whose results equal another's (``aggregate.identical_variants``):
#: what was checked (the results, within ``SAME_RESULTS_RTOL``), not that the runs generated the same cells.
WITHOUT_EFFECT = (f"These variants gave results equal within {SAME_RESULTS_RTOL:g} of each metric's size (the last digits in "
                  "which runs on a GPU differ) to another's, for every seed, perturbation and metric; the results were "
                  "compared, not the generated cells: the setting that tells them apart had no effect on these results (a "
                  "parameter the model does not read, or two settings that coincide on this data).")


def split_seed(seed: int, i: int) -> int:
    """Seed of half-split ``i`` (split 0 is the single split distgen used before: ``seed`` itself)."""
    return seed if i == 0 else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def ceiling_tables(data: EvalData, metrics: Sequence[str] | None, seed: int = 0, n_splits: int = CEILING_SPLITS,
                   replicate: str = "half-split") -> list[MetricTable]:
    """The ceiling's metric table for each of ``n_splits`` seeded splits of the real cells.

    ``replicate="half-split"`` (default): one disjoint half against the other, each with its own half of the
    controls (``calibration.ceiling_data``). ``"extrapolated"``: per split, halves and quarters of each
    perturbation's cells, both sides with all the controls, extrapolated to full depth
    (``calibration.extrapolated_table``; two metric passes a split).
    """
    if n_splits < 1:
        raise ValueError(f"ceiling_splits must be >= 1, got {n_splits}")
    if replicate not in REPLICATES:
        raise ValueError(f"replicate must be one of {', '.join(REPLICATES)}, got {replicate!r}")
    if replicate == "extrapolated":
        n_cells = data.real.counts.tolist()
        return [extrapolated_table(run_metrics(shared_control_data(data, split_seed(seed, i), 2), metrics),
                                   run_metrics(shared_control_data(data, split_seed(seed, i), 4), metrics), n_cells)
                for i in range(n_splits)]
    return [run_metrics(ceiling_data(data, seed=split_seed(seed, i)), metrics) for i in range(n_splits)]


def mean_table(tables: Sequence[MetricTable]) -> MetricTable:
    """Per perturbation and metric, the mean over ``tables`` (same perturbations) of the finite values (NaN if none)."""
    first = tables[0]
    if len(tables) == 1:
        return first
    values = {}
    for name in first.values:
        stack = np.array([t.values[name] for t in tables], dtype=np.float64)
        finite = np.isfinite(stack)
        with np.errstate(invalid="ignore"):
            values[name] = np.where(finite.any(0), np.nansum(stack, 0) / np.maximum(finite.sum(0), 1), np.nan).tolist()
    return MetricTable(perts=first.perts, values=values, reasons=first.reasons, info=first.info)


def band(tables: Sequence[MetricTable], name: str) -> dict[str, Any]:
    """The spread over splits of the ceiling's mean of ``name``: ``mean``, ``std`` (ddof 1), ``min``, ``max``, ``n_splits``.

    Every split's mean is over the same perturbations, those defined in every split (``n_rows``): a
    perturbation defined in some splits only would move the mean by changing what is averaged, not by
    the replicate's noise. ``note`` says when perturbations were left out for that, and when the splits
    agree exactly (``std`` 0: no spread was measured, e.g. groups too small to split differently).
    """
    tables = [t for t in tables if name in t.values]
    empty = {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n_splits": 0, "n_rows": 0, "note": ""}
    if not tables:
        return empty
    stack = np.array([t.values[name] for t in tables], dtype=np.float64)
    every = np.isfinite(stack).all(0)
    if not every.any():
        return {**empty, "note": "no perturbation is defined in every split"}
    means = stack[:, every].mean(1)
    notes = []
    if (~every & np.isfinite(stack).any(0)).any():
        notes.append(f"{int((~every & np.isfinite(stack).any(0)).sum())} perturbation(s) defined in some splits only are left out")
    if means.size > 1 and np.all(means == means[0]):
        notes.append("every split gave the same mean: no spread measured")
    return {"mean": float(means.mean()), "std": float(means.std(ddof=1)) if means.size > 1 else math.nan,
            "min": float(means.min()), "max": float(means.max()), "n_splits": int(means.size), "n_rows": int(every.sum()),
            "note": "; ".join(notes)}


def metric_bounds(name: str) -> tuple[float, float]:
    """``MetricCapabilities.bounds`` of the registered metric ``name``; ``UNBOUNDED`` for a name the registry does not hold."""
    from distgen.capabilities import UNBOUNDED
    from distgen.evaluation.metrics import metrics

    try:
        caps = metrics.get(name).capabilities
    except (KeyError, LookupError):
        return UNBOUNDED
    return tuple(getattr(caps, "bounds", UNBOUNDED))  # type: ignore[return-value]


def paired_test(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """``a - b`` paired per perturbation (pairs where both are finite): ``mean_difference``, ``ci``, ``wilcoxon_p``, ``n``.

    ``bounds``: the range of ``a`` and ``b`` (the metric's ``MetricCapabilities.bounds``); the interval of the
    difference is cut at ``difference_bounds(bounds)``.

    ``wilcoxon_p`` is NaN (with ``note``) when fewer than 2 pairs remain or every difference is 0; the
    ``note`` also says when there are too few nonzero differences for the test to reject at ``1 - level``
    (``min_pairs``: 6 at 5%). ``rank_direction``: the side the signed ranks favour (+1 when the positive
    differences carry the larger rank sum, -1 the negative ones, 0 a tie or no test); the Wilcoxon test
    is evidence for that side, which is not always the side of the mean difference (most differences one
    way and a few large ones the other: the ``note`` says so, and ``verdict`` names no winner then).
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired_test: {counted(x.size, 'value')} against {y.size}; pair them on the same perturbations")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    out: dict[str, Any] = {"n": int(d.size), "mean_difference": float(d.mean()) if d.size else math.nan,
                           "ci": list(bootstrap_ci(d, n_boot, level, seed, difference_bounds(bounds))), "wilcoxon_p": math.nan, "rank_direction": 0,
                           "note": ""}
    if d.size < 2:
        out["note"] = f"only {d.size} paired perturbation(s)"
    elif not np.any(d != 0):
        out["note"] = "every paired difference is 0"
    else:
        out["wilcoxon_p"] = float(signed_rank(d).pvalue)
        nz = d[d != 0]
        out["rank_direction"] = rank_direction(nz)
        nonzero, need = int(np.count_nonzero(d)), min_pairs(1.0 - level)
        if nonzero < need and out["wilcoxon_p"] >= 1.0 - level:
            out["note"] = (f"{nonzero} nonzero paired difference(s): the two-sided Wilcoxon test cannot reach "
                           f"p < {1.0 - level:.2g} with fewer than {need}")
        elif out["rank_direction"] and out["rank_direction"] != np.sign(out["mean_difference"]):
            side = "positive" if out["rank_direction"] > 0 else "negative"
            out["note"] = (f"the signed ranks favour the {side} differences ({int((nz > 0).sum())} of {nz.size} nonzero "
                           f"differences are positive) but the mean difference is {out['mean_difference']:+.4g}: a few large "
                           "differences outweigh the rest, so the Wilcoxon p is evidence against the mean's side, not for it")
    return out


def sweep_units(rows: Sequence[Mapping[str, Any]], variant: str, reference: str, metric: str) -> tuple[str, list[float], int]:
    """``(unit, differences, n_pairs)``: what a sweep's ``variant - reference`` is tested over (by
    ``distgen.pipeline.aggregate.paired_comparison``) and its page's intervals drawn over.

    Two or more seeds whose mean differences are not all equal: one difference per seed, its mean over the
    perturbations both runs of that seed scored (``"seed"``). Every run carries its own training noise, which
    moves all its perturbations together; pooling (seed, perturbation) pairs as independent counted one seed's
    luck once per perturbation (two equally good variants, 3 seeds x 25 perturbations, a seed effect of 0.3 x
    the per-perturbation noise: p < 0.05 in 26% of sweeps; ``benchmarks/stats_calibration.py``). One seed (or
    seeds that repeat one run exactly): the differences per perturbation of that seed (``"perturbation"``), a
    test of these two runs, not of training randomness. ``n_pairs``: the (seed, perturbation) pairs defined on
    both sides.
    """
    def table(name: str) -> dict[tuple[int, str], float]:
        return {
            (int(r["seed"]), str(r["perturbation"])): float(r[metric])
            for r in rows
            if r["variant"] == name and isinstance(r.get(metric), float) and not math.isnan(r[metric])
        }

    a, b = table(variant), table(reference)
    keys = sorted(set(a) & set(b))
    by_seed: dict[int, list[float]] = {}
    for k in keys:
        by_seed.setdefault(k[0], []).append(a[k] - b[k])
    means = [float(np.mean(v)) for v in by_seed.values()]
    if len(means) >= 2 and not all(m == means[0] for m in means):
        return "seed", means, len(keys)
    first = min(by_seed) if by_seed else None
    return "perturbation", list(by_seed[first]) if first is not None else [], len(keys)


def numerical_tolerance(*means: float) -> float:
    """``NUMERIC_RTOL * max(|mean|)`` over the finite ``means``, at least ``NUMERIC_ATOL``. Pass each side's ``magnitude``
    too: a mean of values of both signs can cancel far below the values' own size, which their rounding scales with."""
    finite = [abs(m) for m in means if math.isfinite(m)]
    return max(NUMERIC_ATOL, NUMERIC_RTOL * max(finite, default=0.0))


def magnitude(values: Iterable[float]) -> float:
    """The mean of ``|value|`` over the values that are not NaN (NaN when none), summed as ``MetricTable.mean`` sums: the
    size each value's rounding is relative to, which the numerical tolerance scales with. For values of one sign it is
    the mean itself, bit for bit; for values of both signs it is not: 19 perturbations near +1e60 and one near -1.9e61
    have a mean near 2e44 (2e51 once each value is rounded up by one part in 1e9), and the tolerance taken from the means
    (2e45) let that rounding, the same way on every perturbation, name a winner (``distgen compare``: verdict ``a``,
    p 2e-6, before 2026-12-06); from the magnitude it is 2e54."""
    vals = [abs(float(v)) for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def margin(means: Sequence[float], noise: float = math.nan, given: float | None = None) -> tuple[float, str]:
    """The margin below which a mean difference is negligible, and where it comes from.

    ``given`` (a margin the user states, in the metric's units) wins; else ``noise``, the split-half
    replicate's spread of the metric's mean (``band``'s ``std``), when it is finite and above the
    numerical tolerance; else the numerical tolerance (``numerical_tolerance``) alone. ``means``: each side's mean and
    its ``magnitude`` (the tolerance scales with the larger).
    """
    tol = numerical_tolerance(*means)
    if given is not None:
        if not given >= 0:
            raise ValueError(f"a margin must be a number >= 0, got {given!r}")
        return float(given), "given"
    if math.isfinite(noise) and noise > tol:
        return float(noise), "replicate spread"
    return tol, "numerical tolerance"


def small_unshown(test: Mapping[str, Any], width: float, alpha: float) -> bool:
    """A significant difference (``p < alpha``) whose estimate is within ``width`` but whose interval reaches past it:
    real, and perhaps too small to matter, but not shown to be (``verdict`` says ``inconclusive``)."""
    d, p, (lo, hi) = test["mean_difference"], test["wilcoxon_p"], test["ci"]
    inside = math.isfinite(lo) and math.isfinite(hi) and -width <= lo and hi <= width
    return bool(math.isfinite(p) and p < alpha and math.isfinite(d) and abs(d) <= width and not inside)


def min_pairs(alpha: float) -> int:
    """The fewest nonzero pairs whose exact two-sided Wilcoxon p (at best ``2 / 2**n``) can fall below ``alpha``."""
    n = 1
    while 2.0 / 2.0**n >= alpha and n < 64:
        n += 1
    return n


def verdict(test: Mapping[str, Any], higher_is_better: bool | None, width: float, alpha: float,
            p: float | None = None) -> tuple[str, str | None]:
    """``(verdict, winner)`` of a ``paired_test`` of ``a - b`` under the margin ``width``.

    ``p``: the p-value of the claim a named side makes, where it is not the test's own ``wilcoxon_p``: against several
    baselines, ``baseline_claim``'s ``claim_p``; across a sweep's table, Holm's adjusted p. The test's own p is the default.

    * ``negligible``: the interval of the mean difference lies within ``[-width, width]`` (an equivalence
      test: the two one-sided tests at ``(1 - level) / 2`` each), so "no practical difference" is shown, not
      read off the estimate. A significant difference whose estimate is within the margin but whose interval
      reaches past it is ``inconclusive`` (``small_unshown``): called negligible before, it was so called in
      18.5-45% of tests at a true difference of exactly the margin and 9.5-11.5% at 1.25 times it (25-100 pairs);
      the interval rule, about 2.5% there (2.0-2.8% measured; ``docs/metrics.md``, "Claims under the null");
    * ``a`` / ``b`` (the winner, by the metric's direction): the test rejects at ``alpha``,
      ``|mean difference| > width`` and the signed ranks favour the side of the mean difference
      (``rank_direction``); ``no direction`` there when the metric has none;
    * ``inconclusive``: neither (too few pairs, a wide interval, a test that does not reject, a test that
      rejects for the side opposite the mean difference, a significant difference not shown to be within the
      margin); ``no pairs`` without a defined pair.
    """
    d = test["mean_difference"]
    p = test["wilcoxon_p"] if p is None else p
    lo, hi = test["ci"]
    if not test["n"] or math.isnan(d):
        return "no pairs", None
    inside = math.isfinite(lo) and math.isfinite(hi) and -width <= lo and hi <= width
    significant = not math.isnan(p) and p < alpha
    if inside:
        return "negligible", None
    if significant and abs(d) > width and test.get("rank_direction", 0) in (0, int(np.sign(d))):
        if higher_is_better is None:
            return "no direction", None
        winner = "a" if (d > 0) == higher_is_better else "b"
        return winner, winner
    return "inconclusive", None


#: The two claims a verdict against several baselines can make (``baseline_claim``), as ``summary.json`` names them.
CLAIM_MODEL, CLAIM_BASELINE = "model beats every baseline", "strongest baseline beats the model"


def baseline_claim(tests: Mapping[str, Mapping[str, Any]], best: str, higher_is_better: bool | None) -> dict[str, Any]:
    """The claim a verdict against the strongest of several baselines makes, and its p-value (``claim``, ``claim_p``, ``family``).

    ``tests``: ``{baseline: paired_test(model, baseline)}`` for every baseline with a score (the family: ``calibrate``
    counts baselines with identical values once), ``best`` (one of them) the strongest by mean. The strongest is picked on the data the test then uses,
    so the strongest's own p does not hold its level: with four baselines as good as the model, the strongest was named
    better than the model in 5.7-8.1% of evaluations where one side of the 5% test is due 2.5% (``docs/metrics.md``,
    "Claims against several baselines"). Which claim is tested follows the side of the mean difference against the strongest:

    * the model ahead: ``CLAIM_MODEL``, an intersection-union test (Berger 1982): the model is better than each baseline,
      so ``claim_p`` is the largest of the per-baseline p-values, each taken as 1 where the mean difference or the
      signed ranks against that baseline do not favour the model, NaN where one is untestable (fewer than 2 pairs).
      Rejecting only where every component rejects keeps the level without adjustment, whichever baseline is strongest.
      ``held_by``: the baseline that sets ``claim_p`` (the untestable ones, else the one with the largest p) where it is
      not the strongest, so a report can say which baseline holds the claim back when the strongest's own p is small;
      several tied there are all named (``"a and b (tied)"``);
    * the strongest ahead: ``CLAIM_BASELINE``: the strongest's p adjusted (``holm``) over the family, so that naming
      whichever baseline the data made strongest keeps the chance of a false claim at most the level.

    No direction (a diagnostic): ``claim`` is "" and ``claim_p`` the strongest's own p.
    """
    family = sorted(tests)
    own = tests[best]
    d = own["mean_difference"]
    if higher_is_better is None or not math.isfinite(d) or d == 0:
        return {"claim": "", "claim_p": own["wilcoxon_p"], "family": family}
    if (d > 0) == higher_is_better:
        ps = []
        for b in family:
            t = tests[b]
            side = int(np.sign(t["mean_difference"])) if math.isfinite(t["mean_difference"]) else 0
            favours = side != 0 and (side > 0) == higher_is_better and t.get("rank_direction", 0) in (0, side)
            if t["n"] < 2:
                ps.append(math.nan)
            else:
                ps.append(float(t["wilcoxon_p"]) if favours and math.isfinite(t["wilcoxon_p"]) else 1.0)
        claim_p = math.nan if any(math.isnan(q) for q in ps) else max(ps)
        out = {"claim": CLAIM_MODEL, "claim_p": claim_p, "family": family}
        # the baselines the claim rests on: the untestable ones, else those with the largest p (the claim's own); every one
        # tied there, not the family's first (a tie at p 1 between two baselines the model is not ahead of named one)
        held = [b for b, q in zip(family, ps) if (math.isnan(q) if math.isnan(claim_p) else q == claim_p)]
        if held and best not in held and len(family) > 1:
            out["held_by"] = held[0] if len(held) == 1 else f"{listing(held[:-1])} and {held[-1]} (tied)"
        return out
    adjusted = dict(zip(family, holm([tests[b]["wilcoxon_p"] for b in family])))
    return {"claim": CLAIM_BASELINE, "claim_p": adjusted[best], "family": family}


def runner_up(row: Mapping[str, Any], name: str, baselines: Mapping[str, MetricTable], n_boot: int = N_BOOT,
              level: float = LEVEL, seed: int = 0, bounds: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """Whether the strongest baseline of ``row`` is told apart from the next one by mean (the runner-up); None without one.

    The strongest baseline is the one with the best mean (``calibration.summarise``; each over the perturbations where it
    is defined). When a second distinct baseline is about as good, that pick is a coin toss the verdict against it does
    not show. ``paired_test`` of the strongest minus the runner-up over the perturbations both define: ``baseline`` (the
    runner-up), ``mean_difference``, ``ci``, ``n``, and ``told_apart``: True only where the interval lies wholly on the
    strongest's better side of 0 (an interval holding 0, or NaN with fewer than 2 pairs, is not told apart).
    A baseline with the strongest's very values of ``name`` (``_distinct_scored``: one baseline to the verdict) is not a
    runner-up: their difference is 0 everywhere, and the verdict against either is the same.
    """
    best, hib = row.get("strongest_baseline"), row.get("higher_is_better")
    if not best or best not in baselines or name not in baselines[best].values or row.get("diagnostic"):
        return None
    own = np.asarray(baselines[best].values[name], dtype=np.float64)
    means = {b: v for b, v in (row.get("baselines") or {}).items()
             if b != best and b in baselines and name in baselines[b].values and isinstance(v, int | float) and math.isfinite(v)
             and not _same_values(baselines[b].values[name], own)}
    if not means:
        return None
    second = (max if hib else min)(means, key=means.__getitem__)
    test = paired_test(baselines[best].values[name], baselines[second].values[name], n_boot, level, seed, bounds)
    lo, hi = test["ci"]
    apart = math.isfinite(lo) and math.isfinite(hi) and (lo > 0.0 if hib else hi < 0.0)
    return {"baseline": second, "mean_difference": test["mean_difference"], "ci": list(test["ci"]), "n": test["n"],
            "told_apart": bool(apart)}


def runner_up_notes(rows: Mapping[str, Mapping[str, Any]], level: float = 0.95,
                    noun: str = "perturbation") -> tuple[dict[str, str], list[str]]:
    """The runner-up notes of a run's metrics (``summary["metrics"]``), no more of them than say something: ``(sentences,
    grouped)``.

    ``sentences``: ``{metric: runner_up_note}`` where the strongest baseline is not told apart from the runner-up and that
    matters to the verdict. ``grouped``: at most two sentences naming the other metrics where it is not told apart either,
    without the numbers each (they are in ``summary.json``, ``vs_strongest_baseline.runner_up``): those whose verdict names
    the model (``CLAIM_MODEL`` holds against every baseline, so which is strongest does not change it), and those over
    fewer pairs than the paired test needs (``min_pairs``: there nothing is told apart, and summary.md says so once). A run
    on 1-2 perturbations had one long sentence per metric, each saying the same thing. ``noun``: what a pair is
    (``wording.row_noun``: a "(condition, context) row" where the run scored several contexts).
    """
    alpha = 1.0 - level
    sentences: dict[str, str] = {}
    moot: list[str] = []
    few: dict[str, int] = {}
    for name, row in rows.items():
        test = row.get("vs_strongest_baseline") or {}
        said = runner_up_note(test, level, noun)
        if not said:
            continue
        n = (test.get("runner_up") or {}).get("n") or 0
        if test.get("verdict") == "model" and test.get("claim") == CLAIM_MODEL:
            moot.append(name)
        elif int(n) < min_pairs(alpha):
            few[name] = int(n)
        else:
            sentences[name] = said
    grouped = []
    if moot:
        grouped.append(f"The strongest baseline is not told apart from the runner-up on {listing(moot)}, where the model is "
                       "shown better than every baseline, so the pick does not change the verdict.")
    if few:
        counts = listing(str(v) for v in sorted(set(few.values())))
        grouped.append(f"Over {counts} {noun}(s) (fewer than the {min_pairs(alpha)} a paired test needs) no baseline is "
                       f"told apart from the next: the strongest on {listing(few)} is so by its mean alone.")
    return sentences, grouped


def runner_up_note(test: Mapping[str, Any], level: float = 0.95, noun: str = "perturbation") -> str:
    """Where the strongest baseline is not told apart from the runner-up (``vs_strongest_baseline.runner_up``): a sentence
    saying so, with their paired difference and interval; "" where it is told apart, or there is no runner-up.
    ``runner_up_notes`` says which of a run's notes are given in full."""
    second = test.get("runner_up")
    if not isinstance(second, Mapping) or second.get("told_apart") is not False:
        return ""
    ci = second.get("ci") or [math.nan, math.nan]
    nums = [math.nan if v is None else float(v) for v in (second.get("mean_difference"), *ci)]
    n = second.get("n") or 0
    return (f"strongest baseline {test.get('baseline')} not told apart from {second.get('baseline')} (paired difference "
            f"{nums[0]:.3g}, {level:.0%} CI [{nums[1]:.3g}, {nums[2]:.3g}] over {counted(int(n), noun)}): it is "
            "the strongest by its mean alone, and the difference and the verdict are against one of two baselines the data do not "
            "rank")


def _aligned(table: MetricTable, name: str, perts: Sequence[str]) -> list[float]:
    at = dict(zip(table.perts, table.values[name]))
    return [float(at.get(p, math.nan)) for p in perts]


def calibrate(rows: dict[str, dict[str, Any]], model: MetricTable, baselines: Mapping[str, MetricTable],
              ceilings: Sequence[MetricTable] | None, seed: int = 0, n_boot: int = N_BOOT, level: float = LEVEL) -> None:
    """Add to each metric row of ``summarise``: ``model_ci`` (``ci_n``: the values it is over), ``ceiling_band``,
    ``vs_strongest_baseline`` and, where the normalised score is defined, ``normalised_ci`` (``normalised_interval``;
    ``normalised_caution`` when the ceiling - baseline gap is not told apart from 0) (in place).

    ``model_ci`` is cut at the metric's ``bounds`` and the paired difference's ``ci`` at their ``difference_bounds``.

    ``vs_strongest_baseline``: the model minus the strongest baseline, paired per perturbation
    (``paired_test``: its difference, interval and own ``wilcoxon_p``), with ``better`` = whether the mean
    difference points the metric's good way; ``claim``, ``claim_p`` and ``family``: the claim a named side makes against
    every baseline and its p (``baseline_claim``; ``holm_p``: ``claim_p`` adjusted for every metric so tested, ``holm``);
    ``verdict`` (``model``, ``baseline``, ``negligible``, ``inconclusive``: see ``verdict``, at ``claim_p``) under ``margin``:
    the ceiling band's ``std`` (the replicate's spread), never below the numerical tolerance
    (``margin_source`` says which), and ``runner_up`` (``runner_up``): whether that baseline is told apart from the
    next one by mean.
    """
    for name, row in rows.items():
        bounds = metric_bounds(name)
        row["model_ci"] = list(bootstrap_ci(model.values[name], n_boot, level, seed, bounds))
        row["ci_level"] = level
        row["ci_n"] = int(np.isfinite(np.asarray(model.values[name], dtype=np.float64)).sum())  # the values the interval is over
        if ceilings:
            row["ceiling_band"] = band(ceilings, name)
        best = row.get("strongest_baseline")
        if best and best in baselines and name in baselines[best].values:
            tests = {b: paired_test(model.values[name], baselines[b].values[name], n_boot, level, seed, bounds)
                     for b in _distinct_scored(row, name, baselines, best)}
            test = dict(tests[best])
            diff = test["mean_difference"]
            test["baseline"] = best
            test["better"] = bool(diff > 0 if row["higher_is_better"] else diff < 0) if not math.isnan(diff) else None
            noise = (row.get("ceiling_band") or {}).get("std", math.nan)
            sizes = [magnitude(model.values[name]), magnitude(baselines[best].values[name])]  # a two-signed metric's mean can cancel
            test["margin"], test["margin_source"] = margin([row["model"], row["baselines"].get(best, math.nan), *sizes], noise)
            hib = None if row.get("diagnostic") else row["higher_is_better"]
            test.update(baseline_claim(tests, best, hib))
            said, _ = verdict(test, hib, test["margin"], 1.0 - level, p=test["claim_p"])
            test["verdict"] = {"a": "model", "b": "baseline"}.get(said, said)
            second = runner_up(row, name, baselines, n_boot, level, seed, bounds)
            if second is not None:
                test["runner_up"] = second
            row["vs_strongest_baseline"] = test
    ceiling = mean_table(ceilings) if ceilings else None
    for name, row in rows.items():
        best = row.get("strongest_baseline")
        score = row.get("normalised", math.nan)
        if ceiling is None or not best or best not in baselines or name not in ceiling.values or not math.isfinite(score):
            continue
        res = normalised_interval(model.values[name], _aligned(baselines[best], name, model.perts),
                                  _aligned(ceiling, name, model.perts), n_boot, level, seed)
        row["normalised_ci"] = [float(v) if math.isfinite(v) else None for v in res["ci"]]  # as summary.json reads back
        if not res["stable"]:
            lo, hi = res["gap_ci"]
            row["normalised_caution"] = (
                f"the ceiling - {best} gap, the score's scale, is {res['gap']:.3g} with a {level:.0%} interval "
                f"[{lo:.3g}, {hi:.3g}] over {counted(res['n'], 'perturbation')}: not told apart from 0, so the score divides by "
                "noise and its size means nothing")
    tested = [t for t in (r.get("vs_strongest_baseline") for r in rows.values()) if t and math.isfinite(t["claim_p"])]
    for t, adjusted in zip(tested, holm([t["claim_p"] for t in tested])):
        t["holm_p"] = adjusted  # each metric's claim p, over the metrics tested against their baselines (``holm``)


def _distinct_scored(row: Mapping[str, Any], name: str, baselines: Mapping[str, MetricTable], best: str) -> list[str]:
    """The baselines the model's verdict on ``name`` is against: those with a finite mean there (``row["baselines"]``) and
    values of ``name``, the strongest ``best`` first; a baseline whose values equal an earlier one's (identical
    predictions: ``baseline_aliases``) is left out, so that it does not count twice in Holm's family."""
    means = row.get("baselines") or {}
    names = [best] + [b for b in means if b != best]
    out: list[str] = []
    seen: list[np.ndarray] = []
    for b in names:
        if b not in baselines or name not in baselines[b].values:
            continue
        v = means.get(b)
        if b != best and not (isinstance(v, int | float) and math.isfinite(v)):
            continue
        vals = np.asarray(baselines[b].values[name], dtype=np.float64)
        if any(_same_values(vals, o) for o in seen):
            continue
        seen.append(vals)
        out.append(b)
    return out


def _same_values(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> bool:
    """Whether two baselines' values of a metric are the same, NaN where the other is NaN (one baseline to a verdict)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=True))
