"""Couplings: pairing of source and target samples within a set."""

from distgen.couplings.base import Coupling, couplings

__all__ = ["Coupling", "couplings"]
