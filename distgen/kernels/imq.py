"""Inverse multiquadric kernel ``(c^2 + |x - y|^2)^(-beta)``, fixed or median-scaled ``c^2``."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

from torch import Tensor

from distgen.kernels.base import InnerProductKernel
from distgen.kernels.pairwise import frozen_scales, median_sq_dist, sq_dists, sq_dists_from_gram


class IMQKernel(InnerProductKernel):
    """Inverse multiquadric ``k = mean_s (1 + |x-y|^2 / c_s^2)^(-beta)``; heavy tails, characteristic.

    Normalised so that ``k(x, x) = 1``. ``c_s^2`` is ``scale_s x median squared distance`` of the
    reference set, or fixed via ``c2``. Heavy tails keep gradients alive for far-apart sets, where an
    RBF saturates (Gorham & Mackey 2017 use ``beta = 0.5``).

    Parameters
    ----------
    beta
        Exponent in ``(0, inf)``.
    scales
        Multipliers of the median squared distance; used when ``c2`` is None.
    c2
        Fixed ``c^2`` values; overrides the median heuristic.
    """

    def __init__(self, beta: float = 0.5, scales: Sequence[float] = (1.0,), c2: Sequence[float] | None = None) -> None:
        if not 0 < beta < math.inf:
            raise ValueError(f"imq: beta must be finite and > 0, got {beta}")
        if c2 is None and not scales:
            raise ValueError("imq: give at least one scale or one fixed c2")
        if any(not 0 < s < math.inf for s in (c2 or scales)):  # an infinite c^2 makes k = 1: MMD always 0
            raise ValueError(f"imq: scales and c2 must be finite and > 0, got {list(c2 or scales)}")
        self.beta = float(beta)
        self.scales = tuple(float(s) for s in scales)
        self.c2 = None if c2 is None else tuple(float(c) for c in c2)
        self._c2: Tensor | None = None

    def scale2(self, ref: Tensor, ref_mask: Tensor | None = None) -> Tensor:
        """``[..., S]`` values of ``c^2`` for reference sets ``ref [..., r, D]``."""
        if self._c2 is not None:
            return self._c2
        if self.c2 is not None:
            return ref.new_tensor(self.c2).expand(*ref.shape[:-2], len(self.c2))
        return median_sq_dist(ref, ref_mask)[..., None] * ref.new_tensor(self.scales)

    def bind(self, ref: Tensor, ref_mask: Tensor | None = None) -> IMQKernel:
        bound = copy.copy(self)
        bound._c2 = self.scale2(ref, ref_mask)
        return bound

    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        c2 = self.scale2(y if ref is None else ref, None if ref is None else ref_mask)  # [..., S]
        return self._of_sq_dists(sq_dists(x, y), c2)

    def from_gram(self, g: Tensor, x_sq: Tensor, y_sq: Tensor) -> Tensor:
        c2 = frozen_scales(self._c2, self.c2, g, "imq")
        return self._of_sq_dists(sq_dists_from_gram(g, x_sq, y_sq), c2)

    def _of_sq_dists(self, d2: Tensor, c2: Tensor) -> Tensor:
        """``[..., n, k]`` kernel values from squared distances and ``c2 [..., S]``."""
        return (1.0 + d2[..., None] / c2[..., None, None, :]).pow(-self.beta).mean(-1)
