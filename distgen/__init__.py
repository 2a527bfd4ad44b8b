"""distgen: a framework of swappable components for single-cell perturbation response models.

Importing ``distgen`` is cheap; registries and heavier modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from distgen import runtime as _runtime  # no torch import: sets OpenMP wait settings before torch loads

_runtime.configure_environment()

_LAZY = {
    "get_registry": ("distgen.registry", "registry"),
    "all_registries": ("distgen.registry", "all_registries"),
    "load_config": ("distgen.config", "load_config"),
    "build_component": ("distgen.config", "build_component"),
    "build_model": ("distgen.models.generator", "build_model"),
    "components": ("distgen.api", "components"),
    "build": ("distgen.api", "build"),
    "load_data": ("distgen.api", "load_data"),
    "fit": ("distgen.train.loop", "fit"),
    "Cells": ("distgen.types", "Cells"),
    "predict": ("distgen.api", "predict"),
    "evaluate": ("distgen.api", "evaluate"),
    "run": ("distgen.api", "run"),
    "load_run": ("distgen.api", "load_run"),
    "sweep": ("distgen.api", "sweep"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'distgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
