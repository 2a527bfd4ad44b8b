"""Calibration: score negative baselines and a positive ceiling on the same perturbations as the model.

``reference_data`` scores a reference (a baseline's predictions of the same held-out groups, made
by the pipeline from the same data) against the truth; ``ceiling_data`` splits the real cells into
disjoint halves (one plays the prediction). ``summarise`` puts the model's mean metric next to them, with a
normalised score ``(model - baseline) / (ceiling - baseline)``: 0 = as good as the strongest baseline,
1 = as good as one half of the data agrees with the other (a perfect model, as deep as the truth, scores
above 1: ``docs/metrics.md``), < 0 = worse than the baseline. ``replicate="extrapolated"``
(``shared_control_data``, ``extrapolated_table``) extrapolates halves and quarters to the truth's depth instead,
where a perfect model scores about 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from distgen.evaluation.ceiling import half_split, split_parts
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.io import MIN_CELLS, eval_data, flag_invalid
from distgen.evaluation.metrics import metrics
from distgen.evaluation.suite import MetricTable
from distgen.seeds import content_keys, content_order
from distgen.types import Cells


def reference_data(data: EvalData, reference: Cells, truth: Cells) -> EvalData:
    """``EvalData`` of a reference (a baseline's predictions of ``truth``'s groups) against the truth of ``data``.

    ``data`` is the model's ``EvalData`` of the same ``truth``: the real side and its cached
    statistics (means, DE tables) are shared, so they are computed once.
    """
    ref = eval_data(reference, truth, "pred", real=data.real)
    new = EvalData(real=data.real, pred=ref.pred, perts=data.perts, targets=data.targets, genes=data.genes,
                   cache=real_side_cache(data))
    flag_invalid(new)
    return new


def real_side_cache(data: EvalData) -> dict[str, Any]:
    """What of ``data``'s cache another prediction of the same real cells may reuse: the results of the real side alone
    (keys ending in ``/real``) and the log flag. Every other result is dropped, whatever its key: cell-eval2's prepared DE
    (``ce2/de/...``) and profiles (``ce2/profiles/...``) hold both sides under one key."""
    return {k: v for k, v in data.cache.items() if k.endswith("/real") or k == "log1p"}


#: The label the control cells are split under (``half_split``); no perturbation label holds a control character.
CONTROL_KEY = "\x00control"


def ceiling_data(data: EvalData, seed: int = 0) -> EvalData:
    """``EvalData`` of one disjoint half of the real cells (as "real") against the other (as "pred").

    Each perturbation's cells (and the controls) are halved under a seed from ``seed`` and its label, in
    ``content_order``: its halves do not depend on the other perturbations, nor on the files' row or gene order.

    A perturbation with fewer than ``2 * MIN_CELLS`` real cells has no ceiling (NaN, with the reason in
    ``invalid``); with fewer than ``2 * MIN_CELLS`` real control cells no perturbation has one: each half
    would take every delta from the mean of one control cell, which the evaluation itself refuses.
    """
    pop = data.real
    n_ctrl = int(pop.control.shape[0])
    codes = torch.cat([torch.full((n_ctrl,), -1, dtype=torch.long), pop.codes()])  # the rows of [control; X], never built
    if "content_order/real" not in data.cache:  # the same for every split of these cells
        data.cache["content_order/real"] = _stacked_order(pop, data.genes)
    labels = {-1: CONTROL_KEY, **dict(enumerate(data.perts))}
    a, b = half_split(codes, seed, labels, data.cache["content_order/real"])
    if not bool((codes[a] == -1).any()):
        raise ValueError("the ceiling needs at least 2 real control cells to split")
    halves = [_gather(pop, rows, codes[rows], data.n_perts) for rows in (a, b)]
    new = EvalData(real=halves[0], pred=halves[1], perts=data.perts, targets=data.targets, genes=data.genes,
                   cache={"log1p": data.cache.get("log1p", True)})
    n_ctrl = int(pop.control.shape[0])
    for p, n in enumerate(pop.counts.tolist()):  # the reason names the split, not the half it left
        if n_ctrl < 2 * MIN_CELLS:  # each half's deltas are taken from its own control mean: one cell is its noise
            new.invalid[p] = (f"{n_ctrl} real control cells: a half-split leaves {n_ctrl // 2} per half; the ceiling needs at least "
                              f"{2 * MIN_CELLS} real control cells ({MIN_CELLS} per half, as the evaluation needs {MIN_CELLS})")
        elif 0 < n < 2 * MIN_CELLS:
            new.invalid[p] = (f"{n} real cell(s): a half-split leaves {n // 2} per half; the ceiling needs at least "
                              f"{2 * MIN_CELLS} real cells ({MIN_CELLS} per half)")
    flag_invalid(new)
    return new


def _stacked_order(pop: Population, genes: tuple[str, ...]) -> torch.Tensor:
    """``content_order`` of the rows ``[control; X]`` of ``pop`` without stacking them: a row's key is its own
    (``content_keys``), so the keys of the two blocks one after the other rank exactly as those of the stacked table."""
    keys = np.concatenate([content_keys(pop.control, genes), content_keys(pop.X, genes)])
    order = np.argsort(keys, kind="stable")  # as content_order ranks them
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return torch.from_numpy(ranks)


def _take(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[rows]``; on the CPU through numpy's row gather (as ``Population.from_codes``: ~10x torch's on one thread)."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        return torch.from_numpy(x.numpy().take(rows.numpy(), axis=0))
    return x[rows.to(x.device)]


def _gather(pop: Population, rows: torch.Tensor, codes: torch.Tensor, n_perts: int, control: torch.Tensor | None = None) -> Population:
    """``Population.from_codes([control; X][rows], codes)`` of ``pop``'s stacked rows ``[control; X]``, without stacking
    them or copying the gathered rows a second time: ``rows`` come grouped (``split_parts`` returns the controls first,
    then each perturbation in turn), so the grouping keeps their order and the two blocks are gathered once each, the
    same values in the same order. ``control``: the control cells to use as they are (``rows`` then holds none)."""
    if codes.numel() > 1 and not bool((codes[1:] >= codes[:-1]).all()):  # not grouped: the general path
        stacked = torch.cat([pop.control, pop.X])
        return Population.from_codes(stacked[rows] if control is None else torch.cat([control, stacked[rows]]),
                                     codes if control is None else torch.cat([torch.full((control.shape[0],), -1, dtype=torch.long), codes]),
                                     n_perts)
    n_ctrl, k = int(pop.control.shape[0]), int((codes == -1).sum())
    offsets = torch.zeros(n_perts + 1, dtype=torch.long, device=codes.device)
    offsets[1:] = torch.cumsum(torch.bincount(codes[k:], minlength=n_perts), 0)
    X = _take(pop.X, rows[k:] - n_ctrl)
    if control is None:
        control = _take(pop.control, rows[:k])
    return Population(X=X, offsets=offsets, control=control)


#: The replicates the ceiling can be: ``half-split`` (one half of the real cells scored against the other, each
#: half with its own controls; cell-eval's and distgen's default) and ``extrapolated`` (``extrapolated_tables``).
REPLICATES = ("half-split", "extrapolated")


def shared_control_data(data: EvalData, seed: int, parts: int) -> EvalData:
    """``EvalData`` of part 1 of ``parts`` disjoint parts of every perturbation's real cells (as "pred") against part 0
    (as "real"), BOTH sides with all the real control cells, as a model's prediction is scored with the truth's controls.

    The parts are ``floor(n / parts)`` cells of each perturbation (``ceiling.split_parts``, in ``content_order``,
    seeded by ``seed`` and the label, as ``ceiling_data``); a perturbation with fewer than ``parts * MIN_CELLS`` real
    cells is NaN with the reason.
    """
    pop = data.real
    codes = pop.codes()
    if "content_order/perturbed" not in data.cache:  # the same for every split of these cells
        data.cache["content_order/perturbed"] = content_order(pop.X, data.genes)
    p0, p1 = split_parts(codes, seed, parts, dict(enumerate(data.perts)), data.cache["content_order/perturbed"])[:2]
    n_ctrl = int(pop.control.shape[0])

    def side(rows: torch.Tensor) -> Population:  # all the controls, shared (read only), and the part's rows
        return _gather(pop, rows + n_ctrl, codes[rows], data.n_perts, control=pop.control)

    new = EvalData(real=side(p0), pred=side(p1), perts=data.perts, targets=data.targets, genes=data.genes,
                   cache={"log1p": data.cache.get("log1p", True)})
    what = "a half-split" if parts == 2 else f"a split into {parts} parts"
    for p, n in enumerate(pop.counts.tolist()):
        if 0 < n < parts * MIN_CELLS:
            new.invalid[p] = (f"{n} real cell(s): {what} leaves {n // parts} per part; the extrapolated replicate needs at least "
                              f"{4 * MIN_CELLS} real cells ({MIN_CELLS} per quarter)")
    flag_invalid(new)
    return new


def extrapolated_table(half: MetricTable, quarter: MetricTable, n_cells: Sequence[int]) -> MetricTable:
    """The replicate extrapolated to the truth's full depth, per perturbation and metric, from halves and quarters.

    ``H`` (``half``) compares two disjoint halves of a perturbation's ``n`` real cells (``floor(n / 2)`` a side) and
    ``Q`` (``quarter``) two disjoint quarters (``floor(n / 4)``), both sides with all the real controls
    (``shared_control_data``). A score whose expectation is ``a + c h`` with ``h = 1 / k`` at ``k`` cells a side
    (every mean-squared error of pseudobulks, the E-distance and MMD estimators: the noise of a mean of ``k`` cells
    has covariance ``Sigma / k``) is extrapolated along that line to ``h = 1 / n`` (Richardson extrapolation):
    ``H + w (H - Q)``, ``w = (1/floor(n/2) - 1/n) / (1/floor(n/4) - 1/floor(n/2))``, i.e. ``(3 H - Q) / 2`` when 4
    divides ``n``: what ``n`` fresh cells of the same population (a perfect model, as deep as the truth) score, in
    expectation. For a correlation, a rank or a count the dependence on ``k`` is not linear in ``1 / k`` and the value
    is an approximation (``docs/metrics.md``, "Calibration of the statistics", measures how close); it is not clipped
    to the metric's range (a correlation can come out slightly above 1). ``n_cells``: each perturbation's real cells.
    """
    weights = []
    for n in n_cells:
        h, q = n // 2, n // 4
        weights.append((1.0 / h - 1.0 / n) / (1.0 / q - 1.0 / h) if q > 0 and h > q else math.nan)
    values = {}
    for name, hv in half.values.items():
        values[name] = [a + w * (a - b) for a, b, w in zip(hv, quarter.values[name], weights)]
    reasons = {name: {**half.reasons.get(name, {}), **quarter.reasons.get(name, {})} for name in half.values}
    return MetricTable(perts=half.perts, values=values, reasons=reasons, info=half.info)


#: Default weight of the duplicate in the interpolated duplicate (0.5: half way to the mean baseline).
INTERPOLATION_ALPHA = 0.5


def interpolated_duplicate_data(data: EvalData, seed: int = 0, alpha: float = INTERPOLATION_ALPHA) -> EvalData:
    """``EvalData`` of the interpolated duplicate: a positive reference between the replicate and the mean baseline.

    The real cells are split as by ``ceiling_data`` (same seed, same disjoint halves). Half ``a`` plays
    "real"; each perturbation ``p``'s cells of half ``b`` (the duplicate) are shifted by
    ``(1 - alpha) * (m - mean_b[p])``, ``m`` the mean of all perturbed cells of half ``b`` (the
    non-control mean), so its pseudobulk is ``alpha * mean_b[p] + (1 - alpha) * m`` and its cell spread
    is the duplicate's. Control cells are not shifted. distgen's definition, after Miller et al. 2025
    (see ``docs/metrics.md``).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolation alpha must be in [0, 1], got {alpha}")
    half = ceiling_data(data, seed)
    dup = half.pred
    X64 = dup.X.to(torch.float64)
    pooled = X64.mean(0, keepdim=True)
    means = dup.means()
    shift = (1.0 - alpha) * (pooled - means)
    X = (X64 + shift[dup.codes()]).to(dup.X.dtype)
    half.pred = Population(X=X, offsets=dup.offsets, control=dup.control)
    half.cache = real_side_cache(half)  # a result cached of the half's prediction (under any key) is not the duplicate's
    return half


#: ``|ceiling - baseline|`` at most this fraction of ``max(|ceiling|, |baseline|)`` is rounding, not a scale (as
#: ``vcc2026.ROUNDING_TOLERANCE``): aggregates are float64 means whose last bits depend on the order of the sums, and a
#: fixed absolute gap (1e-12) is rounding for a metric in the thousands (an E-distance, a count of genes).
SCALE_TOLERANCE = 1e-12


def same_scale(a: float, b: float) -> bool:
    """``a`` and ``b`` are equal up to floating-point rounding (``SCALE_TOLERANCE`` relative to the larger)."""
    return abs(a - b) <= SCALE_TOLERANCE * max(abs(a), abs(b), 1.0)


def normalised(model: float, baseline: float, ceiling: float) -> tuple[float, str]:
    """``(model - baseline) / (ceiling - baseline)`` and, when undefined, NaN with the reason."""
    for what, v in (("model", model), ("baseline", baseline), ("ceiling", ceiling)):
        if math.isnan(v):
            return float("nan"), f"{what} score undefined"
    if same_scale(ceiling, baseline):
        return float("nan"), f"the ceiling equals the baseline up to rounding ({ceiling!r} vs {baseline!r}): no range to scale by"
    # + 0.0: a model equal to the baseline on a lower-is-better metric is 0 / negative = -0.0, printed "-0" (worse)
    return (model - baseline) / (ceiling - baseline) + 0.0, ""


def why_undefined(table: MetricTable | None, name: str) -> str:
    """The most common reason a metric is NaN in ``table`` (empty when it is defined somewhere); of reasons given equally
    often, the first in the table's order (not a set's, which follows the strings' hashes and changes between processes)."""
    if table is None or name not in table.values:
        return "not computed"
    if not all(math.isnan(v) for v in table.values[name]):
        return ""
    reasons = list(table.reasons.get(name, {}).values())
    return max(dict.fromkeys(reasons), key=reasons.count) if reasons else "no perturbations"


def _common_rows(name: str, model: MetricTable, baseline: MetricTable, ceiling: MetricTable) -> tuple[list[str], dict[str, str]]:
    """Perturbations (labels) where the model, ``baseline`` and ``ceiling`` all define ``name``; each other one the model defines, and why it is out."""
    at = {k: dict(zip(t.perts, t.values[name])) for k, t in (("model", model), ("baseline", baseline), ("ceiling", ceiling))}
    ok, out = [], {}
    for p in model.perts:
        vals = {k: at[k].get(p, float("nan")) for k in at}
        if not any(math.isnan(v) for v in vals.values()):
            ok.append(p)
        elif not math.isnan(vals["model"]):
            side, table = next((k, t) for k, t in (("baseline", baseline), ("ceiling", ceiling)) if math.isnan(vals[k]))
            out[p] = f"{side}: {table.reasons.get(name, {}).get(p, 'not scored' if p not in at[side] else 'undefined')}"
    return ok, out


def _mean_at(table: MetricTable, name: str, rows: list[str]) -> float:
    at = dict(zip(table.perts, table.values[name]))
    return sum(at[p] for p in rows) / len(rows) if rows else float("nan")


def summarise(model: MetricTable, baselines: Mapping[str, MetricTable], ceiling: MetricTable | None) -> dict[str, dict[str, Any]]:
    """Per metric: model mean, each baseline's mean, ceiling mean, strongest baseline, normalised score (with why it is NaN).

    The normalised score is taken over the perturbations where the model, the strongest baseline and the
    ceiling are all defined, so that its three means are of the same perturbations (a perturbation with
    too few real cells for a half-split has no ceiling: with it in the model's mean only, the score would
    compare different sets). When that leaves out perturbations the model scored, ``normalised_rows``
    gives the three means it used, their number and each left-out perturbation with the reason.
    ``baseline_notes`` (``{baseline: reason}``) says why a baseline's mean is NaN, when one is; ``model_note`` and
    ``ceiling_note`` say why the model's or the ceiling's mean is, when it is.
    A diagnostic metric (``MetricCapabilities.diagnostic``: no better direction) gets no strongest
    baseline and no normalised score.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in model.values:
        caps = metrics.get(name).capabilities
        hib = caps.higher_is_better
        base = {b: t.mean(name) for b, t in baselines.items() if name in t.values}
        ceil = ceiling.mean(name) if ceiling is not None and name in ceiling.values else float("nan")
        finite = {b: v for b, v in base.items() if not math.isnan(v)}
        best = (max if hib else min)(finite, key=finite.__getitem__) if finite and not caps.diagnostic else None
        common: dict[str, Any] | None = None
        if best and ceiling is not None and name in ceiling.values:
            rows, left_out = _common_rows(name, model, baselines[best], ceiling)
            m, b, c = (_mean_at(t, name, rows) for t in (model, baselines[best], ceiling))
            if left_out:
                common = {"n": len(rows), "model": m, "baseline": b, "ceiling": c, "left_out": left_out}
        else:
            m, b, c = model.mean(name), finite[best] if best else float("nan"), ceil
        score, why = normalised(m, b, c) if best else (float("nan"), "no baseline")
        if caps.diagnostic:
            why = "a diagnostic quantity, not a score: it has no better direction"
        elif math.isnan(model.mean(name)):
            why = f"model score undefined ({why_undefined(model, name)})"
        elif best is None and baselines:
            why = f"no baseline score defined ({why_undefined(next(iter(baselines.values())), name)})"
        elif math.isnan(ceil):
            why = "ceiling undefined (" + (why_undefined(ceiling, name) if ceiling is not None else "not computed") + ")"
            score = float("nan")
        elif why == "model score undefined" and common is not None:
            why = "no perturbation where the model, the strongest baseline and the ceiling are all defined"
        if best and not why and ((c <= b) if hib else (c >= b)):
            score, why = float("nan"), f"the strongest baseline ({best}: {b:.4g}) is at or beyond the ceiling ({c:.4g})"
        nan_model = sum(math.isnan(v) for v in model.values[name])
        out[name] = {
            "higher_is_better": bool(hib),
            "diagnostic": bool(caps.diagnostic),
            "celleval": caps.celleval,
            "model": model.mean(name),
            "n_nan": nan_model,
            "baselines": base,
            "ceiling": ceil,
            "strongest_baseline": best,
            "normalised": score,
            "normalised_note": why,
        }
        if common is not None:
            out[name]["normalised_rows"] = common
        if math.isnan(out[name]["model"]):  # each undefined mean carries its own reason (the normalised note gives only the first)
            out[name]["model_note"] = why_undefined(model, name)
        if math.isnan(ceil):
            out[name]["ceiling_note"] = why_undefined(ceiling, name) if ceiling is not None else "not computed"
        undefined = {b: why_undefined(t, name) for b, t in baselines.items() if name in t.values and math.isnan(base[b])}
        if undefined:  # a baseline's NaN mean is shown next to the model's: with the reason, not as a bare nan
            out[name]["baseline_notes"] = undefined
    return out
