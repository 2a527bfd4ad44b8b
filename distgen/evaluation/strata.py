"""Difficulty strata: per-perturbation results grouped by response strength and baseline saturation.

* ``response_strength``: per perturbation, the Euclidean distance between the real pseudobulk mean
  and the real control mean (how far the real response is from control).
* ``saturation``: per perturbation, the fraction of the control-to-ceiling range a baseline already
  covers, ``(b - c) / (r - c)`` with ``b`` the baseline's score, ``c`` the ``control`` (no change)
  baseline's and ``r`` the ceiling's (NaN when a value is missing, when ``r == c`` up to rounding, or when
  the ceiling is not better than the control baseline: there is no range from "no change" up to the
  replicate to place the baseline in). 1 = as good as the replicate, 0 = no better than predicting no
  change. The sign convention makes it valid for error metrics (lower is better) and agreement metrics
  alike, as long as ``r`` is on the good side of ``c``: where it is not (a weak response, whose noisy
  half-split replicate scores worse than "no change"), the ratio of two negative gaps would call a baseline
  worse than no change "near-solved".
* ``by_quantile``: rows of (stratum, range, n, model mean, baseline mean) over quantile bins of a key
  (``quantile_bins``, the rule the report page's difficulty table uses too).
* ``stratify``: both stratifications of one metric, plus the fraction of perturbations whose
  saturation is at least ``NEAR_SOLVED`` ("near-solved" by the baseline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from distgen.evaluation.calibration import same_scale
from distgen.evaluation.evaldata import EvalData
from distgen.wording import counted

#: Saturation at or above which a perturbation counts as near-solved by the baseline.
NEAR_SOLVED = 0.8
#: Number of quantile bins (tertiles).
N_STRATA = 3


def response_strength(data: EvalData) -> list[float]:
    """Per perturbation of ``data``: ``||mean(real cells) - mean(real controls)||_2`` (NaN without cells)."""
    means = data.real.means().numpy()
    ctrl = data.real.control.double().mean(0).numpy()
    return [float(v) for v in np.linalg.norm(means - ctrl[None], axis=1)]


def saturation(baseline: Sequence[float], control: Sequence[float], ceiling: Sequence[float],
               higher_is_better: bool | None = None) -> list[float]:
    """Per perturbation ``(b - c) / (r - c)``; NaN where a value is NaN, ``r == c`` up to rounding (``calibration.same_scale``)
    or, given the metric's direction, the ceiling ``r`` is not better than the control baseline ``c``."""
    out = []
    for b, c, r in zip(baseline, control, ceiling):
        no_range = higher_is_better is not None and ((r < c) if higher_is_better else (r > c))  # ceiling not better than control
        if any(math.isnan(v) for v in (b, c, r)) or same_scale(r, c) or no_range:
            out.append(float("nan"))
        else:
            out.append((b - c) / (r - c))
    return out


def quantile_bins(key: Sequence[float] | np.ndarray, n_bins: int = N_STRATA) -> tuple[np.ndarray, np.ndarray]:
    """``(edges [n_bins + 1], bins [N])``: the quantile edges of ``key``'s finite values and each value's bin ``0..n_bins-1``
    (``edges[i] <= value < edges[i + 1]``, the top edge in the last bin; equal values share a bin; a NaN key's bin is
    meaningless, leave it out). The one rule for difficulty strata: ``by_quantile`` (``summary.md``) and the report
    page's difficulty table (``report.stats.strata``) both cut here, so a condition is in the same stratum in both (8
    conditions: 3/2/3; the page had cut by rank, 3/3/2). Needs at least one finite value.

    Equal values across an edge: a value that two or more edges fall on (6 of 8 conditions with one strength put both
    tertile edges on it) takes the lowest of those edges' bins, so the values above it stay above it; the bins between
    are empty. Before, it took the highest (all 8 in the strongest third, 6 of them the weakest). A value on the top edge
    (the largest, nothing above it) stays in the last bin. ``tie_note`` says when a bin is empty; ``by_quantile`` and
    the page leave empty bins out."""
    k = np.asarray(key, dtype=float)
    edges = np.quantile(k[np.isfinite(k)], np.linspace(0, 1, n_bins + 1))
    bins = np.searchsorted(edges, k, side="right") - 1
    lo = np.searchsorted(edges, k, side="left")
    on_many = (bins - lo >= 1) & (bins < n_bins)  # the value equals two or more edges (edges[lo] .. edges[bins]), not the top
    bins = np.where(on_many, lo, bins)
    return edges, np.clip(bins, 0, n_bins - 1)


def tie_note(key: Sequence[float] | np.ndarray, n_bins: int = N_STRATA, what: str = "value", noun: str = "condition") -> str:
    """A sentence when some of ``quantile_bins``'s ``n_bins`` bins of ``key``'s finite values are empty, else ``""``: how
    many bins hold values and why: the largest group of equal values that several edges fall on (they stay in one bin),
    or fewer values than bins (one or two conditions: no tie)."""
    k = np.asarray(key, dtype=float)
    k = k[np.isfinite(k)]
    if not k.size:
        return ""
    edges, bins = quantile_bins(k, n_bins)
    held = np.unique(bins).size
    if held == n_bins:
        return ""
    shown = f"{held} of {n_bins} strata hold {noun}s (the empty ones are not shown)"
    values, counts = np.unique(k, return_counts=True)
    tied = [(int(c), float(v)) for v, c in zip(values, counts) if c > 1 and int(np.sum(edges == v)) >= 2]
    if not tied:
        return f"{counted(k.size, noun)} for {n_bins} strata, so {shown}"
    n, value = max(tied)
    return f"{n} {noun}s share the {what} {value:g}, and equal {what}s stay in one stratum, so {shown}"


def by_quantile(key: Sequence[float], model: Sequence[float], baseline: Sequence[float], n_bins: int = N_STRATA) -> list[dict[str, Any]]:
    """Rows per quantile bin of ``key`` (perturbations with a NaN key dropped): range, n, model and baseline means; a bin
    left empty by equal values at an edge has no row (``tie_note`` says so). The range (``low``, ``high``) is the
    smallest and largest key the bin holds, so it holds exactly the bin's own values: the quantile edges, printed before,
    began the bin above a tie at the tied value it does not hold (``[1, 2, 2, 2, 2, 2, 2, 9]``: 2..9 for the top third,
    which holds 9 alone) and closed every bin at the next one's first value."""
    k = np.asarray(key, dtype=float)
    m = np.asarray(model, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if not (k.shape == m.shape == b.shape):
        raise ValueError(f"key, model and baseline must have the same length, got {k.shape}, {m.shape}, {b.shape}")
    ok = np.isfinite(k)
    if not ok.any():
        return []
    _, bins = quantile_bins(k, n_bins)
    rows = []
    for i in range(n_bins):
        sel = ok & (bins == i)
        if not sel.any():
            continue
        rows.append({
            "stratum": i + 1,
            "low": float(k[sel].min()),
            "high": float(k[sel].max()),
            "n": int(sel.sum()),
            "model": _nanmean(m[sel]),
            "baseline": _nanmean(b[sel]),
        })
    return rows


def stratify(model: Sequence[float], baseline: Sequence[float], control: Sequence[float] | None, ceiling: Sequence[float] | None,
             strength: Sequence[float], n_bins: int = N_STRATA, threshold: float = NEAR_SOLVED,
             higher_is_better: bool | None = None) -> dict[str, Any]:
    """One metric's difficulty strata (see the module docstring); ``higher_is_better``: the metric's direction
    (``saturation`` is then NaN where the ceiling is not better than the control baseline, counted in ``note``)."""
    out: dict[str, Any] = {"by_response": by_quantile(strength, model, baseline, n_bins), "near_solved_threshold": threshold}
    notes = [f"by response strength: {t}" for t in [tie_note(strength, n_bins, "strength", "perturbation")] if t]
    if control is None or ceiling is None:
        out.update(by_saturation=[], near_solved_fraction=float("nan"),
                   note="; ".join([*notes, "saturation needs the control baseline and the ceiling"]))
        return out
    sat = saturation(baseline, control, ceiling, higher_is_better)
    finite = [s for s in sat if not math.isnan(s)]
    if higher_is_better is not None:
        below = sum(1 for c, r in zip(control, ceiling) if not (math.isnan(c) or math.isnan(r) or same_scale(r, c))
                    and ((r < c) if higher_is_better else (r > c)))
        if below:
            notes.append(f"{below} perturbation(s) whose ceiling is not better than the control baseline (a response too weak "
                           "for the half-split replicate to beat 'no change') have no saturation")
    out["by_saturation"] = by_quantile(sat, model, baseline, n_bins)
    notes += [f"by saturation: {t}" for t in [tie_note(sat, n_bins, "saturation", "perturbation")] if t]
    if notes:
        out["note"] = "; ".join(notes)
    out["near_solved_fraction"] = sum(s >= threshold for s in finite) / len(finite) if finite else float("nan")
    out["n_saturation"] = len(finite)
    return out


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")
