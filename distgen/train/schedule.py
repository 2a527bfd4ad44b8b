"""Learning-rate schedules as pure functions of the step, and their ``LambdaLR`` wrapper."""

from __future__ import annotations

import math

import torch

KINDS = ("cosine", "constant", "cosine_floor")


def lr_factor(step: int, total: int, warmup: int = 0, kind: str = "cosine", min_ratio: float = 0.0, plateau_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    ``"cosine"`` and ``"constant"``: linear warm-up from ``1 / (warmup + 1)`` to 1 over ``warmup``
    steps; then ``"constant"`` stays at 1 and ``"cosine"`` holds 1 for ``plateau_ratio * total``
    steps and decays to ``min_ratio`` at ``step = total - 1``. ``"cosine_floor"`` is PerturbDiff's
    schedule: warm-up ``step / warmup`` (0 at the first step), the plateau, then a half cosine from 1
    towards 0 at ``step = total``, never below ``min_ratio`` (clamped, not rescaled).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(KINDS)}")
    plateau = int(plateau_ratio * total)
    if kind == "cosine_floor":
        if step < warmup:
            return step / max(1, warmup)
        if step < warmup + plateau:
            return 1.0
        progress = (step - warmup - plateau) / max(1, total - warmup - plateau)
        return max(min_ratio, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant" or step < warmup + plateau:
        return 1.0
    span = max(1, total - 1 - warmup - plateau)
    progress = min(1.0, max(0.0, (step - warmup - plateau) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total: int, warmup: int = 0, kind: str = "cosine", min_ratio: float = 0.0, plateau_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following ``lr_factor``; its state is just the step count."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, kind, min_ratio, plateau_ratio))
