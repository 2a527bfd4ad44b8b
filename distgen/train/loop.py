"""``fit(model, data, options, run_dir)``: the one way to train any model.

A ``TrainableModel`` (the assembled generator) goes through distgen's trainer; a ``FittedModel``
(baselines, plugin models with their own inference) fits itself on the training cells. The model
says which it is by its type (``distgen.models.base``); nothing in ``distgen.models`` imports this.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from torch import nn

from distgen.atomic import atomic_write_text
from distgen.config import ConfigError, InertSettingWarning, check_sections
from distgen.couplings.independent import IndependentCoupling
from distgen.data.batches import TableBatches
from distgen.data.holds import NeedsCells, holds
from distgen.data.prepared import Dataset, DatasetOrigin, refuse_anndata
from distgen.data.section import data_section
from distgen.errors import warn
from distgen.models.base import FittedModel, PerturbationModel, built_from
from distgen.models.preflight import PreflightWarning, check_split, check_vocabulary
from distgen.train.checkpoint import RESUME_FILES, check_run_folder, read_checkpoint_state, same_data_at
from distgen.train.device import caller_random_state, float32_default
from distgen.train.distributed import env_from_torchrun, said_by_main
from distgen.train.manifest import add_warnings, build_manifest
from distgen.train.options import TrainOptions, train_options
from distgen.train.run_files import record_training, resolved_model, resume_record, run_folder_of, write_run_files
from distgen.train.trainer import Trainer, TrainResult, describe_conditions, python_resume_option
from distgen.types import Cells, CellTable, DataInfo, vocabulary
from distgen.warned import recorded_warnings
from distgen.wording import first_of, near

#: ``data:`` keys that describe the dataset itself, not how its cells are sampled into sets.
DATASET_KEYS = ("dataset", "schema", "split", "hvg")


def fit(
    model: PerturbationModel | nn.Module,
    data: Dataset | CellTable | Cells,
    options: Mapping[str, Any] | TrainOptions | None = None,
    run_dir: str | Path | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    val: CellTable | None = None,
    set_size: int | None = None,
    matcher: str | None = None,
    resume: str | Path | None = None,
    callbacks: Sequence[Callable[[Trainer, int], None]] = (),
    allow_unembedded: bool = False,
    preflight: bool = True,
    **overrides: Any,
) -> TrainResult | None:
    """Train ``model`` in place on the training cells of ``data``.

    Parameters
    ----------
    model
        A ``TrainableModel`` (trained by the trainer; any ``nn.Module`` with ``loss`` works) or a
        ``FittedModel`` (its own ``fit(train)`` is called).
    data
        A ``Dataset`` (``distgen.load_data``: its training cells, validation cells and set sampling),
        or training cells as a ``CellTable`` (or ``Cells``, in the model's vocabulary ``model.info``).
    options
        The ``train:`` section for the trainer (``steps``, ``lr``, ``sets_per_batch``, ``seed``...;
        see ``distgen.train.options.TrainOptions``), or the ``fit:`` keyword arguments of a
        ``FittedModel``. Unknown trainer keys fail, naming the key. A ``FittedModel`` whose ``fit``
        takes a ``seed`` gets the config's ``train.seed`` unless ``fit:`` (or ``options``) sets one
        (``fit_options``: the rule ``distgen run`` and ``distgen sweep`` follow too).
    run_dir
        Optional run directory for ``metrics.csv``, ``checkpoints/`` and ``manifest.json`` (versions, seed, data
        hashes, hardware, and ``warnings``: every ``UserWarning`` the fit showed, each once; ``distgen.warned``).
        For a model ``distgen.build`` made, trained on a ``Dataset``, it is a whole run folder as ``distgen train``
        writes one (``config.yaml`` with the model's own ``model:`` node, ``split.json``, ``info.json``, the data
        record): ``distgen.load_run(run_dir)`` and ``distgen predict`` read it back (``whole_run``).
        A folder that already holds checkpoints is refused (``RunFolderError``, exit code 2) unless ``resume`` is
        given, as ``distgen train`` refuses an ``--out`` with checkpoints without ``--resume``: a new run would
        replace them. The refused call leaves the folder as it was.
    config
        A run config (``distgen.load_config(...)``): its ``train:`` (or ``fit:``) section gives the
        options and its ``data:`` section the set sampling; ``options`` and keyword arguments win,
        so ``fit(model, data, config=doc, steps=300)`` is the preset's recipe, shorter. A top-level key no
        command reads (``trian:``) is refused, as ``distgen train`` refuses it.
    val, set_size, matcher
        With a ``CellTable``: validation cells, cells per set and the control matcher (default: the
        config's, else 32 and ``same_context``). A ``Dataset`` brings its own.
    resume, callbacks
        A checkpoint to continue from; ``f(trainer, step)`` called after every step.
    allow_unembedded, preflight
        With a ``Dataset``, the model is first checked against the split's held-out conditions
        (``distgen.models.preflight.check_split``): a held-out atom it cannot embed stops here
        unless ``allow_unembedded`` (then a ``PreflightWarning``). ``preflight=False`` skips that
        check and, with a ``Dataset``, the set-size check (``check_set_size``), for callers that made
        them already (``distgen train``).
    **overrides
        More option keys (win over ``options`` and ``config``).

    Returns
    -------
    TrainResult or None
        Per-step losses, validation history and the last checkpoint (None for a ``FittedModel``).
        A trained model leaves ``fit`` in evaluation mode, holding the weights that ``distgen predict``
        uses: the exponential moving average when ``train.ema_decay`` is set. Under torchrun with ``train.strategy=fsdp``
        the model is trained sharded in place and keeps its shards (``distgen.predict`` refuses it): predict with
        ``distgen.load_run(run_dir).model``, the whole weights rank 0 wrote. The caller's torch random state
        is left as it was, also when the fit stops on an error or a ``KeyboardInterrupt``.
    """
    args = (model, data, options, run_dir, config, val, set_size, matcher, resume, callbacks, allow_unembedded, preflight, overrides)
    with caller_random_state():  # each step seeds torch's global generator: the caller's stream is given back
        if run_dir is None:  # nothing to record into (and the "shown once per place" memory is left alone)
            return _fit(*args, [])
        with recorded_warnings() as warned:  # every UserWarning shown goes to the run directory's manifest.json too
            return _fit(*args, warned)


def _fit(
    model: PerturbationModel | nn.Module, data: Dataset | CellTable | Cells, options: Mapping[str, Any] | TrainOptions | None,
    run_dir: str | Path | None, config: Mapping[str, Any] | None, val: CellTable | None, set_size: int | None, matcher: str | None,
    resume: str | Path | None, callbacks: Sequence[Callable[[Trainer, int], None]], allow_unembedded: bool, preflight: bool,
    overrides: Mapping[str, Any], warned: list[str],
) -> TrainResult | None:
    """``fit``; ``warned``: the warnings shown so far (``recorded_warnings``), for the run directory's manifest."""
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"fit: config must be a config mapping (distgen.load_config(...)), got {type(config).__name__}")
    doc = dict(config or {})
    if "base" in doc:
        raise ConfigError("fit: config holds base:, which is read when a config is loaded; pass distgen.load_config(...)'s document")
    check_sections(doc)  # a typo (trian:) would leave its settings unused
    refuse_anndata("fit", data, FIT_TAKES)
    check = isinstance(data, Dataset) and preflight
    if not isinstance(model, FittedModel) and isinstance(data, Dataset | CellTable):  # a fitted model learns anew;
        check_vocabulary(model, data.info, "fit")  # Cells are read in the model's own vocabularies (_table)
    if isinstance(model, FittedModel):
        if isinstance(options, TrainOptions):
            raise TypeError(f"fit: {type(model).__name__} fits itself; give its fit: options as a mapping, not TrainOptions")
        caller = {**dict(options or {}), **overrides}
        given = {**fit_options(model, doc, caller), **caller}
        errors, inert = fit_option_problems(type(model), given)
        if errors:
            raise ConfigError("; ".join(errors))
        for note in inert:
            warn(note, InertSettingWarning)
        own, anything = fit_keys(type(model))
        model.fit(_table(model, data), **{k: v for k, v in given.items() if anything or k in own})
        if check:  # what a fitted model can predict is known once it is fitted; it has a fallback for the rest
            _warn(check_split(model, data, "test", allow_unembedded))
        return None
    if check:  # before any compute
        _warn(check_split(model, data, "test", allow_unembedded))
    if not isinstance(model, nn.Module) or not callable(getattr(model, "loss", None)):
        raise TypeError(f"fit: {type(model).__name__} is neither a TrainableModel (trained by distgen's trainer: an nn.Module "
                        "with loss(batch)) nor a FittedModel (with fit(train)); declare one of the two base classes")
    base = options.to_dict() if isinstance(options, TrainOptions) else dict(options or {})
    opts = train_options({**dict(doc.get("train") or {}), **base, **overrides})
    if isinstance(data, Dataset):
        if preflight:  # distgen train checked it before writing anything (its warning would come twice)
            check_set_size(model, data.section.set_size)
    else:
        check_set_size(model, set_size if set_size is not None else data_section(
            {k: v for k, v in (doc.get("data") or {}).items() if k not in DATASET_KEYS}).set_size)
    table = _table(model, data)
    prepare(model, table)
    if isinstance(data, Dataset):
        if set_size is not None or matcher is not None or val is not None:
            raise TypeError("fit: set_size, matcher and val come from the Dataset's data: section; change them there")
        _check_sampling(doc.get("data") or {}, data)
        source, val_source = data.sources(opts.sets_per_batch, opts.val_sets, opts.seed)
    else:
        _check_table_data(doc.get("data") or {}, table)
        ds = data_section({k: v for k, v in (doc.get("data") or {}).items() if k not in DATASET_KEYS})
        set_size = ds.set_size if set_size is None else set_size
        matcher = ds.matcher if matcher is None else matcher
        sampler = ds.sampler_options()  # as Dataset.sources (data.replacement was once ignored here)
        source = TableBatches(table, set_size, opts.sets_per_batch, matcher, opts.seed, control_sets=ds.control_sets, **sampler)
        val_source = TableBatches(val, set_size, opts.val_sets, matcher, opts.seed + 1, **sampler) if val is not None else None
    check_group_sizes(model, source, val_source if opts.val_every else None)
    if run_dir is not None:  # before the trainer locks the folder: a refused fit leaves it (and its manifest) as it was
        check_run_folder(Path(run_dir), resume, python_resume_option(Path(run_dir)), "run_dir")
    checked = False  # a resume on the run's data (its recorded hash), read from wherever data.dataset names it now
    if resume is not None and isinstance(data, Dataset):
        from distgen.train.run_files import resumed_on_same_data  # distgen train's check of a resume's data

        checked = resumed_on_same_data(None if run_dir is None else Path(run_dir), Path(resume), data.data.hash, data.section.dataset)
    whole = whole_run(model, data, run_dir, resume, opts, allow_unembedded)
    whole_config = {} if whole is None else {k: v for k, v in whole[0].items() if k != "preflight"}  # as distgen train's
    trainer_config = config if whole is None else whole_config
    moved = same_data_at(data.section.dataset) if checked and isinstance(data, Dataset) else contextlib.nullcontext()
    with float32_default(), moved:  # the batches are float32 whatever the caller's default dtype (the model's own draws follow it)
        trainer = Trainer(model, source, opts, val=val_source, run_dir=run_dir, config=trainer_config, info=table.info,
                          callbacks=callbacks)
        keep = trainer.run_dir is not None and trainer.env.is_main
        if keep and whole is not None:  # the folder is locked now (one writer)
            assert trainer.run_dir is not None and isinstance(data, Dataset)
            resumed = None
            if resume is not None:  # what distgen train records of a resume: the checkpoint, its step, the settings changed
                ckpt, state = read_checkpoint_state(resume, RESUME_FILES)
                resumed = resume_record(ckpt, state, whole_config)
            write_run_files(trainer.run_dir, whole[0], data, opts, trainer.env.world_size, str(trainer.device), resumed=resumed,
                            tables=whole[1])
        try:
            result = trainer.fit(resume=resume)
        except BaseException:  # training stopped on an error: what it warned before stays with the run
            if keep:
                with contextlib.suppress(OSError, ValueError):  # never in place of the error itself
                    record_warnings(trainer, data, warned)
            raise
        if keep:
            record_warnings(trainer, data, warned)
            if whole is not None:
                assert trainer.run_dir is not None
                record_training(trainer.run_dir / "manifest.json", result, opts)
    if trainer.ema is not None:
        model.load_state_dict({**model.state_dict(), **trainer.ema.state_dict()})
    model.eval()
    return result


def whole_run(
    model: object, data: object, run_dir: str | Path | None, resume: str | Path | None, opts: TrainOptions, allow_unembedded: bool,
) -> tuple[dict[str, Any], tuple[Any, ...]] | None:
    """The resolved config (``model``, ``data``, ``train``; ``preflight`` when ``allow_unembedded``) and table records of the
    run folder ``fit(..., run_dir=)`` writes, as ``distgen train`` does, for a model ``distgen.build`` made, trained on a
    ``Dataset``; None otherwise (checkpoints, ``metrics.csv`` and ``manifest.json`` only).

    The ``model:`` node is the one the model was built from (``built_from``), not a ``config=`` given to ``fit``, whose
    ``model:`` section ``fit`` does not read. A ``resume`` of a fit folder that holds no ``config.yaml`` (written before
    fit wrote whole run folders) goes on without one: its checkpoints' fingerprint is of the config given then.
    """
    record = built_from(model)
    if run_dir is None or record is None or not isinstance(data, Dataset):
        return None
    if resume is not None and not (run_folder_of(Path(resume)) / "config.yaml").is_file():
        return None
    resolved: dict[str, Any] = {"model": resolved_model(record.node), "data": data.section.to_dict(), "train": opts.to_dict()}
    if allow_unembedded:
        resolved["preflight"] = {"allow_unembedded": True}
    return resolved, record.tables


def record_warnings(trainer: Trainer, data: Any, warned: Sequence[str]) -> None:
    """Add ``warned`` to the ``warnings`` of ``trainer.run_dir/manifest.json`` (``distgen train`` wrote it; a run directory
    of ``fit`` alone gets one: versions, seed, data hashes, hardware), leaving out what its ``data.warnings`` already says."""
    assert trainer.run_dir is not None
    path = trainer.run_dir / "manifest.json"
    if not path.exists():
        hashes = data.hashes() if isinstance(data, Dataset) else None
        atomic_write_text(path, json.dumps(build_manifest(trainer.opts.seed, hashes, trainer.env.world_size, str(trainer.device)),
                                           indent=1, default=str))
    said = data.load_warnings if isinstance(data, Dataset) else ()
    add_warnings(path, [w for w in warned if w not in said])


def fit_options(model: Any, doc: Mapping[str, Any], caller: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``fit:`` options of a fitted model under config ``doc``, with ``seed`` from ``train.seed`` where it applies.

    A fitted model whose ``fit`` takes a ``seed`` (a stochastic fit: ``bayes_hier``'s SVI or NUTS) gets the
    config's ``train.seed`` when the config sets one and ``fit:`` does not: that is the replicate axis of
    ``distgen sweep``, which otherwise left the fit at the model's own seed, so every "seed" of a sweep
    repeated one fit (its spread over seeds read 0). Without ``train.seed`` the model keeps its own seed.
    ``fit`` (Python) and ``distgen run``/``sweep`` apply this one rule. ``caller``: the options ``fit``'s caller gives
    beside the config (they win over it): a ``seed`` among them is the fit's, so ``train.seed`` is neither applied nor
    named as overriding ``model.seed``.
    """
    options = dict(doc.get("fit") or {})
    train = doc.get("train") or {}
    if "seed" in options or "seed" in (caller or {}) or not isinstance(train, Mapping) or train.get("seed") is None:
        return options
    try:
        params = inspect.signature(model.fit).parameters
    except (TypeError, ValueError):
        return options
    if "seed" in params:
        options["seed"] = int(train["seed"])
        node = doc.get("model")
        own = node.get("seed") if isinstance(node, Mapping) else None
        if own is not None and own != options["seed"]:  # ran at train.seed without a word: a sweep grid over it gave one fit
            warn(f"model.seed={own} has no effect on the fit: train.seed={options['seed']} seeds it (the replicate axis of "
                 f"distgen sweep); to fit at {own}, set fit: {{seed: {own}}} or train.seed={own}", InertSettingWarning)
    return options


def fit_keys(cls: type[FittedModel]) -> tuple[list[str], bool]:
    """The ``fit:`` keys a ``FittedModel`` class takes (``fit``'s keyword parameters after ``train``) and whether
    it takes any key (a ``**kwargs`` catch-all)."""
    params = list(inspect.signature(cls.fit).parameters.values())[2:]  # self, train
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def _fitted_model_keys() -> dict[str, list[str]]:
    """``{model name: its fit: keys}`` of every registered fitted model (plugins are imported: only asked on an unknown key)."""
    from distgen.models import models

    out: dict[str, list[str]] = {}
    for name in models.names():
        try:
            cls = models.get(name)
        except Exception:  # a plugin that fails to load takes no key here; its own error comes when it is used
            continue
        if isinstance(cls, type) and issubclass(cls, FittedModel):
            out[name] = fit_keys(cls)[0]
    return out


def fit_option_problems(cls: type, options: Mapping[str, Any], name: str | None = None) -> tuple[list[str], list[str]]:
    """``(errors, inert)`` for a config's ``fit:`` section given to model class ``cls`` (registered as ``name``).

    A key ``cls.fit`` takes is fine. A key it does not take is an error (a typo) unless another registered
    fitted model takes it: then it is inert here (a sweep may share one ``fit:`` section between models).
    A trained model takes no ``fit:`` key (its options are the ``train:`` section).
    """
    if not options:
        return [], []
    fitted = isinstance(cls, type) and issubclass(cls, FittedModel)
    own, anything = fit_keys(cast(type[FittedModel], cls)) if fitted else ([], False)
    unknown = [str(k) for k in options if k not in own]
    if anything or not unknown:
        return [], []
    others = _fitted_model_keys()
    if name is None:
        from distgen.models import models

        name = next((n for n in models.names() if _loaded(n) is cls), cls.__name__)
    errors, inert = [], []
    for key in unknown:
        takers = [n for n, keys in others.items() if key in keys and n != name]
        if takers:
            why = "it is trained; its options are the train: section" if not fitted else (
                f"it takes {', '.join(own)}" if own else "it takes no fit: keys")
            inert.append(f"fit.{key} has no effect on model {name!r} ({why}); it is a fit: key of {', '.join(takers)}")
            continue
        close = near(key, sorted({k for keys in others.values() for k in keys} | set(own)))
        hint = f" Did you mean {close[0]!r}?" if close else ""
        takes = f"takes {', '.join(own)}" if own else "takes no fit: keys"
        errors.append(f"fit: unknown key {key!r} for model {name!r}, which {takes}; no registered fitted model takes it.{hint}")
    return errors, inert


def _loaded(name: str) -> Any:
    from distgen.models import models

    try:
        return models.get(name)
    except Exception:
        return None


def check_set_size(model: Any, set_size: int) -> None:
    """Refuse sets smaller than the model's loss needs (``min_set_size()``) before any step, naming the fix (exit 2);
    warn when the coupling has nothing to pair (sets of one cell pair each cell with its one source)."""
    need, why = model.min_set_size() if callable(getattr(model, "min_set_size", None)) else (1, "")
    if set_size < need:
        raise ConfigError(
            f"data.set_size={set_size} is below {need}, the fewest cells per set this model trains with ({why}). "
            f"Raise data.set_size to {need} or more, or change that setting"
        )
    coupling = getattr(model, "coupling", None)
    if set_size == 1 and coupling is not None and not isinstance(coupling, IndependentCoupling):
        warn(
            f"model.coupling ({type(coupling).__name__}) pairs source and target cells within a set, but data.set_size=1 leaves "
            "one cell per set: every coupling is the independent one; raise data.set_size to compare couplings",
            InertSettingWarning,
        )


def check_group_sizes(model: Any, train: Any, val: Any = None) -> None:
    """Refuse (``ConfigError``, exit 2, before any step) conditions with fewer cells than the model's loss needs per set
    (``min_set_size()``: the unbiased MMD needs two), where sets are drawn without replacement and so keep a small
    group's cells only: a set of such a condition stopped training whenever it was drawn, with advice (bigger sets)
    that could not help. ``train``/``val`` are batch sources; only in-memory ones (``TableBatches``) are checked."""
    need, why = model.min_set_size() if callable(getattr(model, "min_set_size", None)) else (1, "")
    if need <= 1:
        return
    for source, what in ((train, "training"), (val, "validation")):
        if not isinstance(source, TableBatches):
            continue
        sampler = source.sampler(0, 1)
        if sampler.replacement or sampler.sampling == "partition":  # every set is filled up to set_size from its own group
            continue
        small = [(int(g.numel()), int(g[0])) for g in sampler.groups if g.numel() < need]
        if not small:
            continue
        import torch

        # one condition at a time: a context label may hold ", ", the separator of describe_conditions' list
        names = [describe_conditions(sampler.table.labels.index(torch.tensor([f])), sampler.table.info) for _, f in small[:4]]
        shown = first_of([f"{n} ({c} cell{'s' if c > 1 else ''})" for n, (c, _) in zip(names, small)], 4, total=len(small))
        raise ConfigError(
            f"{len(small)} {what} condition(s) have fewer than {need} cells, the fewest per set this model's loss uses ({why}): "
            f"{shown}. Sets are drawn without replacement, so a set of such a condition would stop training when drawn. "
            "Set data.replacement: true (every set full; a small condition repeats its cells), make the distribution loss "
            "unbiased: false, or leave those conditions out (data.filter)"
        )


def _check_sampling(section: Mapping[str, Any], dataset: Dataset) -> None:
    """A config's set sampling must be the Dataset's (it samples the sets); say how to make them agree."""
    ours = dataset.section.to_dict()
    _check_held(section, dataset, "the Dataset's {}, whose cells are trained on", "the Dataset")
    for key, value in section.items():
        if key not in DATASET_KEYS and key in ours and ours[key] != value:
            raise ConfigError(
                f"fit: the config's data.{key}={value!r} differs from the Dataset's {ours[key]!r}, which samples the sets; "
                "load the Dataset from the config's data: section (distgen.load_data(**doc['data']))"
            )


def _check_table_data(section: Mapping[str, Any], table: CellTable) -> None:
    """A config's ``data.dataset``/``schema``/``split``/``hvg`` beside training cells given as a ``CellTable``.

    The table is trained on as given, so a config naming other data was read by nothing (``data.hvg: 64`` beside a table
    of 500 genes). A table taken from a Dataset (``Dataset.train_table``, ``meta[ORIGIN]``) is checked as that Dataset is
    (by meaning, ``distgen.data.holds``). Any other table is not: its data set, schema, split and gene selection cannot be
    known from its cells (not even ``hvg`` from its gene count: the panel keeps perturbed genes beside the HVGs).
    A table whose Dataset was garbage-collected is checked against the ``data:`` section and split its ``DatasetOrigin``
    kept (unchecked before 2026-12-07); a split only the cells could compare is refused, saying to keep the Dataset.
    """
    from distgen.data.prepared import ORIGIN

    ref = table.meta.get(ORIGIN)
    dataset = ref() if callable(ref) else None
    whose = "{} of the Dataset whose training cells were given (train_table)"
    if isinstance(dataset, Dataset):
        _check_held(section, dataset, whose, "the data")
    elif isinstance(ref, DatasetOrigin) and ref.section is not None:
        _check_held(section, ref, whose, "the data")


def _check_held(section: Mapping[str, Any], dataset: Dataset | DatasetOrigin, whose: str, what: str) -> None:
    """Refuse a config's ``data.dataset``/``schema``/``split``/``hvg`` that ``dataset`` does not hold (by meaning)."""
    assert dataset.section is not None
    ours = dataset.section.to_dict()
    for key in DATASET_KEYS:  # the Dataset holds the cells: another data set, panel or split in the config was read by nothing
        try:
            held = section.get(key) is None or key not in ours or holds(dataset, key, section[key])
        except NeedsCells:
            raise ConfigError(
                f"fit: the config's data.{key}={section[key]!r} differs from {whose.format(repr(ours[key]))} and cannot be "
                "checked: it might select the same cells, which only making the split from the data can tell, and the "
                "Dataset the table was taken from was garbage-collected (the table keeps its data: section and split, not "
                "its cells). Keep the Dataset (data = distgen.load_data(...); fit(model, data.train_table, ...)) or pass it "
                "to fit") from None
        if not held:
            raise ConfigError(
                f"fit: the config's data.{key}={section[key]!r} differs from {whose.format(repr(ours[key]))}, so the config's would "
                f"have no effect; load {what} from the config's data: section (distgen.load_data(**doc['data']))")


def _warn(messages: list[str]) -> None:
    """The pre-flight notes as ``PreflightWarning``s, by rank 0 alone under torchrun (every rank checks alike; without
    ``said_by_main`` each rank would warn them)."""
    with said_by_main(env_from_torchrun()):
        for m in messages:
            warn(m, PreflightWarning)


#: What ``fit`` takes as its data, as its refusals say it.
FIT_TAKES = "a Dataset (distgen.load_data), a CellTable or Cells"


def _table(model: Any, data: Dataset | CellTable | Cells) -> CellTable:
    if isinstance(data, Dataset):
        return data.train_table
    if isinstance(data, CellTable):
        return data
    if isinstance(data, Cells):
        info = getattr(model, "info", None)
        return data.to_table(info if isinstance(info, DataInfo) else vocabulary([data]))
    raise TypeError(f"fit: data must be {FIT_TAKES}, got {type(data).__name__}")


def prepare(model: nn.Module | PerturbationModel, train: CellTable) -> None:
    """Let components fit data-dependent structure (e.g. a gene graph) on the training cells.

    Calls ``model.prepare(train)`` when the model defines it, else ``prepare(train)`` of each
    submodule that does (``PADTransformer.prepare`` builds its co-expression graph).
    """
    hook = getattr(model, "prepare", None)
    if callable(hook):
        hook(train)
        return
    if isinstance(model, nn.Module):
        for sub in model.modules():
            hook = getattr(sub, "prepare", None)
            if sub is not model and callable(hook):
                hook(train)
