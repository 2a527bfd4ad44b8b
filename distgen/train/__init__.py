"""Training: the loop that fits any assembled model."""

from distgen.train.loop import fit

__all__ = ["fit"]
