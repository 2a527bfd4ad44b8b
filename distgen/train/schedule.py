"""Learning-rate schedules as pure functions of the step, and their ``LambdaLR`` wrapper."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total: int, warmup: int = 0, kind: str = "cosine", min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    Linear warm-up from ``1 / (warmup + 1)`` to 1 over ``warmup`` steps; then ``"constant"`` stays
    at 1 and ``"cosine"`` decays to ``min_ratio`` at ``step = total - 1``.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    if kind != "cosine":
        raise ValueError(f"unknown schedule {kind!r}; choose cosine or constant")
    span = max(1, total - 1 - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total: int, warmup: int = 0, kind: str = "cosine", min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following ``lr_factor``; its state is just the step count."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, kind, min_ratio))
