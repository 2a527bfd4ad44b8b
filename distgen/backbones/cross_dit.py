"""Cross-DiT: a two-stream diffusion transformer over cell tokens (PerturbDiff's backbone).

Tokens are cells. Stream "pert" holds the noisy perturbed set (each token ``[x_t ; x_self_cond]``),
stream "ctrl" the matched control set (token ``i`` is the control cell paired with cell ``i``).
In every block both streams are modulated by adaLN-Zero from ``c = e_t + e_cov``, concatenated
*along features* (token ``i`` = pert ``i`` (+) ctrl ``i``, width ``2d``) and passed through one joint
multi-head self-attention over the ``m`` tokens (fused SDPA, RMS qk-norm), then split back; each
stream has its own gated MLP. No positional encoding: the network is permutation-equivariant over
cells. The head (adaLN + Linear, then ReLU by default) predicts the perturbed cells.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from distgen.backbones.adaln import AdaLNZero, FinalLayer, modulate
from distgen.backbones.base import Backbone, Condition
from distgen.backbones.embeddings import TimeEmbedding
from distgen.capabilities import BackboneCapabilities

OUTPUTS = ("relu", "softplus", "identity")


class JointAttention(nn.Module):
    """Self-attention over tokens of width ``width`` with RMS-normalised queries and keys (SDPA)."""

    def __init__(self, width: int, heads: int, qk_norm: bool = True) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"cross_dit: attention width 2*dim={width} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        hd = width // heads
        self.q_norm: nn.Module = nn.RMSNorm(hd, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.RMSNorm(hd, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(width, width)

    def forward(self, u: Tensor, key_mask: Tensor | None) -> Tensor:
        b, m, w = u.shape
        q, k, v = self.qkv(u).view(b, m, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        o = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=attn_mask)
        return self.proj(o.transpose(1, 2).reshape(b, m, w))


class MMBlock(nn.Module):
    """One two-stream block; ``last`` skips the control stream's (unused) MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qk_norm: bool, last: bool = False) -> None:
        super().__init__()
        self.last = last
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_p = AdaLNZero(dim, 6)
        self.ada_c = AdaLNZero(dim, 2 if last else 6)
        self.attn = JointAttention(2 * dim, heads, qk_norm)
        hidden = int(dim * mlp_ratio)
        self.mlp_p = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.mlp_c = None if last else nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, hp: Tensor, hc: Tensor, c: Tensor, key_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        sa_p, sc_p, ga_p, sm_p, scm_p, gm_p = self.ada_p(c)
        mod_c = self.ada_c(c)
        u = torch.cat([modulate(self.norm(hp), sa_p, sc_p), modulate(self.norm(hc), mod_c[0], mod_c[1])], -1)
        dp, dc = self.attn(u, key_mask).chunk(2, dim=-1)
        hp = hp + ga_p * dp
        hp = hp + gm_p * self.mlp_p(modulate(self.norm(hp), sm_p, scm_p))
        if self.mlp_c is not None:
            ga_c, sm_c, scm_c, gm_c = mod_c[2:]
            hc = hc + ga_c * dc
            hc = hc + gm_c * self.mlp_c(modulate(self.norm(hc), sm_c, scm_c))
        return hp, hc


class CrossDiT(Backbone):
    """Two-stream transformer over cells (perturbed + matched control), joint attention, adaLN-Zero.

    Parameters
    ----------
    n_genes, cond_dim, population_dim
        Injected at assembly.
    dim, depth, heads, mlp_ratio
        Width ``d`` of each stream (attention runs at ``2d``), blocks, heads, MLP ratio
        (PerturbDiff: 512, 8, 8, 4).
    qk_norm
        RMS-normalise queries and keys per head.
    self_conditioning
        Token input is ``[x_t ; x_self_cond]`` (zeros when no estimate is given).
    output
        ``"relu"`` (non-negative sample head, PerturbDiff's x0 prediction), ``"softplus"`` or
        ``"identity"`` (use it for noise or velocity prediction).
    time_scale
        ``t`` in [0, 1] is multiplied by this before the sinusoidal embedding (1000 ~ DDPM step ids).
    """

    capabilities = BackboneCapabilities(self_conditioning=None, output_range=None)  # from self_conditioning, output
    requires = frozenset({"embedding", "control"})
    example_params: ClassVar[dict[str, Any]] = {"dim": 16, "depth": 2, "heads": 2, "output": "identity"}

    def __init__(
        self,
        n_genes: int,
        cond_dim: int,
        population_dim: int = 0,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        qk_norm: bool = True,
        self_conditioning: bool = True,
        output: str = "relu",
        time_scale: float = 1000.0,
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"cross_dit: output must be one of {OUTPUTS}, got {output!r}")
        if depth < 1 or dim < 1:
            raise ValueError(f"cross_dit: depth and dim must be >= 1, got depth={depth}, dim={dim}")
        self.n_genes = n_genes
        self.self_conditioning = self_conditioning
        self.output = output
        self.capabilities = BackboneCapabilities(self_conditioning=self_conditioning, output_range="real" if output == "identity" else "nonnegative")
        self.in_p = nn.Linear(n_genes * (2 if self_conditioning else 1), dim)
        self.in_c = nn.Linear(n_genes, dim)
        self.time = TimeEmbedding(dim, scale=time_scale)
        self.cov = nn.Linear(cond_dim + population_dim, dim)
        self.blocks = nn.ModuleList(MMBlock(dim, heads, mlp_ratio, qk_norm, last=i == depth - 1) for i in range(depth))
        self.head = FinalLayer(dim, n_genes)
        self._init_weights()

    def _init_weights(self) -> None:
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
        for mod in self.time.mlp:
            if isinstance(mod, nn.Linear):
                nn.init.normal_(mod.weight, std=0.02)
        for mod in self.modules():  # adaLN-Zero: every modulation starts at 0 (re-zero after xavier)
            if isinstance(mod, AdaLNZero):
                nn.init.zeros_(mod.lin.weight)

    def forward(self, x_t: Tensor, t: Tensor, cond: Condition, *, x_self_cond: Tensor | None = None) -> Tensor:
        if x_t.shape[-1] != self.n_genes:
            raise ValueError(f"cross_dit was built for {self.n_genes} genes, got {x_t.shape[-1]} (it cannot subsample genes)")
        if cond.control is None or cond.control.shape[:2] != x_t.shape[:2]:
            got = None if cond.control is None else tuple(cond.control.shape)
            raise ValueError(f"cross_dit needs one control cell per generated cell: x_t {tuple(x_t.shape)}, control {got}")
        tokens = [x_t, torch.zeros_like(x_t) if x_self_cond is None else x_self_cond] if self.self_conditioning else [x_t]
        hp = self.in_p(torch.cat(tokens, -1))
        hc = self.in_c(cond.control.to(x_t.dtype))
        cov = [cond.embedding] if cond.embedding is not None else []
        if cond.population is not None:
            cov.append(cond.population)
        c = self.time(t).to(x_t.dtype)  # [B, m, d]: per-token time (set-level dynamics repeat it)
        if cov:
            c = c + self.cov(torch.cat(cov, -1).to(x_t.dtype))[:, None, :]
        key_mask = None
        if cond.control_mask is not None and not bool(cond.control_mask.all()):
            key_mask = cond.control_mask.bool()
        for block in self.blocks:
            hp, hc = block(hp, hc, c, key_mask)
        out = self.head(hp, c)
        if self.output == "relu":
            return F.relu(out)
        if self.output == "softplus":
            return F.softplus(out)
        return out


__all__ = ["CrossDiT", "JointAttention", "MMBlock"]
