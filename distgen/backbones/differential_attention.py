"""Differential attention (Ye et al. 2024, scDFM's variant) as two fused SDPA calls sharing V.

``DiffAttn = (softmax(Q1 K1^T / sqrt(d_h)) - lambda softmax(Q2 K2^T / sqrt(d_h))) V``. By
linearity this is ``SDPA(Q1, K1, V) - lambda SDPA(Q2, K2, V)``, so no ``[L, L]`` map is ever
materialised and memory grows linearly in the number of tokens ``L``. ``impl="naive"`` builds the
maps explicitly (for the memory benchmark and as a readable reference).

scDFM's variant: separate ``Q2, K2`` projections that may read a different input (the control
cell), value width ``d_h`` (not ``2 d_h``), no RoPE, no causal mask; ``lambda`` re-parametrised as
``exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init`` with ``lambda_init = 0.8 - 0.6 exp(-0.3 l)``
for layer ``l``; head-wise RMSNorm, then a ``(1 - lambda_init)`` scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTIONS = ("differential", "standard")
IMPLS = ("fused", "naive")


def lambda_init(layer: int) -> float:
    """``0.8 - 0.6 exp(-0.3 layer)`` (layer counted from 0)."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer)


def attend(q: Tensor, k: Tensor, v: Tensor, impl: str = "fused") -> Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for ``[N, h, L, d]`` inputs; fused SDPA or explicit map."""
    if impl == "fused":
        return F.scaled_dot_product_attention(q, k, v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [N, h, L, S]: the map
    return scores.softmax(-1) @ v


def differential_attend(q1: Tensor, k1: Tensor, q2: Tensor, k2: Tensor, v: Tensor, lam: Tensor, impl: str = "fused") -> Tensor:
    """``(A1 - lam A2) v`` with ``A_i = softmax(q_i k_i^T / sqrt(d))``; ``[N, h, L, d]`` in and out."""
    return attend(q1, k1, v, impl) - lam * attend(q2, k2, v, impl)


class DifferentialAttention(nn.Module):
    """Multi-head differential (or standard) attention, ``[N, L, d] -> [N, L, d]``.

    Parameters
    ----------
    dim, heads
        Model width and number of heads (``dim % heads == 0``).
    layer
        Layer index ``l`` for ``lambda_init(l)``.
    attention
        ``"differential"`` or ``"standard"`` (one softmax map, no lambda, no head norm: the ablation).
    impl
        ``"fused"`` (SDPA) or ``"naive"`` (explicit ``[L, L]`` maps).
    """

    def __init__(self, dim: int, heads: int, layer: int = 0, attention: str = "differential", impl: str = "fused") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention: dim={dim} must be divisible by heads={heads}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if impl not in IMPLS:
            raise ValueError(f"attention impl must be one of {IMPLS}, got {impl!r}")
        self.heads, self.head_dim = heads, dim // heads
        self.attention, self.impl = attention, impl
        self.q1 = nn.Linear(dim, dim, bias=False)
        self.k1 = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        if attention == "differential":
            self.q2 = nn.Linear(dim, dim, bias=False)
            self.k2 = nn.Linear(dim, dim, bias=False)
            self.lambda_init = lambda_init(layer)
            self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (
                nn.Parameter(torch.randn(self.head_dim) * 0.1) for _ in range(4)
            )
            self.head_norm = nn.RMSNorm(self.head_dim, eps=1e-5)

    def _split(self, x: Tensor) -> Tensor:
        n, length, _ = x.shape
        return x.view(n, length, self.heads, self.head_dim).transpose(1, 2)

    def lam(self) -> Tensor:
        """The scalar ``lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init``."""
        return torch.exp(self.lambda_q1 @ self.lambda_k1) - torch.exp(self.lambda_q2 @ self.lambda_k2) + self.lambda_init

    def forward(self, q1_in: Tensor, k1_in: Tensor, v_in: Tensor, q2_in: Tensor | None = None, k2_in: Tensor | None = None) -> Tensor:
        """Attention output ``[N, L, d]``; ``q2_in, k2_in`` feed the second map (differential only)."""
        n, length, dim = q1_in.shape
        q1, k1, v = self._split(self.q1(q1_in)), self._split(self.k1(k1_in)), self._split(self.v(v_in))
        if self.attention == "standard":
            o = attend(q1, k1, v, self.impl)
        else:
            q2 = self._split(self.q2(q1_in if q2_in is None else q2_in))
            k2 = self._split(self.k2(k1_in if k2_in is None else k2_in))
            o = differential_attend(q1, k1, q2, k2, v, self.lam(), self.impl)
            o = self.head_norm(o) * (1.0 - self.lambda_init)
        return self.out(o.transpose(1, 2).reshape(n, length, dim))
