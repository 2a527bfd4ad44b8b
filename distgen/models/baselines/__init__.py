"""Baseline models that calibrate every evaluation (negative baselines and ceilings)."""

from distgen.models.baselines import additive, control, linear, mean_perturbation  # noqa: F401
