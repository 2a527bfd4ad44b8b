"""Predictions and truths of a run in raw counts (``distgen predict --counts MODEL``, ``evaluate: {counts: MODEL}``).

The math is ``distgen.data.counts``; this module decides which library size each row gets:

* a generated cell of group ``g``: a size drawn (with replacement, seeded by ``seed`` and the group's labels: ``group_seed``) from the
  library sizes of the control cells that group was generated from (its context's pool), then
  counts from the observation model (``round``, ``poisson`` or ``nb``, NB dispersions fitted on the
  training cells of the run, at most ``MAX_FIT_CELLS`` of them drawn in the order of their values);
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
from distgen.data.groups import draw_order, group_seed
from distgen.data.prepared import Dataset
from distgen.types import Cells
from distgen.wording import counted

#: Training cells the NB dispersions are fitted on at most (a seeded subsample beyond that).
MAX_FIT_CELLS = 20_000


def counts_target_sum(dataset: Dataset) -> tuple[float, list[str]]:
    """``(the normalize_total target counts are computed with, notes)``: ``schema.target_sum``, or the total log input was normalised to.

    Log1p input whose every cell's ``expm1(x)`` summed to one total at load (``log1p(CPM)``: 1e6) is inverted with
    that total, with a note, whatever ``target_sum`` says: with 1e4 its counts were 100x too large.
    """
    target_sum = float(dataset.data.schema.target_sum)
    total = dataset.data.table.meta.get("log_total")
    if total is None or abs(float(total) - target_sum) <= 1e-2 * target_sum:
        return target_sum, []
    return float(total), [f"counts: the data were log1p of counts normalised to {float(total):.4g} per cell (not data.schema.target_sum="
                          f"{target_sum:g}); counts are computed with {float(total):.4g}"]


def dataset_sizes(dataset: Dataset) -> tuple[np.ndarray, str]:
    """``([N] library sizes of every cell of the dataset, where they came from)``."""
    data = dataset.data
    return C.library_sizes(data.adata.obs, len(data.conditions), float(data.schema.target_sum))


def _columns(dataset: Dataset, genes: Sequence[str]) -> np.ndarray:
    index = dataset.info.gene_index()
    return np.array([index[g] for g in genes], dtype=np.int64)


def pair_groups(conditions: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    """``[N]`` one id per (condition, context) pair. Not the two labels joined into one string: ``("A|B", "x")`` and
    ``("A", "B|x")`` would then be one group (a condition's combination delimiter or one context column may hold ``|``)."""
    return pd.MultiIndex.from_arrays([np.asarray(conditions), np.asarray(contexts)]).factorize()[0]


def fit_run_dispersion(dataset: Dataset, cells: Cells | Sequence[str], sizes: np.ndarray, seed: int = 0) -> np.ndarray:
    """``[G]`` NB dispersions of ``cells``' genes (or of the genes named), fitted on the run's training cells within
    (condition, context) groups.

    The training cells are taken in the order of their values (``draw_order`` of ``Dataset.content_keys``, the rule of
    the control pools), and beyond ``MAX_FIT_CELLS`` a seeded subsample is drawn in that order: the same file with its
    rows shuffled gives the same dispersions, to the last bit.
    """
    train = dataset.split.train.numpy()
    train = train[draw_order(dataset.content_keys(train))]
    if len(train) > MAX_FIT_CELLS:
        train = train[np.sort(np.random.default_rng(seed).choice(len(train), MAX_FIT_CELLS, replace=False))]
    cols = torch.from_numpy(_columns(dataset, cells.genes if isinstance(cells, Cells) else list(cells)))
    x = dataset.data.table.X[torch.from_numpy(train)][:, cols].numpy()
    groups = pair_groups(dataset.data.conditions[train], dataset.data.contexts[train])
    return C.fit_dispersion(x, sizes[train], counts_target_sum(dataset)[0], groups)


def prediction_counts(dataset: Dataset, pred: Cells, part: str = "test", model: str = "round", seed: int = 0) -> tuple[Cells, list[str]]:
    """``pred`` (``predict(model, dataset, part)``'s output) in raw counts, and notes on how the sizes were chosen."""
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
    theta = fit_run_dispersion(dataset, pred, sizes, seed) if model == "nb" else None
    x = pred.X.numpy()
    out = np.empty(x.shape, dtype=np.float32)
    start = 0
    for g, k in zip(groups, n):
        rng = np.random.default_rng(group_seed(seed, g.condition, g.context, g.batch, 2))
        size = C.draw_sizes(sizes[g.controls], k, rng)
        out[start:start + k] = C.to_counts(x[start:start + k], size, target_sum, model, theta, rng)
        start += k
    out[start:] = C.to_counts(x[start:], sizes[pool], target_sum, "round")
    notes += [f"counts ({model}): library sizes from {source}; generated cells draw theirs from their group's control pool"]
    return _with_x(pred, out), notes


def truth_counts(dataset: Dataset, truth: Cells, part: str = "test") -> Cells:
    """``Dataset.truth(part)`` (possibly on a gene panel) in raw counts: every real cell at its own library size, rounded."""
    groups = dataset.groups(part)
    rows = np.concatenate([*(g.cells for g in groups), dataset.control_pool(groups)])
    if len(rows) != len(truth):
        raise ValueError(f"the truth has {counted(len(truth), 'row')} but split part {part!r} has {len(rows)}")
    sizes, _ = dataset_sizes(dataset)
    return _with_x(truth, C.to_counts(truth.X.numpy(), sizes[rows], counts_target_sum(dataset)[0], "round"))


def _with_x(cells: Cells, x: np.ndarray) -> Cells:
    return Cells(torch.from_numpy(x), cells.conditions, cells.genes, cells.contexts, cells.batches, cells.control, cells.names)
