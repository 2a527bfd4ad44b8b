"""Splits of a file on disk: the in-memory split machinery (``make_split``) on a ``DiskCells``' labels.

``disk_split(cells, kind=..., seed=...)`` makes the split ``distgen.data.splitters.make_split`` makes for the same file
loaded in memory (same rows, same ``data_hash``): it reads labels and cell names only, no expression.
``split_rows(cells, split, part)`` checks that a ``Split`` belongs to the file and gives the rows of one part, which
``StreamBatches(rows=...)`` and ``StreamingSetSampler(rows=...)`` restrict their reads to, so held-out cells never
reach a training batch.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from distgen.data.conditions import PopulationLabels
from distgen.data.disk import DiskCells
from distgen.data.split import Split
from distgen.data.splitters import make_split

__all__ = ["DiskLabels", "disk_split", "split_rows"]


class DiskLabels(PopulationLabels):
    """The labels of a ``DiskCells`` as ``make_split`` reads a ``PerturbationData``: per-row condition, context, batch, name."""

    def __init__(self, cells: DiskCells) -> None:
        from anndata.io import read_elem

        self.schema = cells.schema
        self.n_cells = cells.n_cells
        self.conditions = cells.condition_names[cells.condition_codes].astype(str)
        self.contexts = np.asarray(cells.info.contexts, dtype=object)[cells.labels.context.numpy()].astype(str)
        self.batches = np.asarray(cells.info.batches, dtype=object)[cells.labels.batch.numpy()].astype(str)
        self.is_control = cells.is_control
        self.dosed = bool(getattr(cells, "dosed", False))  # PopulationLabels reads its labels back
        self.legacy_labels: dict[str, str] = dict(getattr(cells, "legacy_labels", {}))  # as PerturbationData.legacy_labels
        obs = cells._open()["obs"]
        index = obs.attrs.get("_index", "_index")  # the obs column holding the cell names (anndata's encoding)
        self._names = [str(n) for n in read_elem(obs[index])]  # the names only, not every obs column

    @property
    def cell_names(self) -> np.ndarray:
        """``[N]`` the cells' names (obs names), as ``PerturbationData.cell_names``."""
        return np.asarray(self._names, dtype=str)

    def groups(self, include_control: bool = False) -> dict[tuple[str, str, str], np.ndarray]:
        """``(condition, context, batch) -> rows``, as ``PerturbationData.groups``."""
        df = pd.DataFrame({"c": self.conditions, "k": self.contexts, "b": self.batches})
        out = {tuple(k): np.asarray(v, dtype=np.int64) for k, v in df.groupby(["c", "k", "b"], sort=True).indices.items()}
        return {k: v for k, v in out.items() if include_control or k[0] != "control"}

    @property
    def cells_hash(self) -> str:
        """``PerturbationData.cells_hash`` of the same file loaded in memory (cell names and labels)."""
        h = hashlib.sha256()
        legacy = self.legacy_labels  # hashed as PerturbationData.cells_hash hashes them: as written before short float32 doses
        conditions = tuple(self.conditions) if not legacy else tuple(legacy.get(c, c) for c in self.conditions)
        for part in (tuple(self._names), conditions, tuple(self.contexts), tuple(self.batches)):
            h.update("\x1f".join(map(str, part)).encode())
            h.update(b"\x1e")
        return h.hexdigest()[:16]


def disk_split(cells: DiskCells, **params: Any) -> Split:
    """``make_split(**params)`` (``kind``, ``seed``, ``test_frac``, ...) on the labels of the file ``cells`` reads.

    The same file loaded in memory (no rows dropped) gets the same split: the same rows and ``data_hash``.
    """
    return make_split(DiskLabels(cells), **params)  # type: ignore[arg-type]  # duck-typed: labels are all make_split reads


def split_rows(cells: DiskCells, split: Split, part: str = "train") -> np.ndarray:
    """Sorted rows of ``part`` (``train``, ``val`` or ``test``) of ``split``, checked to be a split of ``cells``' file."""
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
    if split.n_cells != cells.n_cells:
        raise ValueError(f"the split was made for {split.n_cells} cells; {cells.path} has {cells.n_cells}: make it with "
                         "distgen.data.disk_split.disk_split(cells, ...) on this file")
    have = DiskLabels(cells).cells_hash
    if split.data_hash != have:
        raise ValueError(f"the split was made for other cells (data_hash {split.data_hash}, {cells.path} has {have}): make it "
                         "with distgen.data.disk_split.disk_split(cells, ...) on this file")
    return np.sort(np.asarray(getattr(split, part), dtype=np.int64))
