"""``fit(model, table, ...)``: the one-call Python entry to the trainer (what ``Generator.fit`` uses)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from distgen.train.batches import TableBatches
from distgen.train.options import train_options
from distgen.train.trainer import Trainer, TrainResult
from distgen.types import CellTable


def fit(
    model: nn.Module,
    train: CellTable,
    *,
    val: CellTable | None = None,
    config: Mapping[str, Any] | None = None,
    set_size: int | None = None,
    matcher: str | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    callbacks: Sequence[Callable[[Trainer, int], None]] = (),
    **train_kwargs: Any,
) -> TrainResult:
    """Train ``model`` (anything with ``loss(SetBatch)`` and parameters) on the cells of ``train``.

    Parameters
    ----------
    model
        The model to fit in place.
    train, val
        Training cells and optional validation cells (perturbed and control).
    config
        A run config (e.g. ``distgen.load_config("scdfm-small")``): its ``train:`` section gives the
        training options and its ``data:`` section the set sampling (``set_size``, ``matcher``,
        ``matcher_params``, ``sampling``, ``sets_per_epoch``). Keyword arguments given here win, so
        ``fit(model, table, config=doc, steps=300)`` is the preset's recipe, shorter.
    set_size, matcher
        Cells per set and the registered control matcher (default: the config's, else 32 and
        ``same_context``).
    run_dir, resume
        Optional run directory for metrics and checkpoints, and a checkpoint to continue from.
    **train_kwargs
        Keys of the ``train:`` section (``steps``, ``lr``, ``sets_per_batch``, ``seed``...); see
        ``distgen.train.options.TrainOptions``. Unknown keys fail, naming the key.

    Returns
    -------
    TrainResult
        Per-step losses, validation history and the last checkpoint.
    """
    from distgen.train.data_section import data_section

    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"fit: config must be a config mapping (distgen.load_config(...)), got {type(config).__name__}")
    doc = config or {}
    opts = train_options({**(doc.get("train") or {}), **train_kwargs})
    ds = data_section({k: v for k, v in (doc.get("data") or {}).items() if k not in ("dataset", "schema", "split", "hvg")})
    set_size = ds.set_size if set_size is None else set_size
    matcher = ds.matcher if matcher is None else matcher
    sampler: dict[str, Any] = {"sampling": ds.sampling, "sets_per_epoch": ds.sets_per_epoch, "matcher_params": ds.matcher_params}
    prepare(model, train)
    source = TableBatches(train, set_size, opts.sets_per_batch, matcher, opts.seed, **sampler)
    val_source = TableBatches(val, set_size, opts.val_sets, matcher, opts.seed + 1, **sampler) if val is not None else None
    trainer = Trainer(model, source, opts, val=val_source, run_dir=run_dir, info=train.info, callbacks=callbacks)
    result = trainer.fit(resume=resume)
    model.eval()
    return result


def prepare(model: nn.Module, train: CellTable) -> None:
    """Let components fit data-dependent structure (e.g. a gene graph) on the training cells.

    Calls ``model.prepare(train)`` when the model defines it, else ``prepare(train)`` of each
    submodule that does (``PADTransformer.prepare`` builds its co-expression graph).
    """
    hook = getattr(model, "prepare", None)
    if callable(hook):
        hook(train)
        return
    for sub in model.modules():
        hook = getattr(sub, "prepare", None)
        if sub is not model and callable(hook):
            hook(train)
