"""Gaussian RBF kernel with fixed bandwidths or a multi-scale median heuristic."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from distgen.kernels.base import InnerProductKernel
from distgen.kernels.pairwise import frozen_scales, median_sq_dist, sq_dists, sq_dists_from_gram

__all__ = ["RBFKernel", "median_sq_dist", "sq_dists"]


class RBFKernel(InnerProductKernel):
    """Gaussian RBF, averaged over bandwidths; ``sigma^2`` fixed or ``scale x median sq. distance``.

    ``k(x, y) = mean_s exp(-|x - y|^2 / (2 sigma_s^2))``. With the default scales this is scDFM's
    loss kernel: 4 RBF kernels at {0.5, 1, 2, 4} x the median squared distance of the reference
    set (pass the REAL target cells as ``ref``).

    Parameters
    ----------
    scales
        Multipliers of the median squared distance (median heuristic), e.g. scDFM's
        ``(0.5, 1, 2, 4)``. Used when ``bandwidths`` is None.
    bandwidths
        Fixed ``sigma^2`` values; overrides the median heuristic.
    """

    def __init__(self, scales: Sequence[float] = (0.5, 1.0, 2.0, 4.0), bandwidths: Sequence[float] | None = None) -> None:
        if bandwidths is None and not scales:
            raise ValueError("rbf: give at least one scale or one fixed bandwidth")
        if any(not 0 < s < math.inf for s in (bandwidths or scales)):  # an infinite bandwidth makes k = 1: MMD always 0
            raise ValueError(f"rbf: bandwidths and scales must be finite and > 0, got {list(bandwidths or scales)}")
        self.scales = tuple(float(s) for s in scales)
        self.bandwidths = None if bandwidths is None else tuple(float(b) for b in bandwidths)
        self._sigma2: Tensor | None = None

    def sigma2(self, ref: Tensor, ref_mask: Tensor | None = None) -> Tensor:
        """``[..., S]`` squared bandwidths for reference sets ``ref [..., r, D]``."""
        if self._sigma2 is not None:
            return self._sigma2
        if self.bandwidths is not None:
            return ref.new_tensor(self.bandwidths).expand(*ref.shape[:-2], len(self.bandwidths))
        med = median_sq_dist(ref, ref_mask)
        return med[..., None] * ref.new_tensor(self.scales)

    def bind(self, ref: Tensor, ref_mask: Tensor | None = None) -> RBFKernel:
        bound = copy.copy(self)
        bound._sigma2 = self.sigma2(ref, ref_mask)
        return bound

    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        s2 = self.sigma2(y if ref is None else ref, None if ref is None else ref_mask)  # [..., S]
        return self._of_sq_dists(sq_dists(x, y), s2)

    def from_gram(self, g: Tensor, x_sq: Tensor, y_sq: Tensor) -> Tensor:
        s2 = frozen_scales(self._sigma2, self.bandwidths, g, "rbf")
        return self._of_sq_dists(sq_dists_from_gram(g, x_sq, y_sq), s2)

    @staticmethod
    def _of_sq_dists(d2: Tensor, s2: Tensor) -> Tensor:
        """``[..., n, k]`` kernel values from squared distances and squared bandwidths ``s2 [..., S]``."""
        return torch.exp(-d2[..., None] / (2.0 * s2[..., None, None, :])).mean(-1)
