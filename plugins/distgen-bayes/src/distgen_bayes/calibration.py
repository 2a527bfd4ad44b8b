"""Calibration of predicted population means on replicates held out one at a time.

For each batch (replicate) in turn, fit on the other batches and predict the population mean of
every condition of the held-out one as a *new* replicate; report how often the central ``level``
posterior predictive interval covers the observed mean (per gene), and the interval width.
Because all populations of one replicate share its hidden factor, coverage of a single held-out
replicate is noisy: the figure that means something is the average over many held-out replicates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from distgen.types import CellTable, ConditionLabels
from distgen_bayes.populations import summarise


def held_out_coverage(model: Any, held_out: CellTable, level: float = 0.9, min_cells: int = 2) -> dict[str, Any]:
    """Coverage of a fitted model's ``level`` intervals for the population means of ``held_out`` cells.

    Returns ``{"coverage", "width", "abs_error", "n_populations", "per_population"}``, where
    ``coverage`` is the fraction of (population, gene) means inside their interval.
    """
    pops = summarise(held_out.X, held_out.labels, min_cells)
    labels = ConditionLabels.make([list(s) for s in pops.atoms], context=pops.context, batch=pops.batch)
    iv = model.population_mean_intervals(labels, level, n_cells=pops.count, new_replicate=True)
    obs = pops.mean.to(iv["mean"].dtype)
    inside = ((obs >= iv["lower"]) & (obs <= iv["upper"])).double()
    return {
        "coverage": float(inside.mean()),
        "width": float((iv["upper"] - iv["lower"]).mean()),
        "abs_error": float((iv["mean"] - obs).abs().mean()),
        "n_populations": len(pops),
        "per_population": inside.mean(1).tolist(),
    }


def leave_one_replicate_out(
    make_model: Callable[[], Any],
    table: CellTable,
    level: float = 0.9,
    batches: Sequence[int] | None = None,
    fit_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``make_model()`` without each batch in turn and score intervals on the held-out batch.

    Returns the pooled ``coverage`` and ``width`` (averaged over folds) and the per-fold results.
    """
    batches = sorted(set(table.labels.batch.tolist())) if batches is None else list(batches)
    if len(batches) < 2 and len(set(table.labels.batch.tolist())) < 3:
        raise ValueError("leave-one-replicate-out needs at least 3 batches (replicates) in the table")
    folds = []
    for b in batches:
        test = table.labels.batch == b
        model = make_model().fit(table.subset(torch.nonzero(~test).squeeze(1)), **(fit_kwargs or {}))
        res = held_out_coverage(model, table.subset(torch.nonzero(test).squeeze(1)), level)
        folds.append({"batch": int(b), **res, "diagnostics": {k: v for k, v in model.diagnostics.items() if k != "elbo_trace"}})
    return {
        "level": level,
        "coverage": sum(f["coverage"] for f in folds) / len(folds),
        "width": sum(f["width"] for f in folds) / len(folds),
        "abs_error": sum(f["abs_error"] for f in folds) / len(folds),
        "folds": folds,
    }
