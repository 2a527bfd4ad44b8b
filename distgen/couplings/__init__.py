"""Couplings: pairing of source and target samples within a set."""

from distgen.couplings.base import Coupling
from distgen.registry import make_registry

couplings = make_registry("couplings", Coupling)

from distgen.couplings import exact_ot, independent, sinkhorn  # noqa: E402,F401

__all__ = ["Coupling", "couplings"]
