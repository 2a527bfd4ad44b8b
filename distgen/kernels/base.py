"""Kernel interface: positive-definite (or conditionally p.d.) kernels over batched cell sets.

One kernel object is shared by losses, encoders and metrics, so "the Hilbert space a model is
judged in" is a single config node. Kernels hold configuration only (no weights).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor

from distgen.capabilities import KernelCapabilities
from distgen.registry import Registry


class Kernel(ABC):
    """k(x, y) for batched sets; ``gram(x [..., n, D], y [..., k, D]) -> [..., n, k]``.

    ``ref`` (``[..., r, D]``) and ``ref_mask`` (``[..., r]``) carry the data from which
    data-dependent hyper-parameters (e.g. a median-heuristic bandwidth) are set; kernels without
    such parameters ignore them. Implementations must be autograd-safe and device-agnostic.
    """

    capabilities: KernelCapabilities = KernelCapabilities()

    @abstractmethod
    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        """Kernel matrix ``[..., n, k]`` between the rows of ``x`` and ``y``."""

    def bind(self, ref: Tensor, ref_mask: Tensor | None = None) -> Kernel:
        """A kernel whose data-dependent hyper-parameters are frozen from ``ref [..., r, D]``.

        Distances that evaluate the Gram matrix in several blocks (chunking) bind once, so that a
        median-heuristic bandwidth is computed once per set and is the same for every block. The
        default (a kernel without data-dependent parameters) returns ``self``.
        """
        return self

    def __call__(self, x: Tensor, y: Tensor, **kw: Any) -> Tensor:
        return self.gram(x, y, **kw)

    def describe(self) -> dict[str, Any]:
        """Name and parameters, recorded next to every result computed with this kernel."""
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"kernel": type(self).__name__, **params}


class InnerProductKernel(Kernel):
    """A kernel of ``x . y``, ``|x|^2`` and ``|y|^2`` alone (linear and radial kernels): ``capabilities.inner_product``.

    Besides ``gram`` it gives ``from_gram``, so distances between sets take every kernel value from a
    few matrix products (``kernels.distances.gram_sums``) instead of elementwise passes over the features.
    """

    capabilities: KernelCapabilities = KernelCapabilities(inner_product=True)

    @abstractmethod
    def from_gram(self, g: Tensor, x_sq: Tensor, y_sq: Tensor) -> Tensor:
        """Kernel matrix ``[..., n, k]`` from inner products ``g = x . y`` and squared norms ``x_sq [..., n]``, ``y_sq [..., k]``.

        Once bound when the kernel has data-dependent parameters (see ``bind``); ``gram(x, y)`` equals
        ``from_gram(x @ y.T, |x|^2, |y|^2)`` up to rounding.
        """


#: The kernels registry: built-ins here, plugins from entry points ``distgen.kernels``.
kernels: Registry[Kernel] = Registry(
    "kernels",
    Kernel,
    {
        "energy": "distgen.kernels.energy:EnergyKernel",
        "imq": "distgen.kernels.imq:IMQKernel",
        "linear": "distgen.kernels.linear:LinearKernel",
        "rbf": "distgen.kernels.rbf:RBFKernel",
    },
)
