"""Whole models behind one predict contract: the assembled generator, baselines, plugin models."""

from distgen.models.base import FittedModel, PerturbationModel, TrainableModel, is_trainable
from distgen.registry import make_registry

models = make_registry("models", PerturbationModel)

from distgen.models import baselines, generator  # noqa: E402,F401

__all__ = ["FittedModel", "PerturbationModel", "TrainableModel", "is_trainable", "models"]
