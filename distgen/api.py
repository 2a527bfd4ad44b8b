"""The Python API: the calls the CLI makes, one or two lines each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from distgen.config import load_config
from distgen.models.base import PerturbationModel
from distgen.models.generator import build_model
from distgen.registry import KINDS, ComponentInfo, all_registries, registry
from distgen.types import DataInfo


def components(kind: str | None = None) -> list[ComponentInfo]:
    """Self-descriptions of every registered component (of one ``kind`` if given), plugins included."""
    regs = [registry(kind)] if kind else [r for k, r in sorted(all_registries().items(), key=lambda kv: _order(kv[0]))]
    return [info for reg in regs for info in reg.infos()]


def build(
    config: str | Path | Mapping[str, Any],
    info: DataInfo,
    overrides: Sequence[str] = (),
    seen_perturbations: Sequence[str] | None = None,
) -> PerturbationModel:
    """Build the model of a preset name, YAML path or config mapping for a dataset's ``info``.

    ``config`` may be a whole document (with a ``model`` section) or a bare model node.
    """
    doc = load_config(config, overrides)
    node = doc.get("model", doc)
    return build_model(node, info, seen_perturbations)


def _order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)
