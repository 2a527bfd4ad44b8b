"""Calibration: score negative baselines and a positive ceiling on the same perturbations as the model.

``baseline_data`` asks a fitted ``PerturbationModel`` (same predict contract as any model) for each
perturbation's cells from real control cells; ``ceiling_data`` splits the real cells into disjoint
halves (one plays the prediction). ``summarise`` puts the model's mean metric next to them, with a
normalised score ``(model - baseline) / (ceiling - baseline)``: 0 = as good as the strongest baseline,
1 = as good as the data agrees with itself, < 0 = worse than the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.io import flag_invalid
from distgen.evaluation.metrics import metrics
from distgen.evaluation.suite import MetricTable
from distgen.models.base import PerturbationModel
from distgen.models.baselines.ceiling import half_split
from distgen.types import ConditionLabels

_BLOCK = 2**24


def baseline_data(data: EvalData, model: PerturbationModel, labels: Callable[[list[str]], ConditionLabels], seed: int = 0) -> EvalData:
    """``EvalData`` whose predictions come from ``model.predict`` on real controls (``n_p`` cells each).

    ``labels(perts)`` maps perturbation labels to ``ConditionLabels`` in the model's vocabulary.
    Controls are drawn without replacement when there are enough, else with replacement; the
    prediction's controls are the real controls (what the model was given).
    """
    gen = torch.Generator().manual_seed(seed)
    ctrl = data.real.control
    counts = data.real.counts.tolist()
    g = ctrl.shape[1]
    out = []
    m_max = max(max(counts), 1)
    step = max(1, _BLOCK // (m_max * g))
    for start in range(0, data.n_perts, step):
        idx = list(range(start, min(start + step, data.n_perts)))
        cells = torch.zeros(len(idx), m_max, g, dtype=ctrl.dtype)
        mask = torch.zeros(len(idx), m_max, dtype=torch.bool)
        for row, p in enumerate(idx):
            n = counts[p]
            pick = torch.randperm(ctrl.shape[0], generator=gen)[:n] if n <= ctrl.shape[0] else torch.randint(ctrl.shape[0], (n,), generator=gen)
            cells[row, :n], mask[row, :n] = ctrl[pick], True
        with torch.no_grad():
            pred = torch.as_tensor(model.predict(cells, mask, labels([data.perts[p] for p in idx])))
        out += [pred[row, : counts[p]].to(ctrl.dtype) for row, p in enumerate(idx)]
    X = torch.cat(out) if out else ctrl[:0]
    new = EvalData(real=data.real, pred=Population(X, data.real.offsets.clone(), ctrl), perts=data.perts, targets=data.targets,
                   genes=data.genes, cache={k: v for k, v in data.cache.items() if k.endswith("/real") or k in ("log1p",)})
    flag_invalid(new)
    return new


def ceiling_data(data: EvalData, seed: int = 0) -> EvalData:
    """``EvalData`` of one disjoint half of the real cells (as "real") against the other (as "pred")."""
    gen = torch.Generator().manual_seed(seed)
    pop = data.real
    X = torch.cat([pop.control, pop.X])
    codes = torch.cat([torch.full((pop.control.shape[0],), -1, dtype=torch.long), pop.codes()])
    a, b = half_split(codes, gen)
    if not bool((codes[a] == -1).any()):
        raise ValueError("the ceiling needs at least 2 real control cells to split")
    halves = [Population.from_codes(X[i], codes[i], data.n_perts) for i in (a, b)]
    new = EvalData(real=halves[0], pred=halves[1], perts=data.perts, targets=data.targets, genes=data.genes,
                   cache={"log1p": data.cache.get("log1p", True)})
    flag_invalid(new)
    return new


def normalised(model: float, baseline: float, ceiling: float) -> tuple[float, str]:
    """``(model - baseline) / (ceiling - baseline)`` and, when undefined, NaN with the reason."""
    if any(math.isnan(v) for v in (model, baseline, ceiling)):
        return float("nan"), "model, baseline or ceiling undefined"
    if abs(ceiling - baseline) < 1e-12:
        return float("nan"), "ceiling equals the baseline"
    return (model - baseline) / (ceiling - baseline), ""


def summarise(model: MetricTable, baselines: Mapping[str, MetricTable], ceiling: MetricTable | None) -> dict[str, dict[str, Any]]:
    """Per metric: model mean, each baseline's mean, ceiling mean, strongest baseline, normalised score."""
    out: dict[str, dict[str, Any]] = {}
    for name in model.values:
        hib = metrics.get(name).capabilities.higher_is_better
        base = {b: t.mean(name) for b, t in baselines.items() if name in t.values}
        ceil = ceiling.mean(name) if ceiling is not None and name in ceiling.values else float("nan")
        finite = {b: v for b, v in base.items() if not math.isnan(v)}
        best = (max if hib else min)(finite, key=finite.__getitem__) if finite else None
        score, why = normalised(model.mean(name), finite[best], ceil) if best else (float("nan"), "no baseline")
        if best and not why and ((ceil <= finite[best]) if hib else (ceil >= finite[best])):
            score, why = float("nan"), f"ceiling is not better than the {best} baseline"
        nan_model = sum(math.isnan(v) for v in model.values[name])
        out[name] = {
            "higher_is_better": bool(hib),
            "celleval": metrics.get(name).capabilities.celleval,
            "model": model.mean(name),
            "n_nan": nan_model,
            "baselines": base,
            "ceiling": ceil,
            "strongest_baseline": best,
            "normalised": score,
            "normalised_note": why,
        }
    return out
