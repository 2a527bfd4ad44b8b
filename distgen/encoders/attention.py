"""Masked set-attention blocks (MAB, SAB, ISAB, PMA) on torch SDPA.

Building blocks of the Set Transformer (Lee et al., 2019), written on
``torch.nn.functional.scaled_dot_product_attention`` with boolean *key* masks. A query whose keys
are all masked (an empty set) would get NaN from the softmax; ``masked_attention`` lets such rows
attend to one key and zeroes their output instead, so empty sets embed to a finite constant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgen.attention import sdpa


def masked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, heads: int) -> Tensor:
    """``[B, n, D], [B, m, D], [B, m, D], [B, m] -> [B, n, D]`` multi-head attention over real keys.

    ``key_mask`` is True for real keys; queries of a set without any real key get zeros.
    """
    b, n, d = q.shape
    m = k.shape[1]
    if d % heads:
        raise ValueError(f"attention: width {d} is not divisible by heads={heads}")

    def split(x: Tensor, length: int) -> Tensor:
        return x.reshape(b, length, heads, d // heads).transpose(1, 2)

    attn_mask = None
    empty = None
    if key_mask is not None:
        empty = ~key_mask.any(-1)  # [B]
        safe = key_mask.clone()
        safe[empty, 0] = True  # keep the softmax finite; the output of these rows is zeroed below
        attn_mask = safe[:, None, None, :]  # broadcast over heads and queries
    out = sdpa(split(q, n), split(k, m), split(v, m), attn_mask=attn_mask)
    out = out.transpose(1, 2).reshape(b, n, d)
    if empty is not None:
        out = out.masked_fill(empty[:, None, None], 0.0)
    return out


class MAB(nn.Module):
    """Multihead attention block: ``H = LN(X + Att(X, Y)); out = LN(H + FF(H))``.

    Parameters
    ----------
    dim
        Width of queries, keys and output.
    heads
        Attention heads (``dim`` must be divisible by it).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor, y: Tensor, y_mask: Tensor | None) -> Tensor:
        """``[B, n, D]`` queries attend to ``[B, m, D]`` keys (real where ``y_mask [B, m]``)."""
        h = self.ln1(x + self.o(masked_attention(self.q(x), self.k(y), self.v(y), y_mask, self.heads)))
        return self.ln2(h + self.ff(h))


class SAB(nn.Module):
    """Set self-attention ``SAB(X) = MAB(X, X)``: permutation-equivariant, ``O(m^2)``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.mab = MAB(dim, heads)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, D], [B, m] -> [B, m, D]``."""
        return self.mab(x, x, mask)


class ISAB(nn.Module):
    """Induced set attention with ``k`` learned inducing points: equivariant, ``O(m k)``.

    ``H = MAB(I, X)`` summarises the set into ``k`` tokens; ``MAB(X, H)`` reads it back per cell.
    """

    def __init__(self, dim: int, heads: int, n_inducing: int) -> None:
        super().__init__()
        if n_inducing < 1:
            raise ValueError(f"ISAB: n_inducing must be >= 1, got {n_inducing}")
        self.inducing = nn.Parameter(torch.randn(1, n_inducing, dim) * dim**-0.5)
        self.summarise = MAB(dim, heads)
        self.read = MAB(dim, heads)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, D], [B, m] -> [B, m, D]``."""
        h = self.summarise(self.inducing.expand(x.shape[0], -1, -1), x, mask)
        return self.read(x, h, None)


class PMA(nn.Module):
    """Pooling by multihead attention: ``s`` learned seeds attend to the set -> ``[B, s, D]``."""

    def __init__(self, dim: int, heads: int, n_seeds: int = 1) -> None:
        super().__init__()
        if n_seeds < 1:
            raise ValueError(f"PMA: n_seeds must be >= 1, got {n_seeds}")
        self.seeds = nn.Parameter(torch.randn(1, n_seeds, dim) * dim**-0.5)
        self.mab = MAB(dim, heads)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, D], [B, m] -> [B, s, D]`` permutation-invariant pooling over real cells."""
        return self.mab(self.seeds.expand(x.shape[0], -1, -1), x, mask)


__all__ = ["ISAB", "MAB", "PMA", "SAB", "masked_attention"]
