"""Laplacian kernel ``k(x, y) = exp(-|x - y|_1 / sigma)``, with a fixed or median-heuristic ``sigma``.

A plugin component is an ordinary subclass of the kind's base class. It is not decorated: the
entry point in ``pyproject.toml`` registers it, and distgen imports this module only when a config
first asks for ``laplacian``. The constructor signature is the config schema.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from distgen.kernels.base import Kernel


def l1_dists(x: Tensor, y: Tensor) -> Tensor:
    """``[..., n, D], [..., k, D] -> [..., n, k]`` pairwise L1 (Manhattan) distances."""
    return torch.cdist(x, y, p=1.0)


def median_l1(ref: Tensor, ref_mask: Tensor | None = None) -> Tensor:
    """``[..., r, D] -> [...]`` median L1 distance between distinct real rows of each set."""
    d = l1_dists(ref, ref)
    r = d.shape[-1]
    keep = ~torch.eye(r, dtype=torch.bool, device=d.device)
    if ref_mask is not None:
        keep = keep & ref_mask[..., :, None].bool() & ref_mask[..., None, :].bool()
    d = torch.where(keep, d, torch.full_like(d, float("nan")))
    return d.flatten(-2).nanmedian(-1).values.clamp_min(1e-12)


class LaplacianKernel(Kernel):
    """Laplacian kernel ``exp(-|x - y|_1 / sigma)``: positive definite and characteristic.

    Heavier-tailed than the RBF: a far-away cell still has a gradient. ``sigma`` is fixed, or
    ``scale x`` the median L1 distance of the reference set (median heuristic) when None.

    Parameters
    ----------
    sigma
        Fixed bandwidth (> 0), or None for the median heuristic.
    scale
        Multiplier of the median L1 distance when ``sigma`` is None.
    """

    def __init__(self, sigma: float | None = None, scale: float = 1.0) -> None:
        if (sigma is not None and sigma <= 0) or scale <= 0:
            raise ValueError(f"laplacian: sigma and scale must be > 0, got sigma={sigma}, scale={scale}")
        self.sigma = None if sigma is None else float(sigma)
        self.scale = float(scale)
        self._bound: Tensor | None = None

    def bandwidth(self, ref: Tensor, ref_mask: Tensor | None = None) -> Tensor:
        """``[...]`` bandwidth per reference set ``ref [..., r, D]``."""
        if self._bound is not None:
            return self._bound
        if self.sigma is not None:
            return ref.new_full(ref.shape[:-2], self.sigma)
        return self.scale * median_l1(ref.detach(), ref_mask)

    def bind(self, ref: Tensor, ref_mask: Tensor | None = None) -> LaplacianKernel:
        bound = copy.copy(self)
        bound._bound = self.bandwidth(ref, ref_mask)
        return bound

    def gram(self, x: Tensor, y: Tensor, *, ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
        sigma = self.bandwidth(y if ref is None else ref, None if ref is None else ref_mask)
        return torch.exp(-l1_dists(x, y) / sigma[..., None, None])
