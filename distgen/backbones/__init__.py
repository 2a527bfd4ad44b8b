"""Backbones: networks ``(x_t, t, condition) -> like x_t``."""

from distgen.backbones.base import CONDITION_FIELDS, Backbone, Condition, backbones, controls_padded

__all__ = ["CONDITION_FIELDS", "Backbone", "Condition", "backbones", "controls_padded"]
