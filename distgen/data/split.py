"""``Split``: train/val/test cell indices as data, with a content hash, a file format and a leakage check."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from distgen.atomic import temp_beside
from distgen.errors import DistgenWarning, clip_message

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData

SPLIT_FORMAT = "distgen-split"
SPLIT_VERSION = 1
SPLIT_KINDS = (
    "random_conditions",
    "unseen_single",
    "combo_seen0",
    "combo_seen1",
    "combo_seen2",
    "held_out_context",
    "held_out_context_perturbation",
    "held_out_batch",
    "held_out_dose",
)


class LeakageError(AssertionError):
    """A split lets test information into training."""


class DuplicateCellWarning(DistgenWarning):
    """Held-out cells have exactly the expression of training cells under other names: likely the same cells twice."""


def _idx(x: Any) -> Tensor:
    return torch.as_tensor(np.sort(np.asarray(x, dtype=np.int64)), dtype=torch.long)


@dataclass(frozen=True)
class Split:
    """Cell indices of train / val / test, and which conditions each part holds.

    Attributes
    ----------
    train, val, test
        ``[n]`` sorted long indices into ``PerturbationData`` cells (controls included).
    test_conditions
        Perturbation conditions (canonical strings) with test cells; ``train_conditions`` and
        ``val_conditions`` likewise.
    test_groups
        ``(condition, context)`` pairs held out (what a model must predict).
    data_hash
        ``PerturbationData.cells_hash`` of the dataset the split was made for (gene selection keeps it).
    """

    kind: str
    seed: int
    train: Tensor
    val: Tensor
    test: Tensor
    train_conditions: tuple[str, ...]
    val_conditions: tuple[str, ...]
    test_conditions: tuple[str, ...]
    test_groups: tuple[tuple[str, str], ...]
    data_hash: str
    n_cells: int
    params: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "version": SPLIT_VERSION,
            "kind": self.kind,
            "seed": self.seed,
            "params": self.params,
            "data_hash": self.data_hash,
            "n_cells": self.n_cells,
            "train": self.train.tolist(),
            "val": self.val.tolist(),
            "test": self.test.tolist(),
            "train_conditions": list(self.train_conditions),
            "val_conditions": list(self.val_conditions),
            "test_conditions": list(self.test_conditions),
            "test_groups": [list(g) for g in self.test_groups],
        }

    @property
    def hash(self) -> str:
        """16-hex content hash of everything in the split file (not of its formatting)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write a small JSON file (gzip when ``path`` ends in ``.gz``) atomically; returns the path."""
        path = os.fspath(path)
        d = self.to_dict() | {"hash": self.hash}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        fd, tmp = temp_beside(path)  # readable as a plain file would be (not mkstemp's 0600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(gzip.compress(blob, mtime=0) if path.endswith(".gz") else blob)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        if d.get("format") != SPLIT_FORMAT:
            raise ValueError(f"not a distgen split file (format={d.get('format')!r}, expected {SPLIT_FORMAT!r})")
        if int(d.get("version", -1)) > SPLIT_VERSION:
            raise ValueError(f"split file version {d['version']} is newer than this distgen reads ({SPLIT_VERSION}); upgrade distgen")
        return cls(
            kind=d["kind"],
            seed=int(d["seed"]),
            train=_idx(d["train"]),
            val=_idx(d["val"]),
            test=_idx(d["test"]),
            train_conditions=tuple(d["train_conditions"]),
            val_conditions=tuple(d["val_conditions"]),
            test_conditions=tuple(d["test_conditions"]),
            test_groups=tuple((str(a), str(b)) for a, b in d["test_groups"]),
            data_hash=d["data_hash"],
            n_cells=int(d["n_cells"]),
            params=dict(d.get("params", {})),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Split:
        """Read a split file written by ``save``; checks its format, version and hash."""
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        try:
            d = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            d = exc
        if not isinstance(d, dict):  # "error: Expecting ',' delimiter: line 1 column 8453" named no file
            what = f"not JSON: {d}" if isinstance(d, Exception) else f"a JSON {type(d).__name__}, not an object"
            raise ValueError(f"split file {os.fspath(path)!r} is damaged ({what}); restore it from a copy (a run's split.json: "
                             "from a copy of the run), or make the split again from its data.split settings")
        try:
            split = cls.from_dict(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"split file {os.fspath(path)!r} is damaged (not a split: {type(exc).__name__}: {clip_message(str(exc), 300)}); "
                             "restore it from a copy, or make the split again from its data.split settings") from None
        if "hash" in d and d["hash"] != split.hash:
            raise ValueError(f"split file {os.fspath(path)!r} is corrupt or was edited: stored hash {d['hash']} != content hash {split.hash}")
        return split  # as stored: its labels meet the data's in labelled_as (the leakage check, Dataset loading)

    @classmethod
    def load_for(cls, path: str | os.PathLike[str], data: Any) -> Split:
        """``load`` for ``data`` (``labelled_as``), refusing a file made for another number of cells: its indices would name
        other cells, or none (a run's ``split.json`` read after its data file changed)."""
        split = cls.load(path)
        n = getattr(data, "n_cells", None)
        if isinstance(n, int) and n != split.n_cells:
            raise ValueError(f"split file {os.fspath(path)!r} was made for data of {split.n_cells} cells, but the data has {n}: "
                             "the data changed since the split was made (a changed file, or data.filter); use the data it was "
                             "made for, or make a new split (for a run: train a new run)")
        return split.labelled_as(data)

    def labelled_as(self, data: Any) -> Split:
        """This split with its population labels as ``data`` (a ``PerturbationData`` or ``DiskLabels``) writes them:
        ``current_labels`` when the data is at several doses per condition (``dosed``: every label a ``dose_label``), else
        ``self``. Data without doses keeps its labels as written, so a perturbation named ``x@0.30000001192092896`` there
        is not rewritten (``tests/data/test_dose_populations.py::test_a_split_of_data_without_doses_keeps_labels_that_read_as_long_float32_doses``)."""
        return self.current_labels() if getattr(data, "dosed", False) else self

    def current_labels(self) -> Split:
        """This split with its population labels as this distgen writes them (``conditions.current_label``): a split file
        written before float32 doses were labelled short holds ``dexa@0.30000001192092896`` where the data now says
        ``dexa@0.3``. The same cells and ``data_hash`` (which hashes the earlier labels); ``self`` when nothing changes.
        Only for labels of data at several doses (``labelled_as``)."""
        from distgen.data.conditions import current_label

        def labels(xs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(current_label(x) for x in xs)

        now: dict[str, Any] = {"train_conditions": labels(self.train_conditions), "val_conditions": labels(self.val_conditions),
                               "test_conditions": labels(self.test_conditions),
                               "test_groups": tuple((current_label(c), k) for c, k in self.test_groups)}
        return self if all(v == getattr(self, k) for k, v in now.items()) else replace(self, **now)

    # ------------------------------------------------------------------ checks
    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hash": self.hash,
            "cells": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "test_conditions": list(self.test_conditions),
        }

    def check_leakage(self, data: PerturbationData) -> dict[str, Any]:
        """Assert that no test cell, and no statistic fitted on test cells, reaches training.

        Raises ``LeakageError`` naming the problem; returns a summary when the split is clean.
        """
        from distgen.data.leakage import check_split

        check_split(self, data)
        return self.summary()
