"""Gaussian RBF kernel with fixed bandwidths or a multi-scale median heuristic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.kernels import kernels
from distgen.kernels.base import Kernel


def sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``[..., n, k]`` between rows of ``x [..., n, D]`` and ``y [..., k, D]``.

    Uses the expansion ``|x|^2 + |y|^2 - 2 x.y`` (one matmul) and clamps tiny negatives from
    round-off to zero.
    """
    xx = (x * x).sum(-1, keepdim=True)
    yy = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    return (xx + yy - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)


def median_sq_dist(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Median of off-diagonal squared distances within each set: ``x [..., n, D] -> [...]``.

    Padded rows (``mask`` False) are excluded. Computed without gradient (a bandwidth, not a
    function of the parameters), clamped at 1e-12.
    """
    with torch.no_grad():
        d = sq_dists(x, x)
        n = x.shape[-2]
        valid = ~torch.eye(n, dtype=torch.bool, device=x.device)
        if mask is not None:
            valid = valid & mask[..., :, None] & mask[..., None, :]
        valid = valid.expand(d.shape)
        d = torch.where(valid, d, torch.full_like(d, float("nan")))
        med = torch.nanmedian(d.flatten(-2), dim=-1).values
        return torch.nan_to_num(med, nan=1.0).clamp_min(1e-12)


@kernels.register("rbf")
class RBFKernel(Kernel):
    """Gaussian RBF, averaged over bandwidths; ``sigma^2`` fixed or ``scale x median sq. distance``.

    Parameters
    ----------
    scales
        Multipliers of the median squared distance (median heuristic), e.g. scDFM's
        ``(0.5, 1, 2, 4)``. Used when ``bandwidths`` is None.
    bandwidths
        Fixed ``sigma^2`` values; overrides the median heuristic.
    """

    capabilities: ClassVar[dict[str, Any]] = {"characteristic": True, "conditionally_pd": False}

    def __init__(self, scales: Sequence[float] = (0.5, 1.0, 2.0, 4.0), bandwidths: Sequence[float] | None = None) -> None:
        if bandwidths is None and not scales:
            raise ValueError("rbf: give at least one scale or one fixed bandwidth")
        if any(s <= 0 for s in (bandwidths or scales)):
            raise ValueError(f"rbf: bandwidths and scales must be > 0, got {list(bandwidths or scales)}")
        self.scales = tuple(float(s) for s in scales)
        self.bandwidths = None if bandwidths is None else tuple(float(b) for b in bandwidths)

    def sigma2(self, ref: Tensor, ref_mask: Tensor | None = None) -> Tensor:
        """``[..., S]`` squared bandwidths for reference sets ``ref [..., r, D]``."""
        if self.bandwidths is not None:
            return ref.new_tensor(self.bandwidths).expand(*ref.shape[:-2], len(self.bandwidths))
        med = median_sq_dist(ref, ref_mask)
        return med[..., None] * ref.new_tensor(self.scales)

    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        s2 = self.sigma2(y if ref is None else ref, None if ref is None else ref_mask)  # [..., S]
        d = sq_dists(x, y)[..., None]  # [..., n, k, 1]
        return torch.exp(-d / (2.0 * s2[..., None, None, :])).mean(-1)
