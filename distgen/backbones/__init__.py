"""Backbones: networks ``(x_t, t, condition) -> like x_t``."""

from distgen.backbones.base import CONDITION_FIELDS, Backbone, Condition
from distgen.registry import make_registry

backbones = make_registry("backbones", Backbone)

from distgen.backbones import cross_dit, mlp, pad_transformer  # noqa: E402,F401

__all__ = ["CONDITION_FIELDS", "Backbone", "Condition", "backbones"]
