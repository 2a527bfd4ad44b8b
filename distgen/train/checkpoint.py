"""Checkpoints: safetensors weights + JSON state, written atomically, loaded without pickle.

A checkpoint is a directory ``<run>/checkpoints/step_<8-digit step>/`` holding ``model.safetensors``
(the bare model's weights), ``ema.safetensors`` (when EMA is on), ``optimizer.{safetensors,json}``,
``rng.{safetensors,json}`` and ``state.json`` (step, config and its fingerprint, scheduler and
early-stopping state). It is written into a hidden temp directory and renamed into place, then
``checkpoints/latest`` is replaced atomically: a kill mid-write never leaves a corrupt latest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from distgen.errors import DistgenError
from distgen.train.state_io import atomic_write_text, load_state, publish_dir, read_json, save_state, write_json

FORMAT = 1
FILES = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors", "rng.json", "state.json")


class CheckpointError(DistgenError, RuntimeError):
    """A checkpoint that is missing, truncated, altered or belongs to another config (exit code 1)."""


def fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the settings that define a training trajectory."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_diff(a: Any, b: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += config_diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{where}.{k}" if where else str(k))
        return out
    return [] if a == b else [f"{where}: {a!r} -> {b!r}"]


def save_checkpoint(
    ckpt_dir: Path,
    step: int,
    model_state: Mapping[str, Tensor],
    optimizer_state: Any,
    rng: Any,
    state: Mapping[str, Any],
    ema_state: Mapping[str, Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` under ``ckpt_dir`` atomically; prune to the newest ``keep``."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = ckpt_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
    if ema_state is not None:
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in ema_state.items()}, str(tmp / "ema.safetensors"))
    save_state(optimizer_state, tmp / "optimizer")
    save_state(rng, tmp / "rng")
    write_json(tmp / "state.json", {"format": FORMAT, "step": step, "has_ema": ema_state is not None, **state})
    final = ckpt_dir / name
    publish_dir(tmp, final)
    atomic_write_text(ckpt_dir / "latest", name + "\n")
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first (temp directories of killed writes ignored)."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and (p / "state.json").exists())


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory, its ``checkpoints/`` folder or the directory itself."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint path {str(p)!r} does not exist")
    if (p / "state.json").exists() or p.name.startswith("step_"):
        return p
    ckpts = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    latest = ckpts / "latest"
    if latest.exists():
        cand = ckpts / latest.read_text().strip()
        if cand.is_dir():
            return cand
    found = list_checkpoints(ckpts)
    if not found:
        raise CheckpointError(f"no checkpoint found under {str(p)!r}; train first (distgen train ... --out {p})")
    return found[-1]


@dataclass
class Checkpoint:
    """A loaded checkpoint (tensors on CPU)."""

    path: Path
    state: dict[str, Any]
    model: dict[str, Tensor]
    optimizer: Any
    rng: Any
    ema: dict[str, Tensor] | None

    @property
    def step(self) -> int:
        return int(self.state["step"])


def load_checkpoint(path: str | Path, weights_only: bool = False) -> Checkpoint:
    """Load a checkpoint; missing or truncated files raise ``CheckpointError`` naming the file."""
    ckpt = resolve_checkpoint(path)
    needed = ("model.safetensors", "state.json") if weights_only else FILES
    missing = [f for f in needed if not (ckpt / f).exists()]
    if missing:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} is incomplete: missing {', '.join(missing)}; use an earlier checkpoint")
    current = "state.json"
    try:
        state = read_json(ckpt / "state.json")
        current = "model.safetensors"
        model = load_file(str(ckpt / "model.safetensors"))
        ema = None
        if state.get("has_ema"):
            current = "ema.safetensors"
            ema = load_file(str(ckpt / "ema.safetensors"))
        optimizer = rng = None
        if not weights_only:
            current = "optimizer.safetensors/json"
            optimizer = load_state(ckpt / "optimizer")
            current = "rng.safetensors/json"
            rng = load_state(ckpt / "rng")
    except (SafetensorError, json.JSONDecodeError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} is corrupt or truncated ({current}: {exc}); resume from an earlier one "
            f"(--checkpoint {ckpt.parent}/step_...)"
        ) from None
    if state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(ckpt)!r} has format {state.get('format')!r}; this distgen reads {FORMAT}")
    return Checkpoint(ckpt, state, model, optimizer, rng, ema)


def check_compatible(ckpt: Checkpoint, config: Mapping[str, Any], fp: str) -> None:
    """Reject a checkpoint written under a different model/data/train config, naming the keys."""
    if ckpt.state.get("fingerprint") == fp:
        return
    diff = config_diff(ckpt.state.get("fingerprint_config", {}), config)
    shown = "; ".join(diff[:8]) + (f"; ... {len(diff) - 8} more" if len(diff) > 8 else "")
    raise CheckpointError(
        f"checkpoint {str(ckpt.path)!r} was written under a different config ({shown or 'fingerprint differs'}). "
        "Resume with the run's own config.yaml, or start a new run directory."
    )
