"""Whole models behind one predict contract: the assembled generator, baselines, plugin models."""

from distgen.models.base import PerturbationModel, models

__all__ = ["PerturbationModel", "models"]
