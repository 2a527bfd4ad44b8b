"""Predictions and truths of a run in raw counts (``distgen predict --counts MODEL``, ``evaluate: {counts: MODEL}``).

The math is ``distgen.data.counts``; this module decides which library size each row gets:

* a generated cell of group ``g``: a size drawn (with replacement, seeded by ``seed`` and the group's labels: ``group_seed``) from the
  library sizes of the control cells that group was generated from (its context's pool), then
  counts from the observation model (``round``, ``poisson`` or ``nb``, NB dispersions fitted on the
  training cells of the run, at most ``MAX_FIT_CELLS`` of them drawn in the order of their values, with the run's
  ``train.seed`` whatever seed the prediction samples with: ``fit_seed``);
* a real cell (the control rows of a prediction, every row of the truth): its own recorded size,
  rounded, which gives back its original counts exactly when the data was loaded from raw counts.

Rows are in the layout of ``distgen.pipeline.predict.predict`` / ``Dataset.truth``: each group's
cells in ``Dataset.groups(part)`` order, then the control pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from distgen.data import counts as C
from distgen.data.count_fit import MAX_FIT_CELLS, counts_target_sum, dataset_sizes, fit_run_dispersion, pair_groups
from distgen.data.groups import group_seed
from distgen.data.prepared import Dataset
from distgen.types import Cells
from distgen.wording import counted

__all__ = ["MAX_FIT_CELLS", "counts_target_sum", "dataset_sizes", "fit_run_dispersion", "pair_groups", "prediction_counts",
           "truth_counts"]


def prediction_counts(dataset: Dataset, pred: Cells, part: str = "test", model: str = "round", seed: int = 0,
                      fit_seed: int | None = None) -> tuple[Cells, list[str]]:
    """``pred`` (``predict(model, dataset, part)``'s output) in raw counts, and notes on how the sizes were chosen.

    ``seed`` draws the sizes and counts; ``fit_seed`` (default ``seed``) the training cells the NB dispersions are fitted
    on beyond ``MAX_FIT_CELLS``: the run's ``train.seed``, so that its dispersions are the ones its data record holds."""
    C.check_model(model)
    groups = dataset.groups(part)
    pool = dataset.control_pool(groups)
    n = [len(g.cells) for g in groups]
    if len(pred) != sum(n) + len(pool):
        raise ValueError(f"the prediction has {counted(len(pred), 'row')} but split part {part!r} has {counted(sum(n), 'group cell')} and "
                         f"{counted(len(pool), 'control')}; "
                         "convert the output of predict(model, dataset, part) with the same part")
    target_sum, notes = counts_target_sum(dataset)
    sizes, source = dataset_sizes(dataset)
    theta = fit_run_dispersion(dataset, pred, sizes, seed if fit_seed is None else fit_seed) if model == "nb" else None
    x = pred.X.numpy()
    out = np.empty(x.shape, dtype=np.float32)
    start = 0
    for g, k in zip(groups, n):
        rng = np.random.default_rng(group_seed(seed, g.condition, g.context, g.batch, 2))
        size = C.draw_sizes(sizes[g.controls], k, rng)
        out[start:start + k] = C.to_counts(x[start:start + k], size, target_sum, model, theta, rng)
        start += k
    out[start:] = _stored(dataset, C.to_counts(x[start:], sizes[pool], target_sum, "round"), pool, pred.genes)
    notes += [f"counts ({model}): library sizes from {source}; generated cells draw theirs from their group's control pool"]
    return _with_x(pred, out), notes


def truth_counts(dataset: Dataset, truth: Cells, part: str = "test") -> Cells:
    """``Dataset.truth(part)`` (possibly on a gene panel) in raw counts: every real cell at its own library size, rounded."""
    groups = dataset.groups(part)
    rows = np.concatenate([*(g.cells for g in groups), dataset.control_pool(groups)])
    if len(rows) != len(truth):
        raise ValueError(f"the truth has {counted(len(truth), 'row')} but split part {part!r} has {len(rows)}")
    sizes, _ = dataset_sizes(dataset)
    return _with_x(truth, _stored(dataset, C.to_counts(truth.X.numpy(), sizes[rows], counts_target_sum(dataset)[0], "round"),
                                  rows, truth.genes))


def _stored(dataset: Dataset, out: np.ndarray, rows: np.ndarray, genes: Sequence[str]) -> np.ndarray:
    """``out``, real cells' counts rebuilt from their log values, with the counts the data kept as stored at load
    (``distgen.data.counts.LARGE_COUNTS_LAYER``: those the float32 log values cannot give back) written as they were."""
    adata = dataset.data.adata
    large = adata.layers.get(C.LARGE_COUNTS_LAYER)
    if large is None:
        return out
    cols = pd.Index([str(g) for g in adata.var_names]).get_indexer([str(g) for g in genes])
    found = cols >= 0
    if not found.all():  # a gene the table lacks (not from this data): its counts stay as rebuilt
        out_found = out[:, found]
        C.stored_counts(out_found, large, rows, cols[found])
        out[:, found] = out_found
        return out
    return C.stored_counts(out, large, rows, cols)


def _with_x(cells: Cells, x: np.ndarray) -> Cells:
    return Cells(torch.from_numpy(x), cells.conditions, cells.genes, cells.contexts, cells.batches, cells.control, cells.names)
