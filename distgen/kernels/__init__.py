"""Kernels shared by losses, encoders and metrics, and the distances built on them."""

from distgen.kernels.base import Kernel
from distgen.registry import make_registry

kernels = make_registry("kernels", Kernel)

from distgen.kernels import energy, imq, linear, rbf  # noqa: E402,F401  (registers built-ins)
from distgen.kernels.distances import energy_distance, mmd2  # noqa: E402

__all__ = ["Kernel", "energy_distance", "kernels", "mmd2"]
