"""Shared set-up of the Cross-DiT tests."""

import torch

from distgen.backbones.adaln import AdaLNZero


def randomise_adaln(net: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> torch.nn.Module:
    """adaLN-Zero starts every block as the identity; random modulation weights and biases exercise every path."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, AdaLNZero):
                mod.lin.weight.copy_(torch.randn(mod.lin.weight.shape, generator=g) * scale)
                mod.lin.bias.copy_(torch.randn(mod.lin.bias.shape, generator=g) * scale)
    return net
