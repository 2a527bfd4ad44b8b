"""Small embedding layers shared by backbones."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``[...] -> [..., dim]`` sinusoidal features of ``t`` (``t`` in [0, 1] used as is)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class TimeEmbedding(nn.Module):
    """DiT-style time embedding: sinusoid(``freq_dim``) -> Linear -> SiLU -> Linear -> ``dim``."""

    def __init__(self, dim: int, freq_dim: int = 256, scale: float = 1.0) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.scale = scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal(t * self.scale, self.freq_dim))
