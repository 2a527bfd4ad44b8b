"""Distribution encoders: populations -> points in a Hilbert space."""

from distgen.encoders.base import Encoder, masked_mean
from distgen.registry import make_registry

encoders = make_registry("encoders", Encoder)

from distgen.encoders import deepsets, kme, mean, set_transformer  # noqa: E402,F401

__all__ = ["Encoder", "encoders", "masked_mean"]
