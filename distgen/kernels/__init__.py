"""Kernels shared by losses, encoders and metrics, and the distances built on them."""

from distgen.kernels.base import InnerProductKernel, Kernel, kernels
from distgen.kernels.distances import energy_distance, mmd2

__all__ = ["InnerProductKernel", "Kernel", "energy_distance", "kernels", "mmd2"]
