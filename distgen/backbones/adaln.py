"""Adaptive layer norm with zero-initialised modulation (adaLN-Zero, Peebles & Xie 2023)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``x (1 + scale) + shift``; all ``[..., d]`` (per-token conditioning broadcasts); one fused pass over ``x``."""
    return torch.addcmul(shift, x, 1 + scale)


class AdaLNZero(nn.Module):
    """``c [..., d] -> chunks`` of ``SiLU -> Linear(d, chunks d)``, zero-initialised.

    With zero weights every shift/scale/gate starts at 0, so each gated residual block starts as
    the identity.
    """

    def __init__(self, dim: int, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks
        self.lin = nn.Linear(dim, chunks * dim)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, c: Tensor) -> tuple[Tensor, ...]:
        return self.lin(nn.functional.silu(c)).chunk(self.chunks, dim=-1)


class FinalLayer(nn.Module):
    """DiT output head: adaLN (shift, scale) on a non-affine LayerNorm, then ``Linear(d, out)``."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = AdaLNZero(dim, 2)
        self.lin = nn.Linear(dim, out)

    def forward(self, h: Tensor, c: Tensor, mod: tuple[Tensor, ...] | None = None) -> Tensor:
        """``mod``: ``self.ada(c)`` when already computed (``c`` is then not read)."""
        shift, scale = self.ada(c) if mod is None else mod
        return self.lin(modulate(self.norm(h), shift, scale))


__all__ = ["AdaLNZero", "FinalLayer", "modulate"]
