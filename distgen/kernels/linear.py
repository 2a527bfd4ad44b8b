"""Linear kernel ``k(x, y) = x . y``: MMD^2 with it is the squared distance of the means."""

from __future__ import annotations

from torch import Tensor

from distgen.kernels.base import InnerProductKernel


class LinearKernel(InnerProductKernel):
    """Dot product ``k(x, y) = x . y`` (not characteristic: only first moments are compared).

    The biased MMD^2 with this kernel is ``|mean(x) - mean(y)|^2``, i.e. ``G x`` the pseudobulk MSE.
    """

    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        return x @ y.transpose(-1, -2)

    def from_gram(self, g: Tensor, x_sq: Tensor, y_sq: Tensor) -> Tensor:
        return g
