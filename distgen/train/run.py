"""``distgen train``: a config document -> a run directory with a trained model.

The run directory holds ``config.yaml`` (fully resolved), ``manifest.json`` (versions, git
commit, data and split hashes, seed, hardware), ``split.json``, ``info.json``, ``metrics.csv``,
``tensorboard/`` (when installed) and ``checkpoints/``. Only rank 0 writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from distgen.config import ConfigError, load_config, resolve_node, save_yaml
from distgen.models.generator import build_model
from distgen.train import distributed as D
from distgen.train.batches import mix_seed
from distgen.train.checkpoint import CheckpointError, list_checkpoints
from distgen.train.data_section import RunData, data_section, load_run_data
from distgen.train.device import select_device
from distgen.train.loop import prepare
from distgen.train.manifest import build_manifest
from distgen.train.options import TrainOptions, train_options
from distgen.train.resources import check_memory
from distgen.train.state_io import atomic_write_text
from distgen.train.trainer import Trainer, TrainResult

SECTIONS = ("model", "data", "train")
OTHER_SECTIONS = frozenset({"sweep", "fit", "evaluate", "description"})  #: read by other commands; ignored here
INIT_KEY = 1_000_001  #: seed key of weight initialisation


def resolve_document(doc: Mapping[str, Any]) -> tuple[dict[str, Any], TrainOptions, Any]:
    """Validate a run document; returns (resolved document, train options, data section)."""
    unknown = sorted(set(doc) - set(SECTIONS) - OTHER_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown top-level section(s) {unknown}; a run config has {', '.join(SECTIONS)} (and base:)")
    if "model" not in doc:
        raise ConfigError("the config has no 'model' section; start from a preset (base: scdfm-small) or add model: {name: generator, ...}")
    opts = train_options(doc.get("train"))
    ds = data_section(doc.get("data"))
    try:
        model = resolve_node("models", doc["model"])
    except (TypeError, ValueError, KeyError):
        model = dict(doc["model"])
    return {"model": model, "data": ds.to_dict(), "train": opts.to_dict()}, opts, ds


def train_run(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    overrides: Sequence[str] = (),
    resume: bool | str | Path = False,
) -> TrainResult:
    """Train the model of ``config`` (preset name, YAML path or mapping) into run directory ``out``.

    ``resume=True`` continues from the newest checkpoint in ``out``; a path continues from that
    checkpoint. Without it, an ``out`` that already holds checkpoints is refused.
    """
    doc = load_config(config, overrides)
    resolved, opts, ds = resolve_document(doc)
    out = Path(out)
    env = D.env_from_torchrun()
    has_ckpt = bool(list_checkpoints(out / "checkpoints"))
    if has_ckpt and resume is False:
        raise CheckpointError(f"{out} already holds checkpoints; pass --resume to continue that run or choose a new --out")
    if resume is True and not has_ckpt:
        raise CheckpointError(f"--resume: {out} holds no checkpoint to resume from")
    split_file = out / "split.json" if resume is not False and (out / "split.json").exists() else None
    rd = load_run_data(ds, split_file)
    # sizes that cannot fit fail here, in seconds, naming the knob (distgen.train.resources)
    check_memory(resolved["model"], rd.info, rd.seen_perturbations(), opts, ds.set_size, select_device(opts.device, env.local_rank), env.world_size)
    torch.manual_seed(mix_seed(opts.seed, INIT_KEY))  # initial weights depend on the seed only
    model = build_model(resolved["model"], rd.info, rd.seen_perturbations())
    prepare(model, rd.train_table)  # type: ignore[arg-type]
    train, val = rd.sources(opts.sets_per_batch, opts.val_sets, opts.seed)
    trainer = Trainer(model, train, opts, val=val, run_dir=out, config=resolved, info=rd.info)  # type: ignore[arg-type]
    if env.is_main:
        write_run_files(out, resolved, rd, opts, trainer, resumed=resume is not False)
    D.barrier()
    try:
        result = trainer.fit(resume=out if resume is True else (resume or None))
    except BaseException:
        D.shutdown(wait=False)  # another rank may never reach a barrier; torchrun stops the group
        raise
    D.shutdown()
    return result


def write_run_files(out: Path, resolved: dict[str, Any], rd: RunData, opts: TrainOptions, trainer: Trainer, resumed: bool = False) -> None:
    """config.yaml, manifest.json, split.json and info.json (rank 0); a resume is appended to the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(resolved, out / "config.yaml")
    manifest = build_manifest(opts.seed, rd.hashes(), trainer.env.world_size, str(trainer.device))
    manifest["tensorboard"] = "tensorboard/" if _has_tensorboard() else "off: the 'tensorboard' package is not installed"
    if resumed and (out / "manifest.json").exists():
        first = json.loads((out / "manifest.json").read_text())
        manifest = {**first, "resumes": [*first.get("resumes", []), manifest]}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str))
    rd.split.save(out / "split.json")
    atomic_write_text(out / "info.json", json.dumps(rd.info.to_dict()))


def _has_tensorboard() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
