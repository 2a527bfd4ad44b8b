"""Shared set-up of the Cross-DiT tests."""

import torch

from distgen.backbones.adaln import AdaLNZero
from distgen.backbones.base import Condition


def randomise_adaln(net: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> torch.nn.Module:
    """adaLN-Zero starts every block as the identity; random modulation weights and biases exercise every path."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, AdaLNZero):
                mod.lin.weight.copy_(torch.randn(mod.lin.weight.shape, generator=g) * scale)
                mod.lin.bias.copy_(torch.randn(mod.lin.bias.shape, generator=g) * scale)
    return net


def random_inputs(b: int, m: int, g_: int, seed: int = 0, mask: torch.Tensor | None = None, drop: torch.Tensor | None = None):
    """``(x_t, t, cond)`` for a Cross-DiT of ``g_`` genes and 4 condition features: ``b`` sets of ``m`` cells, one time per set."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, m, g_, generator=g)
    ctrl = torch.rand(b, m, g_, generator=g)
    cond = Condition(gene_ids=torch.arange(g_), embedding=torch.randn(b, 4, generator=g), control=ctrl,
                     control_mask=torch.ones(b, m, dtype=torch.bool) if mask is None else mask, drop=drop)
    t = torch.rand(b, 1, generator=g).expand(b, m)
    return x, t, cond
