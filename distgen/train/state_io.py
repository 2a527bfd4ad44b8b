"""Pickle-free persistence: nested state (dicts, lists, numbers, tensors) as safetensors + JSON.

``flatten`` pulls every tensor out of a nested structure into a flat ``{key: tensor}`` mapping
(written with safetensors) and leaves a JSON skeleton with ``{"__tensor__": key}`` placeholders.
Dict keys keep their type (int or str) and tuples stay tuples. Loading never unpickles anything,
so a checkpoint from a stranger cannot run code.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from distgen.atomic import atomic_write_text, share_mode
from distgen.jsonfile import load_json

__all__ = ["atomic_write_text", "flatten", "load_state", "publish_dir", "save_state", "unflatten"]


def flatten(obj: Any, tensors: dict[str, Tensor] | None = None, prefix: str = "t") -> tuple[Any, dict[str, Tensor]]:
    """``(json_skeleton, tensors)`` for a nested structure of dicts, lists, tuples, scalars and tensors."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}, tensors
    if isinstance(obj, dict):
        items = [[k, flatten(v, tensors, prefix)[0]] for k, v in obj.items()]
        for k, _ in items:
            if not isinstance(k, str | int) or isinstance(k, bool):
                raise TypeError(f"cannot store dict key {k!r} of type {type(k).__name__}; use str or int keys")
        return {"__dict__": items}, tensors
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, prefix)[0] for v in obj]}, tensors
    if isinstance(obj, list):
        return [flatten(v, tensors, prefix)[0] for v in obj], tensors
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj, tensors
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickle; convert it to tensors or numbers")


def unflatten(skeleton: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of ``flatten``."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["__dict__"]}
        if "__tuple__" in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def save_state(obj: Any, path_stem: Path) -> None:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` for a nested state."""
    skeleton, tensors = flatten(obj)
    save_file(tensors, str(path_stem.with_suffix(".safetensors")))
    write_json(path_stem.with_suffix(".json"), skeleton)


def load_state(path_stem: Path) -> Any:
    """Read a state written by ``save_state`` (tensors-only safetensors + JSON; no pickle). Its JSON skeleton is an object
    (``save_state`` writes the optimizer's and the generators' state dicts); another JSON value raises ``ValueError``."""
    tensors = load_file(str(path_stem.with_suffix(".safetensors")))
    skeleton = read_json(path_stem.with_suffix(".json"))
    if not isinstance(skeleton, dict):
        raise ValueError(f"{path_stem.with_suffix('.json').name} holds a JSON {type(skeleton).__name__}, not an object")
    return unflatten(skeleton, tensors)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False), encoding="utf-8")


def read_json(path: Path) -> Any:
    """The JSON value of ``path`` (``distgen.jsonfile.load_json``: UTF-8 only); ``FileNotFoundError`` when it is missing,
    another ``OSError`` or ``ValueError`` when it cannot be read: the checkpoint readers word "missing" and "corrupt" from
    the exception type."""
    return load_json(path)


def publish_dir(tmp: Path, final: Path) -> None:
    """Atomically move a fully written directory ``tmp`` to ``final`` (replacing an old one). Its files get the mode a
    plain write gives (``distgen.atomic.share_mode``: safetensors writes ``0600``), so others can read the run."""
    for f in tmp.iterdir():
        share_mode(f)
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def rng_state() -> dict[str, Any]:
    """Torch CPU (and CUDA) generator states as uint8 tensors."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
