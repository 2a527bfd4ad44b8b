"""Energy (distance) kernel ``k(x, y) = -|x - y|^beta``: conditionally positive definite."""

from __future__ import annotations

from torch import Tensor

from distgen.capabilities import KernelCapabilities
from distgen.kernels.base import InnerProductKernel
from distgen.kernels.pairwise import safe_sqrt, sq_dists, sq_dists_from_gram


class EnergyKernel(InnerProductKernel):
    """Negative distance ``k(x, y) = -|x - y|^exponent`` (MMD^2 with it is the energy distance).

    Conditionally positive definite for ``0 < exponent <= 2`` (``v^T K v >= 0`` whenever
    ``sum(v) = 0``), which is all an MMD needs: the constant parts cancel. ``exponent=1``
    (Euclidean) gives Székely's energy distance, characteristic; ``exponent=2`` (squared
    Euclidean, the pertpy/CellFlow E-distance) only compares means: its MMD^2 (biased) is
    ``2 |mean(x) - mean(y)|^2``. Autograd-safe at coincident points (zero gradient there).

    Parameters
    ----------
    exponent
        ``beta`` in ``(0, 2]``.
    """

    capabilities = KernelCapabilities(conditionally_pd=True, inner_product=True)

    def __init__(self, exponent: float = 1.0) -> None:
        if not 0.0 < exponent <= 2.0:
            raise ValueError(f"energy: exponent must be in (0, 2] for a conditionally p.d. kernel, got {exponent}")
        self.exponent = float(exponent)

    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        return self._of_sq_dists(sq_dists(x, y))

    def from_gram(self, g: Tensor, x_sq: Tensor, y_sq: Tensor) -> Tensor:
        return self._of_sq_dists(sq_dists_from_gram(g, x_sq, y_sq))

    def _of_sq_dists(self, d2: Tensor) -> Tensor:
        if self.exponent == 2.0:
            return -d2
        if self.exponent == 1.0:
            return -safe_sqrt(d2)
        return -safe_sqrt(d2).pow(self.exponent)
