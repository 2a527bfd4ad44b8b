"""Generative dynamics: training objectives and samplers (no weights), built from small registered parts."""

from distgen.dynamics.base import Dynamics, Field, dynamics, masked_mse

__all__ = ["Dynamics", "Field", "dynamics", "masked_mse"]
