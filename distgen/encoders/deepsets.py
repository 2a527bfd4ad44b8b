"""DeepSets encoder: a per-cell network, a symmetric pooling, a network on the pooled vector."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from distgen.capabilities import EncoderCapabilities
from distgen.encoders.attention import PMA
from distgen.encoders.base import Encoder, masked_mean

POOLS = ("mean", "max", "attention")

#: Heads of the attention pooling when left out (``heads`` is read by ``pool: attention`` only).
DEFAULT_HEADS = 4


def _mlp(n_in: int, hidden: int, n_out: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.GELU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def masked_max(h: Tensor, mask: Tensor) -> Tensor:
    """``[B, m, F], [B, m] -> [B, F]`` elementwise max over real cells (zeros for an empty set)."""
    out = h.masked_fill(~mask[..., None], float("-inf")).amax(-2)
    return torch.where(mask.any(-1, keepdim=True), out, torch.zeros_like(out))


class DeepSetsEncoder(Encoder):
    """DeepSets (Zaheer et al., 2017): ``rho(pool_i phi(x_i))`` with mean, max or attention pooling.

    ``phi`` sees one cell at a time, so the encoder is permutation-invariant by construction;
    pooling runs over real cells only (``mask``). Attention pooling is a one-seed PMA. As with
    any learned encoder, use ``frozen: true`` when it serves as a jointly minimised distance.

    Parameters
    ----------
    n_genes
        Number of gene columns (injected).
    dim
        Output embedding dimension ``D``.
    hidden
        Width of ``phi`` and ``rho``.
    depth
        Hidden layers in ``phi`` (``rho`` has one).
    pool
        ``"mean"``, ``"max"`` or ``"attention"``.
    heads
        Heads of the attention pooling.
    frozen
        Freeze all weights (a fixed random set embedding).
    """

    capabilities = EncoderCapabilities(fixed_gene_panel=True)
    example_params: ClassVar[dict[str, Any]] = {"dim": 8, "hidden": 16, "depth": 1}

    def __init__(
        self,
        n_genes: int,
        dim: int = 64,
        hidden: int = 128,
        depth: int = 2,
        pool: str = "mean",
        heads: int = DEFAULT_HEADS,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"deepsets: pool must be one of {POOLS}, got {pool!r}")
        if min(n_genes, dim, hidden, depth) < 1:
            raise ValueError(f"deepsets: n_genes, dim, hidden, depth must be >= 1, got {n_genes}, {dim}, {hidden}, {depth}")
        if pool == "attention" and heads < 1:
            raise ValueError(f"deepsets: heads must be >= 1 for attention pooling, got {heads}")
        if pool == "attention" and hidden % heads:
            raise ValueError(f"deepsets: hidden={hidden} must be divisible by heads={heads} for attention pooling")
        if pool != "attention" and heads != DEFAULT_HEADS:  # an ablation over heads would measure nothing
            from distgen.config import InertSettingWarning
            from distgen.errors import warn

            warn(f"deepsets: heads={heads} has no effect with pool: {pool} (only attention pooling has heads); remove it or set "
                 "pool: attention", InertSettingWarning)
        self.dim = dim
        self.n_genes = n_genes
        self.pool_kind = pool
        self.phi = _mlp(n_genes, hidden, hidden, depth)
        self.attn = PMA(hidden, heads, 1) if pool == "attention" else None
        self.rho = _mlp(hidden, hidden, dim, 1)
        if frozen:
            self.requires_grad_(False)

    def forward(self, cells: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, G], [B, m] -> [B, dim]``."""
        if cells.shape[-1] != self.n_genes:
            raise ValueError(f"deepsets was built for {self.n_genes} genes, got {cells.shape[-1]}; it reads the full gene panel")
        mask = mask.bool()
        h = self.phi(cells.masked_fill(~mask[..., None], 0.0))
        if self.attn is not None:
            pooled = self.attn(h, mask)[:, 0]
        elif self.pool_kind == "max":
            pooled = masked_max(h, mask)
        else:
            pooled = masked_mean(h, mask)
        return self.rho(pooled)


__all__ = ["DeepSetsEncoder", "masked_max"]
