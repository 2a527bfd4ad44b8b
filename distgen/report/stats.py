"""Small pure functions behind the report's figures: intervals, response strength, strata, aliases."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.intervals import LEVEL, N_BOOT
from distgen.evaluation.suite import MetricTable


def finite(values: Sequence[float]) -> np.ndarray:
    """The finite entries of ``values`` as a float64 array."""
    a = np.asarray(values, dtype=np.float64)
    return a[np.isfinite(a)]


def mean_ci(values: Sequence[float], level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
            bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and the studentized bootstrap interval of the mean (``intervals.bootstrap_ci``),
    cut at ``bounds`` (a metric's ``MetricCapabilities.bounds``; ``style.metric_info(name).bounds``).

    Conditions are the resampled unit (the question is how the mean would move with other held-out
    conditions). One finite value: NaN bounds (no interval; drawn as a point without bars). All equal: the
    interval collapses to the mean (no spread was seen). NaN mean when there is no finite value. The defaults are
    ``summary.json``'s (``intervals.N_BOOT`` draws, seed 0): the page draws the interval summary.md prints (it drew
    2,000 and showed other last digits).
    """
    from distgen.evaluation.intervals import bootstrap_ci

    a = finite(values)
    if a.size == 0:
        return math.nan, math.nan, math.nan
    m = float(a.mean())
    if a.size < 2:  # one value has no spread to measure: no interval (a zero-width one would read as certainty)
        return m, math.nan, math.nan
    if np.all(a == a[0]):
        return m, m, m
    lo, hi = bootstrap_ci(a, n_boot=n_boot, level=level, seed=seed, bounds=bounds)
    return m, lo, hi


def response_strength(data: EvalData) -> dict[str, float]:
    """Per condition: Euclidean norm over genes of the real pseudobulk response (real mean - real control mean)."""
    delta = data.delta("real")
    norms = torch.linalg.vector_norm(torch.nan_to_num(delta, nan=0.0), dim=1)
    return {p: float(v) for p, v in zip(data.perts, norms.tolist())}


def identical(a: MetricTable, b: MetricTable, tol: float = 0.0) -> bool:
    """True when two tables hold the same values (NaN equal to NaN) for every shared metric and condition."""
    shared = set(a.values) & set(b.values)
    if a.perts != b.perts or not shared:
        return False
    for name in shared:
        x, y = np.asarray(a.values[name], float), np.asarray(b.values[name], float)
        same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= tol)
        if not bool(same.all()):
            return False
    return True


def group_aliases(tables: Mapping[str, MetricTable]) -> dict[str, list[str]]:
    """``{kept name: [aliases]}``: baselines whose tables are identical are reported once (first name kept)."""
    groups: dict[str, list[str]] = {}
    for name, t in tables.items():
        for kept in groups:
            if identical(tables[kept], t):
                groups[kept].append(name)
                break
        else:
            groups[name] = []
    return groups


def strata(strength: Mapping[str, float], n: int = 3) -> dict[str, int]:
    """Stratum ``0..n-1`` of each condition by response strength (0 = weakest; finite strengths), cut where summary.md's
    difficulty strata cut (``evaluation.strata.quantile_bins``: at quantile edges, equal strengths in one stratum), so a
    condition is in the same stratum on the page as in summary.md; cut by rank before, 3/3/2 of 8 conditions against
    summary.md's 3/2/3. No conditions: ``{}``."""
    from distgen.evaluation.strata import quantile_bins

    if not strength:
        return {}
    _, bins = quantile_bins(list(strength.values()), n)
    return {p: int(b) for p, b in zip(strength, bins)}


STRATUM_NAMES = {3: ("weakest third", "middle third", "strongest third")}


def advantage(model: float, reference: float, higher_is_better: bool | None) -> float:
    """How much better the model is than a reference on one condition (positive: model better; NaN if either is, or without a direction)."""
    if math.isnan(model) or math.isnan(reference) or higher_is_better is None:
        return math.nan
    return (model - reference) if higher_is_better else (reference - model)


def paired_interval(diffs: Sequence[float], level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
                    bounds: tuple[float, float] | None = None, unit: str = "perturbation") -> tuple[float, float, float]:
    """Mean paired difference and its interval, cut at the range of a difference of two values in ``bounds`` (the
    metric's; ``intervals.difference_bounds``): the studentized bootstrap (pairs resampled: ``mean_ci``) over
    perturbations, the Student t interval over seeds (``unit="seed"``: the interval of the sweep's t-test,
    ``intervals.t_interval``, so that it holds 0 exactly when that test's p is at least ``1 - level``)."""
    from distgen.evaluation.intervals import difference_bounds, t_interval

    if unit != "seed":
        return mean_ci(diffs, level=level, n_boot=n_boot, seed=seed, bounds=difference_bounds(bounds))
    a = finite(diffs)
    if a.size == 0:
        return math.nan, math.nan, math.nan
    lo, hi = t_interval(a, level, difference_bounds(bounds))
    return float(a.mean()), lo, hi
