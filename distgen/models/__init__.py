"""Whole models behind one predict contract: the assembled generator, baselines, plugin models."""

from distgen.models.base import FittedModel, PerturbationModel, TrainableModel, is_trainable, models

__all__ = ["FittedModel", "PerturbationModel", "TrainableModel", "is_trainable", "models"]
