"""Read an official ``.pt``/``.ckpt`` file with ``torch.load(weights_only=True)``: no pickled code runs.

scDFM saves a plain dictionary of tensors and numbers, which the restricted unpickler reads as is.
PerturbDiff saves a PyTorch-Lightning checkpoint whose ``hyper_parameters`` hold OmegaConf
containers; those classes are allow-listed (as the official loader itself does) when ``omegaconf``
is installed, and only for this one load. Anything else the restricted unpickler refuses is
reported with the class it met and how to get a loadable file.
"""

from __future__ import annotations

import pickle
import typing
from pathlib import Path
from typing import Any

import torch

from distgen.models.official.common import OfficialCheckpointError

EXTRACT = (
    "or, in the official code's environment, keep only the tensors: "
    "python -c \"import torch; c = torch.load('{path}', map_location='cpu', weights_only=False); "
    "torch.save({{k: v for k, v in c.items() if k in ('state_dict', 'current_model_state', 'model_state_dict', 'iteration', 'global_step')}}, "
    "'{path}.tensors.pt')\" and import that file (its metadata must then be passed as options)"
)


def _omegaconf_globals() -> list[Any] | None:
    try:
        from omegaconf import DictConfig, ListConfig, base, nodes
    except ImportError:
        return None
    names = ("AnyNode", "BooleanNode", "BytesNode", "EnumNode", "FloatNode", "IntegerNode", "InterpolationResultNode",
             "PathNode", "StringNode", "ValueNode")
    found = [DictConfig, ListConfig, base.Box, base.Container, base.ContainerMetadata, base.Metadata, base.Node, base.SCMode]
    found += [getattr(nodes, n) for n in names if hasattr(nodes, n)]
    return [*found, (typing.Any, "typing.Any")]


def read_official(path: str | Path) -> dict[str, Any]:
    """The checkpoint object (a dict) of an official file, loaded without executing pickled code."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"official checkpoint {str(p)!r} does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "omegaconf" not in msg:
            raise OfficialCheckpointError(
                f"{p} cannot be read with torch.load(weights_only=True): {_first_line(msg)}. distgen does not unpickle arbitrary "
                "objects (a checkpoint from a stranger could run code); " + EXTRACT.format(path=p)
            ) from None
        allowed = _omegaconf_globals()
        if allowed is None:
            raise OfficialCheckpointError(
                f"{p} is a PyTorch-Lightning checkpoint whose hyper-parameters are OmegaConf objects; install omegaconf "
                "(pip install omegaconf) so distgen can allow-list exactly those classes for torch.load(weights_only=True), "
                + EXTRACT.format(path=p)
            ) from None
        try:
            with torch.serialization.safe_globals(allowed):
                obj = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc2:
            raise OfficialCheckpointError(
                f"{p} holds objects beyond tensors and OmegaConf configs that torch.load(weights_only=True) refuses: "
                f"{_first_line(str(exc2))}; " + EXTRACT.format(path=p)
            ) from None
    if not isinstance(obj, dict):
        raise OfficialCheckpointError(f"{p} holds a {type(obj).__name__}, not a checkpoint dictionary")
    return obj


def _first_line(msg: str) -> str:
    lines = [ln.strip() for ln in msg.splitlines() if "Unsupported global" in ln or "GLOBAL" in ln]
    return lines[0] if lines else msg.splitlines()[0][:300]


def to_plain(obj: Any) -> Any:
    """OmegaConf containers (or anything mapping/sequence-like) -> plain dicts and lists."""
    if hasattr(obj, "items"):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple) or type(obj).__name__ == "ListConfig":
        return [to_plain(v) for v in obj]
    return obj
