"""Conditioners: perturbation and covariate embedders."""

from distgen.conditioners.base import Conditioner, conditioners, pool_slots

__all__ = ["Conditioner", "conditioners", "pool_slots"]
