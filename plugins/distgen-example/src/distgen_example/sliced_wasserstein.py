"""Sliced-Wasserstein embedding: a population -> quantile functions of random 1-D projections."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.capabilities import EncoderCapabilities
from distgen.encoders.base import Encoder


def masked_quantiles(values: Tensor, mask: Tensor, levels: Tensor) -> Tensor:
    """Quantiles ``[B, Q, P]`` of ``values [B, m, P]`` over real cells (``mask [B, m]``).

    Linear interpolation between order statistics at positions ``q * n - 0.5`` (the midpoint rule),
    so the result does not depend on the order of cells or on padded values.
    """
    filled = torch.where(mask[..., None], values, torch.full_like(values, float("inf")))
    ordered = filled.sort(dim=1).values
    n = mask.sum(1).clamp_min(1).to(values.dtype)  # [B]
    pos = (levels[None, :] * n[:, None] - 0.5).clamp_min(0.0)
    pos = torch.minimum(pos, (n[:, None] - 1).clamp_min(0.0))  # [B, Q]
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (n[:, None] - 1).long())
    w = (pos - lo.to(values.dtype))[..., None]
    idx = lambda i: i[..., None].expand(-1, -1, values.shape[-1])  # noqa: E731
    q_lo, q_hi = ordered.gather(1, idx(lo)), ordered.gather(1, idx(hi))
    q_hi = torch.where(torch.isinf(q_hi), q_lo, q_hi)
    return q_lo + w * (q_hi - q_lo)


class SlicedWassersteinEncoder(Encoder):
    """Quantile functions of random projections; distances approximate the sliced W2^2.

    The embedding concatenates, for each of ``n_projections`` fixed random unit directions, the
    ``n_quantiles`` mid-point quantiles of the projected cells. The squared Euclidean distance between
    two embeddings, divided by ``n_quantiles * n_projections``, is a quadrature of the sliced
    Wasserstein-2 distance squared.

    Parameters
    ----------
    n_genes
        Injected at assembly.
    n_projections, n_quantiles
        Number of random directions and of quantile levels.
    seed
        Seed of the projection directions (part of the config, so embeddings are reproducible).
    """

    #: the projection directions are drawn for the ``n_genes`` columns it is built for: no gene subsets
    capabilities = EncoderCapabilities(fixed_gene_panel=True)
    example_params: ClassVar[dict[str, Any]] = {"n_projections": 8, "n_quantiles": 5}

    def __init__(self, n_genes: int, n_projections: int = 64, n_quantiles: int = 16, seed: int = 0) -> None:
        super().__init__()
        if n_projections < 1 or n_quantiles < 1:
            raise ValueError(f"sliced_wasserstein: n_projections and n_quantiles must be >= 1, got {n_projections}, {n_quantiles}")
        g = torch.Generator().manual_seed(seed)
        theta = torch.randn(n_genes, n_projections, generator=g)
        self.register_buffer("theta", theta / theta.norm(dim=0, keepdim=True))
        self.register_buffer("levels", (torch.arange(n_quantiles, dtype=torch.float32) + 0.5) / n_quantiles)
        self.n_projections, self.n_quantiles = n_projections, n_quantiles
        self.dim = n_projections * n_quantiles

    def forward(self, cells: Tensor, mask: Tensor) -> Tensor:
        proj = cells @ self.theta.to(cells.dtype)  # [B, m, P]
        return masked_quantiles(proj, mask, self.levels.to(cells.dtype)).flatten(1)

    def distance(self, p: Tensor, p_mask: Tensor, q: Tensor, q_mask: Tensor) -> Tensor:
        """``[B]`` sliced W2^2 estimate (mean over projections and quantile levels)."""
        return (self(p, p_mask) - self(q, q_mask)).pow(2).sum(-1) / self.dim
