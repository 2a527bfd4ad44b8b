"""Baseline models that calibrate every evaluation (negative baselines and ceilings)."""

from distgen.models.baselines import control  # noqa: F401
