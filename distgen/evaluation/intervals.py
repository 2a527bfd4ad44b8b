"""Intervals of a mean and what a set of p-values allows: small pure functions of arrays (``distgen.evaluation.uncertainty``
applies them to metric tables).

* ``bootstrap_ci``: a studentized (bootstrap-t) interval of the mean over perturbations, cut at a metric's ``bounds``
  (``clip_interval``; the range of a difference of two of its values: ``difference_bounds``).
* ``t_interval`` / ``mean_interval``: the Student t interval over a sweep's seeds (the interval of its t-test), the
  bootstrap one over perturbations.
* ``holm``: Holm's adjustment of several p-values for testing them all.
* ``signed_rank``: the Wilcoxon signed-rank test of paired differences, the same p-value under every scipy.
* ``normalised_interval``: the normalised score's interval over perturbations, and whether its scale is told apart from 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

#: Default number of bootstrap resamples and interval level.
N_BOOT, LEVEL = 1000, 0.95


def difference_bounds(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    """The range of ``a - b`` for ``a, b`` in ``bounds``: ``(low - high, high - low)`` (``[-2, 2]`` for a correlation,
    unbounded when either side is); None stays None."""
    if bounds is None:
        return None
    lo, hi = float(bounds[0]), float(bounds[1])
    return (lo - hi, hi - lo) if math.isfinite(lo) and math.isfinite(hi) else (-math.inf, math.inf)


def clip_interval(lo: float, hi: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """``(lo, hi)`` cut at ``bounds`` (the values the quantity can take); unchanged without finite bounds, NaN stays NaN.

    The quantity's true mean lies within its bounds, so an interval that covered it still does after the cut: coverage
    is unchanged and the impossible values are gone. An interval wholly outside collapses onto the nearer bound.
    """
    if bounds is None:
        return lo, hi
    b_lo, b_hi = float(bounds[0]), float(bounds[1])
    if math.isfinite(b_lo):
        lo, hi = (b_lo if lo < b_lo else lo), (b_lo if hi < b_lo else hi)
    if math.isfinite(b_hi):
        lo, hi = (b_hi if lo > b_hi else lo), (b_hi if hi > b_hi else hi)
    return lo, hi


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                 bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """``_bootstrap_ci`` (below) cut at ``bounds``, the range of the values' quantity (``clip_interval``; None: not cut).

    With few values a studentized or Student t interval reaches past what the metric can take (five correlations
    ``[0.95, 0.9, 0.92, -0.4, 0.97]``: ``(-9.15, 1.10)``); a metric's ``MetricCapabilities.bounds`` cut it to ``[-1, 1]``.
    """
    lo, hi = _bootstrap_ci(values, n_boot, level, seed)
    return clip_interval(lo, hi, bounds)


def _bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Studentized (bootstrap-t) interval of the mean of the finite ``values`` (NaNs dropped); ``(nan, nan)`` below 2 values.

    The perturbations are resampled with replacement (seeded); each resample gives
    ``t* = (mean* - mean) / se*`` and the interval is ``mean - t*_{hi} se, mean - t*_{lo} se`` (Efron and
    Tibshirani 1993, ch. 12). The percentile interval it replaces covered the true mean 83% of the time
    at 5 perturbations and 89-91% at 10 (normal scores; 74% and 80% with lognormal ones), this one 94% and
    96% (91% and 91%): ``docs/metrics.md``, "Calibration of the statistics". A resample whose values are all
    equal has no spread: its ``t*`` is infinite (its mean is off the sample's) or 0, and it is kept, not
    dropped (dropping would leave only the well-spread resamples and narrow the interval); a spread within the rounding
    of the resampled means (about ``n`` float64 epsilons of the largest value) counts as none. When that makes a
    bound infinite (3 values or fewer, or nearly constant values) the Student t interval is returned instead.
    All values equal: ``(mean, mean)``. The values are sorted first: the interval is a function of the values, not of
    the order of the perturbations they come in (their labels' sort order, which renaming changes, moved a bound by up
    to 15% of the interval's width through which perturbation each resampled index drew).
    """
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    if v.size < 2:
        return math.nan, math.nan
    n, mean = v.size, float(v.mean())
    se = float(v.std(ddof=1)) / math.sqrt(n)
    if v.max() == v.min():
        return mean, mean
    rng = np.random.default_rng(seed)
    resamples = v[rng.integers(0, n, (n_boot, n))]
    dev = resamples.mean(1) - mean
    se_star = resamples.std(1, ddof=1) / math.sqrt(n)
    # no spread: none at all (its float std can be 1e-17, not 0: a t* of 1e16), or one below the rounding of the mean
    # differences ``dev`` (about n float64 epsilons of the largest value): one perturbation at 1e52 and the others 1e-9
    # apart gave resamples without it a se* of 1e-10 against a dev of 1e51, a t* of 1e61 and the bound 1e121
    resolution = 4.0 * n * np.finfo(np.float64).eps * float(np.abs(v).max())
    flat = (resamples.max(1) - resamples.min(1)) <= resolution
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(flat, np.sign(dev) * np.inf, dev / np.where(flat, 1.0, se_star))
        a = (1.0 - level) / 2.0
        t_lo, t_hi = np.quantile(t, a), np.quantile(t, 1.0 - a)  # NaN between an infinity and another: not finite either
    if not (math.isfinite(t_lo) and math.isfinite(t_hi)):
        from scipy.stats import t as student

        q = float(student.ppf(1.0 - a, n - 1))
        return mean - q * se, mean + q * se
    return mean - float(t_hi) * se, mean - float(t_lo) * se


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL,
               bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """Student t interval of the mean of the finite ``values`` (``scipy.stats.t.interval``), cut at ``bounds``.

    The interval that matches a one-sample t-test of the same values: it holds 0 exactly when the test's two-sided p is at
    least ``1 - level``. The sweep tests its per-seed mean differences with that test, so its page draws this interval over
    seeds (the bootstrap interval drawn there before disagreed with the printed p in 3.5-5.8% of sweeps of equal variants
    at 4-8 seeds, about every one where p < 0.05: ``benchmarks/null_claims.py``). ``(nan, nan)`` below 2 values; ``(mean, mean)`` when all are equal.
    """
    from scipy.stats import t as student

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan
    mean = float(v.mean())
    if v.max() == v.min():
        return mean, mean
    half = float(student.ppf(0.5 + level / 2.0, v.size - 1)) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return clip_interval(mean - half, mean + half, bounds)


def mean_interval(values: Sequence[float] | np.ndarray, unit: str = "perturbation", level: float = LEVEL, seed: int = 0,
                  bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """The interval of a mean that goes with the test distgen runs on the same ``values``.

    ``unit="seed"`` (per-seed mean differences of a sweep, tested with a t-test): ``t_interval``. Else (perturbations,
    tested with Wilcoxon): the studentized bootstrap ``bootstrap_ci``.
    """
    if unit == "seed":
        return t_interval(values, level, bounds)
    return bootstrap_ci(values, level=level, seed=seed, bounds=bounds)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` for testing them all (family-wise error rate); NaN stays NaN and is not counted.

    Sorted ascending, the ``i``-th of ``m`` finite p-values becomes ``min(1, max_{j <= i} (m - j) p_(j))`` (0-based ``j``).
    Rejecting where the adjusted p is below ``alpha`` keeps the chance of any false claim among the ``m`` at most ``alpha``,
    whatever their dependence; per-metric p-values at 0.05 over 9 correlated metrics named a false winner in 23-40% of
    comparisons of equally good models (``benchmarks/null_claims.py``).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        m = order.size
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out.tolist()


def normalised_interval(model: Sequence[float], baseline: Sequence[float], ceiling: Sequence[float], n_boot: int = N_BOOT,
                        level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """How sure the normalised score ``(model - baseline) / (ceiling - baseline)`` of the means is, over the perturbations.

    The three are paired per perturbation (the rows where all are finite, ``n``). ``gap_ci``: the studentized interval
    (``bootstrap_ci``) of the mean of ``ceiling - baseline``, the score's scale. When it holds 0 the scale is not told
    apart from noise (a baseline about as good as the replicate): the score divides by noise and can be any size, so
    ``ci`` is NaN and ``stable`` False. Otherwise ``ci`` is the percentile interval of the ratio of means over
    resampled perturbations (the same resampled rows for the three).
    """
    m, b, c = (np.asarray(x, dtype=np.float64) for x in (model, baseline, ceiling))
    ok = np.isfinite(m) & np.isfinite(b) & np.isfinite(c)
    m, b, c = m[ok], b[ok], c[ok]
    out: dict[str, Any] = {"n": int(m.size), "gap": float((c - b).mean()) if m.size else math.nan, "gap_ci": [math.nan, math.nan],
                           "ci": [math.nan, math.nan], "stable": False}
    if m.size < 2:
        return out
    glo, ghi = bootstrap_ci(c - b, n_boot, level, seed)
    out["gap_ci"] = [glo, ghi]
    if not (math.isfinite(glo) and math.isfinite(ghi)) or glo <= 0.0 <= ghi:
        return out
    idx = np.random.default_rng(seed).integers(0, m.size, (n_boot, m.size))
    mb, cb = (m[idx] - b[idx]).mean(1), (c[idx] - b[idx]).mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mb / cb
    ratio = ratio[np.isfinite(ratio)]
    a = (1.0 - level) / 2.0
    if ratio.size:
        out["ci"] = [float(np.quantile(ratio, a)) + 0.0, float(np.quantile(ratio, 1.0 - a)) + 0.0]  # -0.0 read "-0"
        out["stable"] = True
    return out


#: Up to this many nonzero differences with tied magnitudes, scipy (1.13 and later) gives the exact permutation p of the
#: signed-rank statistic by enumerating all 2**n sign patterns one by one (1.6 s at 13; a discrete metric ties often).
#: ``signed_rank`` computes the same distribution by convolution (``tied_exact_p``), in microseconds.
TIED_EXACT_MAX = 13


class SignedRankResult(NamedTuple):
    """``statistic`` (the smaller of the positive and negative rank sums, as scipy reports it) and the two-sided ``pvalue``."""

    statistic: float
    pvalue: float


def tied_exact_p(d: np.ndarray) -> float:
    """Two-sided exact p of the Wilcoxon signed-rank statistic of the nonzero differences ``d`` with average ranks for
    tied magnitudes: ``min(1, 2 min(P(T+ <= t), P(T+ >= t)))`` over the 2**n equally likely sign patterns, as
    ``scipy.stats.permutation_test`` defines it. Ranks are halves at most, so twice the rank sum is an integer whose
    distribution is built one difference at a time (counts stay exact integers in float64 up to 2**53)."""
    from scipy.stats import rankdata

    weights = np.rint(2.0 * rankdata(np.abs(d))).astype(np.int64)
    counts = np.zeros(int(weights.sum()) + 1, dtype=np.float64)
    counts[0] = 1.0
    for w in weights:  # the sign of one difference: its weight is in T+ or not
        counts[w:] = counts[w:] + counts[:-w]  # the right side is evaluated first, from the previous counts
    observed = int(weights[d > 0].sum())
    total = 2.0 ** d.size
    less, greater = counts[: observed + 1].sum() / total, counts[observed:].sum() / total
    return float(min(1.0, 2.0 * min(less, greater)))


def rank_direction(d: np.ndarray) -> int:
    """The side the signed ranks of the nonzero differences ``d`` favour: +1 (positive ranks outweigh), -1, or 0."""
    from scipy.stats import rankdata

    d = np.asarray(d, dtype=np.float64)
    nz = d[d != 0]
    ranks = rankdata(np.abs(nz))
    return int(np.sign(ranks[nz > 0].sum() - ranks[nz < 0].sum()))


def signed_rank(d: np.ndarray) -> Any:
    """``scipy.stats.wilcoxon`` (two-sided) of the differences ``d`` with the zero differences dropped first, which is
    what ``zero_method="wilcox"`` means. Dropped here so that every scipy computes the same p-value: scipy 1.12 turned
    to the normal approximation whenever a zero was present (p = 0.32 for one nonzero difference among four) where
    scipy 1.17 gives the exact p (1.0) of the nonzero ones. Tied magnitudes among at most ``TIED_EXACT_MAX`` nonzero
    differences get the exact permutation p that scipy 1.17 enumerates, computed by ``tied_exact_p`` (the same value)."""
    from scipy.stats import rankdata, wilcoxon

    d = np.asarray(d, dtype=np.float64)
    nz = d[d != 0]
    if 0 < nz.size <= TIED_EXACT_MAX and np.isfinite(nz).all() and np.unique(np.abs(nz)).size < nz.size:
        ranks = rankdata(np.abs(nz))
        plus = float(ranks[nz > 0].sum())
        return SignedRankResult(min(plus, float(ranks.sum()) - plus), tied_exact_p(nz))
    return wilcoxon(nz, alternative="two-sided")
