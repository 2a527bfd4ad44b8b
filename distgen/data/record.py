"""``DataRecord``: what a trained run keeps of its training data, so that it predicts another file without that file.

A model's weights are indexed by the run's genes and by its atom, context and batch ids; predicting another file
(``distgen predict RUN --data FILE``) also reads FILE with the run's schema, refuses labels the run never trained, compares
FILE's depth with the training cells' and, for ``--counts``, converts with the training file's total and NB dispersions.
All of that comes from the training ``Dataset``. ``DataRecord.from_dataset`` takes it once, at training time
(``distgen.train.run_files.write_run_files``), and ``save`` writes it beside the checkpoints:

- ``data_record.json``: human-readable, versioned (``format``, ``version``): the vocabularies (``DataInfo``), the atoms
  seen in training, the schema, the genes counts were normalised over, the value scale, ``data.set_size`` and
  ``data.filter``, which contexts and batches some training set carried (and which have training control cells), the
  median ``sum(expm1(x))`` of each context's control cells (the depth check), the counts' ``target_sum``, per atom the
  lowest and highest dose of its training cells (``dose_ranges``, ``schema.dose_col``: what ``--dose`` warns against;
  absent from records written before it, then nothing is warned), the training file's path and content hash;
- ``data_record.safetensors``: the ``[G]`` NB dispersions fitted on the training cells (``fit_run_dispersion`` at the
  run's ``train.seed``, which draws the subsample beyond ``count_fit.MAX_FIT_CELLS`` training cells: the dispersions are a
  property of the run, the same for every prediction seed), the only array (``[G]`` float64: 8 bytes a gene). No pickle
  anywhere.

Everything else a prediction needs is in the checkpoint (weights, buffers a model derived from training cells such as a
gene graph or an additive anchor's effects) and ``config.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen.atomic import atomic_path, atomic_write_text, read_record
from distgen.config import ConfigError
from distgen.data import count_fit
from distgen.data.count_fit import counts_target_sum, dataset_sizes, fit_run_dispersion
from distgen.data.foreign import DEPTH_FACTOR, _median_total
from distgen.data.prepared import Dataset
from distgen.data.sampler import condition_groups
from distgen.data.schema import PerturbationSchema
from distgen.types import CellTable, DataInfo

__all__ = ["ARRAYS_FILE", "FORMAT", "RECORD_FILE", "VERSION", "DataRecord"]

RECORD_FILE = "data_record.json"
ARRAYS_FILE = "data_record.safetensors"
FORMAT = "distgen data record"
#: Bumped when a field changes meaning; a reader refuses a newer version than its own.
VERSION = 1
_THETA = "nb_dispersion"


@dataclass(frozen=True)
class DataRecord:
    """What a run's predictions of another file need from its training ``Dataset`` (see the module docstring).

    It answers the questions the pre-flight asks of a ``Dataset`` (``info``, ``training_contexts()``,
    ``training_batches()``, ``training_controls(kind)``) and holds the rest as fields. ``dispersions()`` gives the NB
    dispersions; a record made from a loaded ``Dataset`` (``from_dataset(..., fit=False)``) fits them from it when asked.
    """

    info: DataInfo
    seen_perturbations: tuple[str, ...]
    schema: PerturbationSchema
    library_genes: tuple[str, ...] | None
    scale: str
    set_size: int
    filter: Any
    trained: Mapping[str, tuple[str, ...]]  # kind ("context", "batch") -> names some training set carries
    controls: Mapping[str, tuple[str, ...]]  # kind -> names of the training control cells
    depth: Mapping[str, float]  # context -> median sum(expm1(x)) of its control cells (every cell without any); log scale only
    target_sum: float
    target_notes: tuple[str, ...]
    dataset: str
    data_hash: str
    theta: np.ndarray | None = None
    theta_seed: int | None = None
    theta_seeded: bool = False  # more training cells than MAX_FIT_CELLS: the dispersions depend on theta_seed (the run's train.seed)
    dose_ranges: Mapping[str, tuple[float, float]] | None = None  # atom -> its training cells' lowest, highest dose; None: not recorded
    source: Dataset | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ made once, from the training data
    @classmethod
    def from_dataset(cls, dataset: Dataset, seed: int = 0, fit: bool = True) -> DataRecord:
        """The record of ``dataset`` (every cell, uncapped). ``seed`` is the run's ``train.seed``, the seed the NB dispersions are
        fitted with. ``fit``: fit them now (at training); otherwise they are fitted from ``dataset`` when ``dispersions`` is
        asked (a run loaded with its training file)."""
        data = dataset.data
        train = dataset.split.train.numpy()
        train_ctrl = train[data.is_control[train]]
        depth: dict[str, float] = {}
        if data.table.meta.get("scale") == "log":
            for ctx in dict.fromkeys(data.contexts.tolist()):
                rows = data.contexts == ctx
                if (rows & data.is_control).any():
                    rows = rows & data.is_control
                depth[str(ctx)] = _median_total(data.table.X, np.flatnonzero(rows))
        target_sum, notes = counts_target_sum(dataset)
        theta = None
        if fit:
            sizes, _ = dataset_sizes(dataset)
            theta = np.asarray(fit_run_dispersion(dataset, list(dataset.info.genes), sizes, seed), dtype=np.float64)
        return cls(
            info=dataset.info,
            seen_perturbations=tuple(dataset.seen_perturbations()),
            schema=data.schema,
            library_genes=None if data.library_genes is None else tuple(data.library_genes),
            scale=str(data.table.meta.get("scale", "log")),
            set_size=int(dataset.section.set_size),
            filter=dataset.section.filter,
            trained=_trained(dataset),
            controls={"context": tuple(sorted(set(data.contexts[train_ctrl].tolist()))),
                      "batch": tuple(sorted(set(data.batches[train_ctrl].tolist())))},
            depth=depth,
            target_sum=float(target_sum),
            target_notes=tuple(notes),
            dataset=str(dataset.section.dataset),
            data_hash=str(data.hash),
            theta=theta,
            theta_seed=int(seed),
            theta_seeded=len(train) > count_fit.MAX_FIT_CELLS,
            dose_ranges=dict(dataset.dose_record().ranges),
            source=None if fit else dataset,
        )

    # ------------------------------------------------------------------ what the pre-flight asks of a Dataset
    def training_contexts(self) -> list[str]:
        """The contexts some training set carried (``Dataset.training_contexts``)."""
        return list(self.trained["context"])

    def training_batches(self) -> list[str]:
        """The batches some training set carried (``Dataset.training_batches``)."""
        return list(self.trained["batch"])

    def training_controls(self, kind: str) -> list[str]:
        """The contexts or batches (``kind``) of the training control cells."""
        return list(self.controls[kind])

    # ------------------------------------------------------------------ what --data and --counts need
    def dispersions(self) -> np.ndarray:
        """``[G]`` NB dispersions of the run's genes fitted on its training cells (``fit_run_dispersion``) with the run's
        ``train.seed`` (``theta_seed``), whatever seed a prediction samples with: the record holds every prediction's."""
        if self.source is not None:
            sizes, _ = dataset_sizes(self.source)
            return fit_run_dispersion(self.source, list(self.info.genes), sizes, self.theta_seed or 0)
        if self.theta is None:
            raise ConfigError("the run's data record holds no NB dispersions; give the run's training file (--train-data PATH) "
                              "for --counts nb, or use --counts round or poisson")
        return self.theta.copy()

    def depth_mismatches(self, new: torch.Tensor, new_contexts: np.ndarray) -> list[tuple[str, float, float]]:
        """``distgen.data.foreign.depth_mismatches`` of control cells ``new`` (``[N, G]`` log1p values on the run's genes) against
        the training file's: ``(context, new median, training median)`` where they differ by more than ``DEPTH_FACTOR``."""
        out = []
        for ctx in dict.fromkeys(np.asarray(new_contexts).tolist()):
            b = self.depth.get(str(ctx))
            if b is None:
                continue
            a = _median_total(new, np.flatnonzero(new_contexts == ctx))
            if a > 0 and b > 0 and max(a / b, b / a) > DEPTH_FACTOR:
                out.append((str(ctx), a, b))
        return out

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The JSON document (without the dispersions, which are in ``ARRAYS_FILE``)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "about": "what distgen predict RUN --data FILE needs of the run's training file; written at training",
            "dataset": self.dataset,
            "data_hash": self.data_hash,
            "info": self.info.to_dict(),
            "seen_perturbations": list(self.seen_perturbations),
            "schema": self.schema.to_dict(),
            "library_genes": None if self.library_genes is None else list(self.library_genes),
            "scale": self.scale,
            "set_size": self.set_size,
            "filter": self.filter,
            "training_sets": {k: list(v) for k, v in self.trained.items()},
            "training_controls": {k: list(v) for k, v in self.controls.items()},
            "depth": {"statistic": "median over control cells (every cell where a context has none) of sum(expm1(x))",
                      "contexts": dict(self.depth)},
            "counts": {"target_sum": self.target_sum, "notes": list(self.target_notes)},
            "dose_ranges": None if self.dose_ranges is None else {a: list(r) for a, r in self.dose_ranges.items()},
            "nb_dispersion": None if self.theta is None else {
                "file": ARRAYS_FILE, "tensor": _THETA, "genes": "the run's genes, in info order", "seed": self.theta_seed,
                "seed_dependent": self.theta_seeded},
        }

    def save(self, folder: str | Path) -> None:
        """Write ``RECORD_FILE`` (and ``ARRAYS_FILE`` when it holds dispersions) into ``folder``."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        if self.theta is not None:
            with atomic_path(folder / ARRAYS_FILE) as tmp:  # renamed into place with the mode a plain write gives
                save_file({_THETA: np.ascontiguousarray(self.theta, dtype=np.float64)}, tmp)
        atomic_write_text(folder / RECORD_FILE, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> DataRecord | None:
        """The record of the run in ``folder``; None when it has none (a run trained before records were written)."""
        folder = Path(folder)
        doc = read_record(folder / RECORD_FILE, FORMAT, VERSION, "data record",
                          "restore it from the run's copy, or give the run's training file (--train-data PATH)")
        if doc is None:
            return None
        theta = None
        spec = doc.get("nb_dispersion")
        if spec:
            from safetensors.numpy import load_file

            arrays = folder / str(spec.get("file", ARRAYS_FILE))
            if not arrays.is_file():
                raise ConfigError(f"{arrays} is missing: the run's data record names it for the NB dispersions; copy it with the "
                                  "run folder")
            theta = load_file(str(arrays))[str(spec.get("tensor", _THETA))]
        info = DataInfo.from_dict(doc["info"])
        if theta is not None and theta.shape != (info.n_genes,):
            raise ConfigError(f"{folder / ARRAYS_FILE}: NB dispersions of shape {theta.shape}, but the run has {info.n_genes} genes")
        return cls(
            info=info,
            seen_perturbations=tuple(doc["seen_perturbations"]),
            schema=PerturbationSchema.from_dict(doc["schema"]),
            library_genes=None if doc["library_genes"] is None else tuple(doc["library_genes"]),
            scale=str(doc["scale"]),
            set_size=int(doc["set_size"]),
            filter=doc.get("filter"),
            trained={k: tuple(v) for k, v in doc["training_sets"].items()},
            controls={k: tuple(v) for k, v in doc["training_controls"].items()},
            depth={str(k): float(v) for k, v in doc["depth"]["contexts"].items()},
            target_sum=float(doc["counts"]["target_sum"]),
            target_notes=tuple(doc["counts"]["notes"]),
            dataset=str(doc["dataset"]),
            data_hash=str(doc["data_hash"]),
            theta=theta,
            theta_seed=None if not spec else spec.get("seed"),
            theta_seeded=bool(spec and spec.get("seed_dependent")),
            dose_ranges=None if doc.get("dose_ranges") is None else {str(a): (float(r[0]), float(r[1])) for a, r in doc["dose_ranges"].items()},
        )

    def same_as(self, other: DataRecord) -> list[str]:
        """The fields in which ``other`` differs (empty when it holds the same record; dispersions compared bit for bit)."""
        a, b = self.to_dict(), other.to_dict()
        out = [k for k in a if k not in ("nb_dispersion",) and a[k] != b.get(k)]
        if (self.theta is None) != (other.theta is None) or (self.theta is not None and other.theta is not None
                                                             and not np.array_equal(self.theta, other.theta)):
            out.append("nb_dispersion")
        return out


def _trained(dataset: Dataset) -> dict[str, tuple[str, ...]]:
    """``Dataset.training_contexts()`` and ``training_batches()`` in one pass over the training cells' labels, without the
    copy of their values ``Dataset.train_table`` makes (twice there): training writes the record of a large dataset too."""
    idx = dataset.by_name("train")
    labels = dataset.data.table.labels.index(idx)
    info = dataset.info
    table = CellTable(torch.zeros(1, info.n_genes).expand(len(idx), info.n_genes), labels, info)  # labels only: X is a view
    _, firsts = condition_groups(table, dataset.section.control_sets)
    return {"context": tuple(sorted({info.contexts[i] for i in labels.context[firsts].tolist()})),
            "batch": tuple(sorted({info.batches[i] for i in labels.batch[firsts].tolist()}))}
