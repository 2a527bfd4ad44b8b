"""Kernels shared by losses, encoders and metrics."""

from distgen.kernels.base import Kernel
from distgen.registry import make_registry

kernels = make_registry("kernels", Kernel)

from distgen.kernels import rbf  # noqa: E402,F401  (registers built-ins)

__all__ = ["Kernel", "kernels"]
