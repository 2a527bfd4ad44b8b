"""``distgen train``: a config document -> a run directory with a trained model.

The run directory holds ``config.yaml`` (fully resolved), ``manifest.json`` (versions, git
commit, data and split hashes, seed, hardware, pre-flight notes, the warnings the run showed), ``split.json``, ``info.json``,
``data_record.json`` and ``data_record.safetensors`` (``distgen.data.record``: what predicting another file needs of the data),
``embedding_tables.json`` when the model read embedding-table files (``distgen.conditioners.table_record``: their keys and
width, so that loading the run needs them no more), ``metrics.csv``, ``tensorboard/`` (when installed) and ``checkpoints/``. Only rank 0 writes.
``train_model`` is the same with the ``Dataset`` handed in and the trained model handed back
(``distgen run`` trains this way, loading its data once).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distgen.conditioners import table_record
from distgen.config import RUN_SECTIONS, ConfigError, InertSettingWarning, check_sections, read_config
from distgen.data.prepared import Dataset
from distgen.data.section import data_section
from distgen.errors import warn
from distgen.models.base import is_trainable
from distgen.models.generator import build_model
from distgen.models.preflight import check_split
from distgen.train import distributed as D
from distgen.train.batches import mix_seed
from distgen.train.checkpoint import FILES as CHECKPOINT_FILES
from distgen.train.checkpoint import (
    RESUME_FILES,
    CheckpointError,
    check_run_folder,
    check_state_compatible,
    fingerprint,
    list_checkpoints,
    read_checkpoint_state,
    resolve_checkpoint,
    same_data_at,
    verify_digests,
)
from distgen.train.device import float32_default, select_device
from distgen.train.lock import RunLock
from distgen.train.loop import check_group_sizes, check_set_size, fit, fit_option_problems
from distgen.train.manifest import add_warnings
from distgen.train.options import TrainOptions, train_options
from distgen.train.resources import check_memory
from distgen.train.run_files import (
    record_training,
    resolved_model,
    resume_record,
    resumed_on_same_data,
    run_folder_of,
    write_run_files,
)
from distgen.train.trainer import TrainResult
from distgen.warned import recorded_warnings
from distgen.wording import did_you_mean

SECTIONS = RUN_SECTIONS
PREFLIGHT_KEYS = ("allow_unembedded",)  #: keys of the optional ``preflight:`` section
INIT_KEY = 1_000_001  #: seed key of weight initialisation


def preflight_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The optional ``preflight:`` section (``{allow_unembedded: true}``), checked."""
    section = doc.get("preflight") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"preflight: must be a mapping like {{allow_unembedded: true}}, got {section!r}")
    unknown = sorted(set(section) - set(PREFLIGHT_KEYS))
    if unknown:
        raise ConfigError(f"preflight: unknown key(s) {unknown}.{did_you_mean(unknown, PREFLIGHT_KEYS)} Allowed: {', '.join(PREFLIGHT_KEYS)}")
    allow = section.get("allow_unembedded", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"preflight.allow_unembedded must be true or false, got {allow!r}")
    return dict(section)


def resolve_document(doc: Mapping[str, Any]) -> tuple[dict[str, Any], TrainOptions, Any]:
    """Validate a run document; returns (resolved document, train options, data section)."""
    check_sections(doc)
    if "model" not in doc:
        raise ConfigError("the config has no 'model' section; start from a preset (base: scdfm-small) or add model: {name: generator, ...}")
    opts = train_options(doc.get("train"))
    ds = data_section(doc.get("data"))
    pre = preflight_section(doc)
    resolved = {"model": resolved_model(doc["model"]), "data": ds.to_dict(), "train": opts.to_dict()}
    if pre:
        resolved["preflight"] = pre
    if doc.get("predict"):
        resolved["predict"] = dict(doc["predict"])  # read by distgen predict (distgen.pipeline.predict.predict_section)
    return resolved, opts, ds


@dataclass
class TrainedRun:
    """What ``train_model`` leaves: the trained model (EMA weights when kept), its data and the trainer's result."""

    model: Any
    dataset: Dataset
    result: TrainResult
    notes: list[str] = field(default_factory=list)


def train_model(
    doc: Mapping[str, Any], out: str | Path, dataset: Dataset | None = None, resume: bool | str | Path = False,
    before_training: Callable[[], None] | None = None, preset: str | None = None, keep_group: bool = False,
) -> TrainedRun:
    """Train the model of a loaded config document into run directory ``out``.

    ``dataset`` is the run's data when already loaded (else it is loaded from ``doc``'s ``data:``).
    The model is checked against the split's held-out conditions before any compute
    (``distgen.models.preflight.check_split``). ``resume=True`` continues from the newest checkpoint
    in ``out``; a path continues from that checkpoint (``resume_source``: ``out``'s newest, or any
    checkpoint when ``out`` holds none). Without it, an ``out`` that already holds checkpoints is
    refused. ``out`` is locked, and a resume checked against its checkpoint's config, before anything
    is written: a refused resume or a second process leaves ``config.yaml`` and ``manifest.json`` as
    they were. ``before_training`` is called once every check passed, before anything is
    written (``distgen run`` records its experiment there, so a refused run leaves no record). ``preset``: the preset
    the config derives from (``distgen.config.preset_of``), kept in the manifest for the report's "changed from the
    preset" table. ``keep_group``: under ``torchrun``, stay in the process group after a training that ended well, for
    the caller's next collective step (``distgen run`` predicts on every rank, then leaves it): leaving it and joining a
    new group in the same processes could fail to connect (a new gloo mesh, on the keys of the old one).
    """
    with recorded_warnings() as warned:  # every UserWarning shown goes to the manifest's warnings too
        return _train_model(doc, Path(out), dataset, resume, before_training, warned, preset, keep_group)


def _train_model(
    doc: Mapping[str, Any], out: Path, dataset: Dataset | None, resume: bool | str | Path,
    before_training: Callable[[], None] | None, warned: list[str], preset: str | None = None, keep_group: bool = False,
) -> TrainedRun:
    """``train_model``; ``warned``: the warnings shown so far (``recorded_warnings``), for the manifest."""
    resolved, opts, ds = resolve_document(doc)
    allow = bool(resolved.get("preflight", {}).get("allow_unembedded", False))
    env = D.env_from_torchrun()
    check_run_folder(out, resume)  # a folder with checkpoints needs --resume; --resume needs one (RunFolderError, exit 2)
    with D.said_by_main(env):  # its warnings (latest names a checkpoint that is gone...) once, by rank 0
        source = resume_source(out, resume)  # the checkpoint a resume continues (refusing one that would overwrite later work)
    if dataset is None:
        split_file = None
        if source is not None:  # the run's own split: this folder's, or that of the run the checkpoint comes from
            split_file = next((f for f in (out / "split.json", run_folder_of(source) / "split.json") if f.exists()), None)
        dataset = Dataset.load(ds, split_file)
    checked = False  # the data's content is the run's (its recorded hash): the data.dataset path may have moved
    if source is not None:
        checked = resumed_on_same_data(out, source, dataset.data.hash, dataset.section.dataset)
    # sizes that cannot fit fail here, in seconds, naming the knob (distgen.train.resources); check_memory=false: nothing
    # reads the estimate (it only refuses), and its meta builds took a large share of a tiny run on a loaded machine
    if opts.check_memory:
        check_memory(resolved["model"], dataset.info, dataset.seen_perturbations(), opts, ds.set_size,
                     select_device(opts.device, env.local_rank), env.world_size)
    torch.manual_seed(mix_seed(opts.seed, INIT_KEY))  # initial weights depend on the seed only
    with table_record.collecting() as tables:  # the table files it reads: the run records their keys (embedding_tables.json)
        model = build_model(resolved["model"], dataset.info, dataset.seen_perturbations())
    if not is_trainable(model):
        raise ConfigError(f"model {resolved['model'].get('name')!r} fits itself (a FittedModel) and has nothing for the trainer; "
                          "distgen run fits and evaluates it")
    check_set_size(model, ds.set_size)  # before anything is written
    train_source, val_source = dataset.sources(opts.sets_per_batch, opts.val_sets, opts.seed)
    check_group_sizes(model, train_source, val_source if opts.val_every else None)
    errors, inert = fit_option_problems(type(model), doc.get("fit") or {}, resolved["model"].get("name"))
    if errors:
        raise ConfigError("; ".join(errors))
    for note in inert:  # a fit: section shared with fitted models (a sweep)
        warn(note, InertSettingWarning)
    with D.said_by_main(env):  # every rank checks; rank 0 says the notes
        notes = check_split(model, dataset, "test", allow)
        for note in notes:
            print(note, file=sys.stderr)
    trainer_config = {k: v for k, v in resolved.items() if k not in ("preflight", "predict")}  # not part of the checkpoint fingerprint
    # one writer: the folder is locked before anything is written (a second process is refused, leaving the files of the
    # run in progress as they are), and a resume is checked against its checkpoint's config before config.yaml is replaced
    created = not out.exists()
    lock = RunLock(out, "train").acquire() if env.is_main else None
    written = False
    try:
        record = None
        if source is not None:
            fp_config = {k: v for k, v in trainer_config.items() if k != "train"} | {"train": opts.fingerprint_dict()}
            source, state = read_checkpoint_state(source)
            with same_data_at(ds.dataset) if checked else contextlib.nullcontext():
                check_state_compatible(source, state, fp_config, fingerprint(fp_config), env.world_size)
            record = resume_record(source, state, trainer_config)
        if before_training is not None:
            before_training()
        if env.is_main:
            device = select_device(opts.device, env.local_rank)
            write_run_files(out, resolved, dataset, opts, env.world_size, str(device), resumed=record, notes=notes, tables=tables,
                            preset=preset)
            written = True
        with same_data_at(ds.dataset) if checked else contextlib.nullcontext():
            result = fit(model, dataset, opts, out, config=trainer_config, resume=source, preflight=False)
    except BaseException:
        D.shutdown(wait=False)  # another rank may never reach a barrier; torchrun stops the group
        if written:  # a run stopped by an error keeps what it warned before it (a refused one wrote no manifest)
            with contextlib.suppress(OSError, ValueError):  # never in place of the error itself
                add_warnings(out / "manifest.json", [w for w in warned if w not in dataset.load_warnings])
        if lock is not None:
            lock.release()
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # refused before anything was written: no empty run folder is left behind
        raise
    if lock is not None:
        lock.release()
    if not keep_group:
        D.shutdown()
    assert result is not None  # a TrainableModel always goes through the trainer
    if result.stopped_by_budget:
        notes = [*notes, f"training stopped by its budget train.minutes={opts.minutes:g} at step {result.step} of {opts.steps} "
                         f"({result.seconds / 60:.1f} min); the model is that checkpoint's"]
    if env.is_main and (out / "manifest.json").exists():
        record_training(out / "manifest.json", result, opts)
        add_warnings(out / "manifest.json", [w for w in warned if w not in dataset.load_warnings])  # data.warnings has those
    return TrainedRun(model, dataset, result, notes)


def train_run(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    overrides: Sequence[str] = (),
    resume: bool | str | Path = False,
) -> TrainResult:
    """Train the model of ``config`` (preset name, YAML path or mapping) into run directory ``out`` (``distgen train``)."""
    with float32_default():  # whatever the caller's torch default dtype (distgen.train.device.float32_default)
        loaded = read_config(config, overrides)  # one read: a piped config gives its preset too
        return train_model(loaded.doc, out, resume=resume, preset=loaded.preset).result


def resume_source(out: Path, resume: bool | str | Path) -> Path | None:
    """The checkpoint folder a resume of run folder ``out`` continues from (None: no resume).

    ``resume=True`` is ``out``'s newest checkpoint. A checkpoint path is refused (``ConfigError``) when ``out``
    already holds checkpoints and it is not the newest of them: training from there would replace ``out``'s
    later checkpoints and drop its ``metrics.csv`` rows after that step (an earlier one of ``out``), or mix two
    runs in one folder (another folder's). Branching from it into a new folder is the way, and the message says so.
    """
    if resume is False:
        return None
    ckpts = out / "checkpoints"
    if resume is True:
        return resolve_checkpoint(out, RESUME_FILES)
    source = resolve_checkpoint(resume, RESUME_FILES)
    found = list_checkpoints(ckpts)
    if not found:
        return source
    newest = found[-1]
    if source.resolve() == newest.resolve():
        return source
    branch = f"to continue from it, train into a new folder: distgen train CONFIG --out NEW_DIR --resume {source}"
    if source.parent.resolve() == ckpts.resolve():
        later = [p for p in found if p.name > source.name]
        if not any(intact(p) for p in later):  # the later ones are corrupt (what the integrity error suggests): replaced
            print(f"note: resuming {out} from {source.name}; the later checkpoint(s) {', '.join(p.name for p in later)} fail "
                  "their integrity check and will be replaced", file=sys.stderr)
            return source
        raise ConfigError(
            f"--resume {source}: {out} has later checkpoints ({', '.join(p.name for p in found if p.name > source.name)}); "
            f"training from {source.name} would replace them and drop the metrics.csv rows after it. Resume the newest "
            f"(--resume without a path), or {branch}"
        )
    raise ConfigError(
        f"--resume {source}: that checkpoint belongs to another folder, and {out} holds checkpoints of its own (newest "
        f"{newest.name}); continuing it here would mix two runs (their checkpoints and metrics.csv). Resume {out}'s own "
        f"(--resume without a path), or {branch}"
    )


def intact(ckpt: Path) -> bool:
    """Whether checkpoint folder ``ckpt`` is complete and every file matches the digest in its ``state.json`` (no tensor read)."""
    try:
        _, state = read_checkpoint_state(ckpt)
        files = tuple(f for f in (*CHECKPOINT_FILES, "ema.safetensors") if f != "state.json")
        if not all((ckpt / f).exists() for f in CHECKPOINT_FILES):
            return False
        verify_digests(ckpt, state, files)
    except CheckpointError:
        return False
    return True
