"""The ``data:`` section of a run config -> dataset, split, training/validation batch sources.

```yaml
data:
  dataset: norman_k562          # a bundled dataset (norman_k562, kang_pbmc) or a path to an .h5ad
  schema: {perturbation_col: condition, context_cols: [cell_type]}   # PerturbationSchema fields
  split: {kind: combo_seen2, seed: 0}   # make_split arguments, or a path to a saved split file
  hvg: 2000                     # optional: highly variable genes fitted on training cells
  set_size: 32
  matcher: same_context
```

Everything AnnData-related is done by ``distgen.data``; this module only wires it to the trainer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distgen.config import ConfigError, validate_params
from distgen.train.batches import TableBatches
from distgen.types import CellTable, DataInfo

BUNDLED = ("norman_k562", "kang_pbmc")


@dataclass
class DataSection:
    """Where the cells come from and how they are split and sampled (the ``data:`` config section).

    Parameters
    ----------
    dataset
        A bundled dataset name (``norman_k562``, ``kang_pbmc``) or a path to an ``.h5ad`` file.
    schema
        ``PerturbationSchema`` fields; defaults to the bundled dataset's schema.
    split
        ``make_split`` arguments (``kind``, ``seed``, ``test_frac``, ``val_frac``, ...) or the path of
        a split file saved by ``Split.save``.
    hvg
        Keep this many highly variable genes (fitted on training cells; perturbed genes forced in).
    set_size, matcher, matcher_params, sampling, sets_per_epoch, replacement
        Set sampling (``distgen.data.SetSampler``).
    """

    dataset: str = "norman_k562"
    schema: dict[str, Any] | None = None
    split: dict[str, Any] | str | None = None
    hvg: int | None = None
    set_size: int = 32
    matcher: str = "same_context"
    matcher_params: dict[str, Any] | None = None
    sampling: str = "condition"
    sets_per_epoch: int | None = None
    replacement: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def data_section(section: Mapping[str, Any] | None) -> DataSection:
    """Validate a ``data:`` section (unknown keys fail naming the key; schema and split checked too)."""
    from distgen.data import PerturbationSchema, make_split

    section = dict(section or {})
    validate_params(DataSection, section, "data")
    ds = DataSection(**section)
    if ds.schema is not None:
        validate_params(PerturbationSchema, ds.schema, "data.schema")
    if isinstance(ds.split, Mapping):
        validate_params(make_split, ds.split, "data.split", injected=frozenset({"data"}))
    if ds.set_size < 1:
        raise ConfigError(f"data.set_size must be >= 1, got {ds.set_size}")
    if ds.dataset not in BUNDLED and not Path(ds.dataset).exists():
        raise ConfigError(f"data.dataset: {ds.dataset!r} is neither a bundled dataset ({', '.join(BUNDLED)}) nor an existing .h5ad path")
    return ds


@dataclass
class RunData:
    """A loaded dataset with its split, as the trainer and predictor use it."""

    data: Any  # distgen.data.PerturbationData
    split: Any  # distgen.data.Split
    section: DataSection

    @property
    def info(self) -> DataInfo:
        return self.data.info  # type: ignore[no-any-return]

    @property
    def train_table(self) -> CellTable:
        return self.data.table.subset(self.split.train)  # type: ignore[no-any-return]

    def seen_perturbations(self) -> list[str]:
        """Perturbation atoms present in the training cells."""
        pert = self.data.table.labels.perturbation[self.split.train]
        ids = torch.unique(pert[pert >= 0]).tolist()
        return [self.info.perturbations[i] for i in ids]

    def hashes(self) -> dict[str, Any]:
        return {"dataset": self.section.dataset, "data_hash": self.data.hash, "split_hash": self.split.hash, "split": self.split.summary()}

    def sources(self, sets_per_batch: int, val_sets: int, seed: int) -> tuple[TableBatches, TableBatches | None]:
        """Training batches and (when the split has validation cells) fixed validation batches."""
        ds = self.section
        kw: dict[str, Any] = {"sampling": ds.sampling, "sets_per_epoch": ds.sets_per_epoch, "matcher_params": ds.matcher_params,
                              "replacement": ds.replacement}
        train = self.train_table
        source = TableBatches(train, ds.set_size, sets_per_batch, ds.matcher, seed, **kw)
        val = None
        if len(self.split.val) and not bool(self.data.table.is_control[self.split.val].all()):
            kw.pop("sets_per_epoch")
            val = TableBatches(self.data.table.subset(self.split.val), ds.set_size, val_sets, ds.matcher, seed + 1, controls=train, **kw)
        return source, val


def load_run_data(ds: DataSection, split_file: str | Path | None = None) -> RunData:
    """Read the dataset, make (or load) the split and apply train-fitted preprocessing."""
    from distgen.data import PerturbationData, PerturbationSchema, Split, highly_variable_genes, make_split
    from distgen.data import bundled as datasets

    if ds.dataset in BUNDLED:
        adata = getattr(datasets, ds.dataset)()
        schema = datasets.NORMAN_SCHEMA if ds.dataset == "norman_k562" else datasets.KANG_SCHEMA
    else:
        import anndata as ad

        adata = ad.read_h5ad(ds.dataset)
        schema = PerturbationSchema()
    if ds.schema is not None:
        schema = PerturbationSchema.from_dict({**schema.to_dict(), **ds.schema})
    data = PerturbationData.from_anndata(adata, schema)
    source = split_file if split_file is not None else ds.split
    split = Split.load(source) if isinstance(source, str | Path) else make_split(data, **(source or {}))
    if ds.hvg is not None and ds.hvg < data.info.n_genes:
        data = highly_variable_genes(data, ds.hvg, fit_on=split.train)
    split.check_leakage(data)
    return RunData(data, split, ds)
