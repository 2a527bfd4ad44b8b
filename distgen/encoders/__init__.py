"""Distribution encoders: populations -> points in a Hilbert space."""

from distgen.encoders.base import Encoder, encoders, masked_mean

__all__ = ["Encoder", "encoders", "masked_mean"]
