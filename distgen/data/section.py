"""The ``data:`` section of a run config: where the cells come from, how they are split and sampled.

```yaml
data:
  dataset: norman_k562          # a bundled dataset (norman_k562, kang_pbmc) or a path to an .h5ad
  schema: {perturbation_col: condition, context_cols: [cell_type]}   # PerturbationSchema fields
  split: {kind: combo_seen2, seed: 0}   # make_split arguments, or a path to a saved split file
  hvg: 2000                     # optional: highly variable genes fitted on training cells
  set_size: 32
  matcher: same_context
```

``distgen.data.prepared.Dataset.load`` turns a section into the dataset of a run (data + split +
fitted preprocessing), once per run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distgen.config import ConfigError, plain_values, validate_params

BUNDLED = ("norman_k562", "kang_pbmc")


@dataclass
class DataSection:
    """Where the cells come from and how they are split and sampled (the ``data:`` config section).

    Parameters
    ----------
    dataset
        A bundled dataset name (``norman_k562``, ``kang_pbmc``) or a path to an ``.h5ad`` file (``~`` is the
        home folder; a relative path is read from the working directory, not from the config file's folder).
    schema
        ``PerturbationSchema`` fields; defaults to the bundled dataset's schema.
    split
        ``make_split`` arguments (``kind``, ``seed``, ``test_frac``, ``val_frac``, ...) or the path of
        a split file saved by ``Split.save``.
    hvg
        Keep this many highly variable genes (fitted on training cells; perturbed genes forced in).
    set_size, matcher, matcher_params, sampling, sets_per_epoch, replacement
        Set sampling (``distgen.data.SetSampler``).
    filter
        Keep or drop cells by ``obs`` columns before validation (``distgen.data.filters``): a rule
        ``{column: batch, drop: [b2]}``, ``{column: score, min: 0.8}``, ``{query: "..."}`` or a list of rules.
    control_sets
        Control -> control training sets (``distgen.data.sampler.CONTROL_SETS``): ``auto`` (the
        default: those of every context and batch when some context or batch has only control cells
        in training, e.g. a held-out cell type, patient or batch, so that the model learns its
        embedding without learning that it never responds; else none), ``uncovered`` (only those
        contexts and batches), ``all`` or ``none``.
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
    control_sets: str = "auto"
    filter: list[dict[str, Any]] | dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sampler_options(self) -> dict[str, Any]:
        """The keyword arguments of ``TableBatches`` this section sets besides set size, matcher and control sets
        (training and validation batches alike; the parity harness builds the presets' batches with them too)."""
        return {"sampling": self.sampling, "sets_per_epoch": self.sets_per_epoch, "matcher_params": self.matcher_params,
                "replacement": self.replacement}


def check_split_values(split: Mapping[str, Any]) -> None:
    """The kind and fractions of a ``data.split`` mapping, refused as config errors before any data is read."""
    from distgen.data.split import SPLIT_KINDS

    kind = split.get("kind", "random_conditions")
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"data.split.kind: unknown split kind {kind!r}; available: {', '.join(SPLIT_KINDS)}")
    for name in ("test_frac", "val_frac", "holdout_controls", "holdout_singles"):
        v = split.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v < 1.0):
            raise ConfigError(f"data.split.{name} must be in [0, 1), got {v!r}")
    if split.get("test_doses") is not None:
        from distgen.data.splitters import held_doses

        try:
            held_doses(split["test_doses"], kind)
        except ValueError as err:
            raise ConfigError(f"data.split.{err}") from None


def data_section(section: Mapping[str, Any] | None) -> DataSection:
    """Validate a ``data:`` section (unknown keys fail naming the key; schema and split checked too)."""
    from distgen.data.schema import PerturbationSchema
    from distgen.data.splitters import make_split

    section = dict(plain_values(dict(section or {})))  # an array of labels (adata.obs[...].unique()) is a list
    validate_params(DataSection, section, "data")
    for key in ("dataset", "split"):  # a config file's ~/data.h5ad means the home folder, as in a shell
        if isinstance(section.get(key), str) and section[key].startswith("~"):
            section[key] = os.path.expanduser(section[key])
    ds = DataSection(**section)
    if ds.schema is not None:
        validate_params(PerturbationSchema, ds.schema, "data.schema")
        try:  # its values too (scale, min_cells...): a bad one is the config's (exit 2), named before any data is read
            PerturbationSchema.from_dict(dict(ds.schema))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"data.schema: {err}") from None
    if isinstance(ds.split, Mapping):
        validate_params(make_split, ds.split, "data.split", injected=frozenset({"data"}))
        check_split_values(ds.split)
    elif isinstance(ds.split, str) and not Path(ds.split).exists():  # (a missing file is named when it is read)
        from distgen.data.split import SPLIT_KINDS

        if ds.split in SPLIT_KINDS:
            raise ConfigError(f"data.split: {ds.split!r} is a split kind, and a plain string is a split file; write "
                              f"data.split={{kind: {ds.split}}} (in YAML, split: {{kind: {ds.split}, seed: 0}})")
        from distgen.wording import near

        close = near(ds.split, SPLIT_KINDS, cutoff=0.75)
        if close:  # a misspelt kind read as a file name: "No such file or directory: 'combo_sen2'"
            raise ConfigError(f"data.split: there is no split file {ds.split!r}; did you mean the split kind {close[0]!r}? Write "
                              f"data.split={{kind: {close[0]}}} (in YAML, split: {{kind: {close[0]}, seed: 0}})")
    if ds.set_size < 1:
        raise ConfigError(f"data.set_size must be >= 1, got {ds.set_size}")
    _check_matcher(ds)
    if ds.hvg is not None and (isinstance(ds.hvg, bool) or not isinstance(ds.hvg, int) or ds.hvg < 1):
        raise ConfigError(f"data.hvg must be a number of genes >= 1 (or null for every gene), got {ds.hvg!r}")
    from distgen.data.filters import filter_rules
    from distgen.data.sampler import CONTROL_SETS, SAMPLINGS

    filter_rules(ds.filter)
    if ds.sampling not in SAMPLINGS:
        raise ConfigError(f"data.sampling must be one of {', '.join(SAMPLINGS)}, got {ds.sampling!r}")
    if ds.control_sets not in CONTROL_SETS:
        raise ConfigError(f"data.control_sets must be one of {', '.join(CONTROL_SETS)}, got {ds.control_sets!r}")
    if ds.dataset not in BUNDLED and not Path(ds.dataset).exists():
        where = "" if Path(ds.dataset).is_absolute() else f" (a relative path is read from the working directory, {os.getcwd()})"
        raise ConfigError(
            f"data.dataset: {ds.dataset!r} is neither a bundled dataset ({', '.join(BUNDLED)}) nor an existing .h5ad path{where}"
        )
    return ds


def _check_matcher(ds: DataSection) -> None:
    """``data.matcher`` is a registered matcher and ``data.matcher_params`` are its parameters (checked at load, not at fit)."""
    from distgen.data.matching import matchers
    from distgen.wording import near

    if ds.matcher not in matchers.names():
        close = near(ds.matcher, matchers.names())
        hint = f". Did you mean {close[0]!r}? Available" if close else "; available"
        raise ConfigError(f"data.matcher: unknown matcher {ds.matcher!r}{hint}: {', '.join(matchers.names())}")
    try:
        validate_params(matchers.get(ds.matcher), ds.matcher_params or {}, "data.matcher_params")
    except ConfigError as err:
        raise ConfigError(f"{err} The parameters belong to data.matcher={ds.matcher!r} (a preset may set them for its own "
                          "matcher): when changing data.matcher, set data.matcher_params=null or give the new matcher's") from None
    matchers.verify(ds.matcher)  # a plugin's matcher: its cheap checks before any data is read
