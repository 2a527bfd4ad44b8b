"""How sure a score is: the ceiling over several half-splits, bootstrap intervals and paired tests over perturbations.

* ``ceiling_tables``: the positive ceiling (``calibration.ceiling_data``) over ``n_splits`` seeded
  disjoint half-splits; ``mean_table`` averages them per perturbation, ``band`` summarises the
  spread of their aggregate means (the replicate's own noise).
* ``bootstrap_ci``: a percentile bootstrap interval of the mean over perturbations (perturbations
  resampled with replacement, seeded).
* ``paired_test``: two tables on the same perturbations (model vs a baseline, or two runs), paired
  per perturbation: mean difference, its bootstrap interval and the two-sided Wilcoxon signed-rank
  p-value (``scipy.stats.wilcoxon``, zero differences dropped: ``zero_method="wilcox"``).
* ``calibrate``: adds those to ``summarise``'s per-metric rows (``summary.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from distgen.evaluation.calibration import ceiling_data
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.suite import MetricTable, run_metrics

#: Default number of half-splits of the ceiling, bootstrap resamples and interval level.
CEILING_SPLITS, N_BOOT, LEVEL = 5, 1000, 0.95


def split_seed(seed: int, i: int) -> int:
    """Seed of half-split ``i`` (split 0 is the single split distgen used before: ``seed`` itself)."""
    return seed if i == 0 else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def ceiling_tables(data: EvalData, metrics: Sequence[str] | None, seed: int = 0, n_splits: int = CEILING_SPLITS) -> list[MetricTable]:
    """The ceiling's metric table for each of ``n_splits`` disjoint half-splits of the real cells."""
    if n_splits < 1:
        raise ValueError(f"ceiling_splits must be >= 1, got {n_splits}")
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


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the finite ``values`` (NaNs dropped); ``(nan, nan)`` below 2 values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


def paired_test(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """``a - b`` paired per perturbation (pairs where both are finite): ``mean_difference``, ``ci``, ``wilcoxon_p``, ``n``.

    ``wilcoxon_p`` is NaN (with ``note``) when fewer than 2 pairs remain or every difference is 0.
    """
    from scipy.stats import wilcoxon

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired_test: {x.size} values against {y.size}; pair them on the same perturbations")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    out: dict[str, Any] = {"n": int(d.size), "mean_difference": float(d.mean()) if d.size else math.nan,
                           "ci": list(bootstrap_ci(d, n_boot, level, seed)), "wilcoxon_p": math.nan, "note": ""}
    if d.size < 2:
        out["note"] = f"only {d.size} paired perturbation(s)"
    elif not np.any(d != 0):
        out["note"] = "every paired difference is 0"
    else:
        out["wilcoxon_p"] = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return out


def calibrate(rows: dict[str, dict[str, Any]], model: MetricTable, baselines: Mapping[str, MetricTable],
              ceilings: Sequence[MetricTable] | None, seed: int = 0, n_boot: int = N_BOOT, level: float = LEVEL) -> None:
    """Add to each metric row of ``summarise``: ``model_ci``, ``ceiling_band`` and ``vs_strongest_baseline`` (in place).

    ``vs_strongest_baseline``: the model minus the strongest baseline, paired per perturbation
    (``paired_test``), with ``better`` = whether the mean difference points the metric's good way.
    """
    for name, row in rows.items():
        row["model_ci"] = list(bootstrap_ci(model.values[name], n_boot, level, seed))
        row["ci_level"] = level
        if ceilings:
            row["ceiling_band"] = band(ceilings, name)
        best = row.get("strongest_baseline")
        if best and best in baselines and name in baselines[best].values:
            test = paired_test(model.values[name], baselines[best].values[name], n_boot, level, seed)
            diff = test["mean_difference"]
            test["baseline"] = best
            test["better"] = bool(diff > 0 if row["higher_is_better"] else diff < 0) if not math.isnan(diff) else None
            row["vs_strongest_baseline"] = test
