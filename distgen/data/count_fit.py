"""What raw counts need from a run's training cells: the total its log1p values were normalised to, every cell's library
size, and NB dispersions fitted on its training cells.

``distgen.pipeline.countspace`` converts a run's own predictions with them; ``distgen.data.record`` keeps them in a run
folder (``DataRecord``), so that ``distgen predict RUN --data FILE --counts nb`` needs no training file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from distgen.data import counts as C
from distgen.data.groups import draw_order
from distgen.data.prepared import Dataset
from distgen.types import Cells

__all__ = ["MAX_FIT_CELLS", "counts_target_sum", "dataset_sizes", "fit_run_dispersion", "pair_groups"]

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
    the control pools), and beyond ``MAX_FIT_CELLS`` a subsample seeded by ``seed`` (the run's ``train.seed``: the record
    keeps the dispersions it gives) is drawn in that order: the same file with its rows shuffled gives the same dispersions,
    to the last bit.
    """
    train = dataset.split.train.numpy()
    train = train[draw_order(dataset.content_keys(train))]
    if len(train) > MAX_FIT_CELLS:
        train = train[np.sort(np.random.default_rng(seed).choice(len(train), MAX_FIT_CELLS, replace=False))]
    cols = torch.from_numpy(_columns(dataset, cells.genes if isinstance(cells, Cells) else list(cells)))
    x = dataset.data.table.X[torch.from_numpy(train)][:, cols].numpy()
    groups = pair_groups(dataset.data.conditions[train], dataset.data.contexts[train])
    return C.fit_dispersion(x, sizes[train], counts_target_sum(dataset)[0], groups)
