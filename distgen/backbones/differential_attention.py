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
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distgen.attention import sdpa

ATTENTIONS = ("differential", "standard")
IMPLS = ("fused", "naive")
HEAD_NORM_EPS = 1e-5  #: head-wise RMSNorm epsilon (scDFM)


def lambda_init(layer: int) -> float:
    """``0.8 - 0.6 exp(-0.3 layer)`` (layer counted from 0)."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer)


def attend(q: Tensor, k: Tensor, v: Tensor, impl: str = "fused") -> Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for ``[N, h, L, d]`` inputs; fused SDPA or explicit map."""
    if impl == "fused":
        return sdpa(q, k, v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [N, h, L, S]: the map
    return scores.softmax(-1) @ v


def differential_attend(q1: Tensor, k1: Tensor, q2: Tensor, k2: Tensor, v: Tensor, lam: Tensor, impl: str = "fused") -> Tensor:
    """``(A1 - lam A2) v`` with ``A_i = softmax(q_i k_i^T / sqrt(d))``; ``[N, h, L, d]`` in and out."""
    return torch.addcmul(attend(q1, k1, v, impl), attend(q2, k2, v, impl), lam, value=-1.0)


class _NormalisedDifference(torch.autograd.Function):
    """``y = (a - lam b) / rms(a - lam b)`` over the last dimension, with a hand-written backward.

    The same function as ``rms_norm(a - lam * b)`` without a gain, in three passes over the data
    forward and five backward instead of the dozen the composite takes (the attention outputs are
    large and these passes are memory-bound). The gain is applied by the caller (folded into the
    output projection).
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, lam: Tensor, eps: float) -> Tensor:
        o = torch.addcmul(a, b, lam, value=-1.0)
        r = torch.linalg.vector_norm(o, dim=-1, keepdim=True).square_().div_(o.shape[-1]).add_(eps).rsqrt_()
        y = o.mul_(r)
        ctx.save_for_backward(y, r, b, lam)
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        y, r, b, lam = ctx.saved_tensors
        dot = torch.linalg.vecdot(g, y, dim=-1).unsqueeze(-1).div_(y.shape[-1])
        go = torch.addcmul(g, y, dot, value=-1.0).mul_(r)  # d/d(a - lam b) of the normalisation
        g_lam = -torch.sum(go * b).reshape(lam.shape) if ctx.needs_input_grad[2] else None
        g_b = go * -lam if ctx.needs_input_grad[1] else None
        return go, g_b, g_lam, None


def normalised_difference(a: Tensor, b: Tensor, lam: Tensor, eps: float) -> Tensor:
    """``(a - lam b)`` RMS-normalised over the last dimension (no gain); ``lam`` a 0-d tensor."""
    return _NormalisedDifference.apply(a, b, lam, eps)  # type: ignore[no-any-return]


class DifferentialAttention(nn.Module):
    """Multi-head differential (or standard) attention, ``[N, L, d] -> [N, L, d]``.

    Projections that read the same input run as one matmul over their stacked weights (the self
    block's ``Q1, Q2, V`` from ``h~`` and ``K1, K2`` from ``h``; the cross block's ``Q1, K1, V`` and
    ``Q2, K2`` from the control), so the parameters keep their names and the function is unchanged.
    The difference of the two maps and its head-wise RMS normalisation are one function with a
    hand-written backward; the head norm's gain and the ``(1 - lambda_init)`` scale are folded into
    the output projection's weight.

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
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
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
            self.head_norm = nn.RMSNorm(self.head_dim, eps=HEAD_NORM_EPS)

    def lam(self) -> Tensor:
        """The scalar ``lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init``."""
        return torch.exp(self.lambda_q1 @ self.lambda_k1) - torch.exp(self.lambda_q2 @ self.lambda_k2) + self.lambda_init

    def project(self, named: Sequence[tuple[str, Tensor]]) -> dict[str, Tensor]:
        """``{name: [N, h, L, d_h]}`` head-split projections; one matmul per distinct input tensor."""
        groups: list[tuple[Tensor, list[str]]] = []
        for name, x in named:
            group = next((g for g in groups if g[0] is x), None)
            if group is None:
                groups.append((x, [name]))
            else:
                group[1].append(name)
        out: dict[str, Tensor] = {}
        for x, names in groups:
            w = getattr(self, names[0]).weight if len(names) == 1 else torch.cat([getattr(self, nm).weight for nm in names])
            y = F.linear(x, w)
            n, length, _ = y.shape
            for nm, part in zip(names, y.split(self.dim, -1)):
                out[nm] = part.view(n, length, self.heads, self.head_dim).transpose(1, 2)
        return out

    def control_projections(self, h_c: Tensor) -> dict[str, Tensor]:
        """The projections of the control tokens a cross block reads (``Q2, K2``; standard: ``K, V``)."""
        return self.project([("q2", h_c), ("k2", h_c)] if self.attention == "differential" else [("k1", h_c), ("v", h_c)])

    def forward(
        self, q1_in: Tensor, k1_in: Tensor, v_in: Tensor, q2_in: Tensor | None = None, k2_in: Tensor | None = None,
        pre: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Attention output ``[N, L, d]``; ``q2_in, k2_in`` feed the second map (differential only).

        ``pre`` holds projections computed earlier (``control_projections``), which are not recomputed.
        """
        n, length, dim = q1_in.shape
        want = [("q1", q1_in), ("k1", k1_in), ("v", v_in)]
        if self.attention == "differential":
            want += [("q2", q1_in if q2_in is None else q2_in), ("k2", k1_in if k2_in is None else k2_in)]
        p = dict(pre) if pre else {}
        p.update(self.project([(nm, x) for nm, x in want if nm not in p]))
        if self.attention == "standard":
            o = attend(p["q1"], p["k1"], p["v"], self.impl)
            return self.out(o.transpose(1, 2).reshape(n, length, dim))
        a1, a2 = attend(p["q1"], p["k1"], p["v"], self.impl), attend(p["q2"], p["k2"], p["v"], self.impl)
        o = normalised_difference(a1, a2, self.lam(), HEAD_NORM_EPS)
        # the head norm's gain and the (1 - lambda_init) scale act on the output projection's columns
        gain = self.head_norm.weight.repeat(self.heads) * (1.0 - self.lambda_init)
        return F.linear(o.transpose(1, 2).reshape(n, length, dim), self.out.weight * gain)
