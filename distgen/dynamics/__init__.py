"""Generative dynamics: training objectives and samplers (no weights)."""

from distgen.dynamics.base import Dynamics, Field, masked_mse
from distgen.registry import make_registry

dynamics = make_registry("dynamics", Dynamics)

from distgen.dynamics import diffusion, flow_matching  # noqa: E402,F401

__all__ = ["Dynamics", "Field", "dynamics", "masked_mse"]
