"""Exponential moving average of model weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from distgen.wording import counted, first_of


class EMA:
    """Shadow copies of a module's floating-point parameters and buffers, ``s <- d s + (1 - d) p``.

    Parameters
    ----------
    module
        The (unwrapped) model whose state is averaged.
    decay
        EMA decay ``d``; with ``warmup`` the effective decay warms up as ``min(d, (1 + n) / (10 + n))``
        after ``n`` updates so early averages are not dominated by the initial weights; without it
        the first update copies the weights and every later one uses ``d`` (torch's
        ``AveragedModel`` with an EMA average, PerturbDiff's callback).
    """

    def __init__(self, module: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay = float(decay)
        self.warmup = warmup
        self.updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Blend the module's current weights into the shadow copy."""
        self.updates += 1
        first = 0.0 if self.updates == 1 else self.decay  # without warm-up the first update is a copy
        d = min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else first
        state = module.state_dict()
        for k, s in self.shadow.items():
            s.lerp_(state[k].detach().to(s.dtype), 1.0 - d)

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Tensor], updates: int) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} of the {counted(len(self.shadow), 'floating-point tensor')} it averages "
                           f"({first_of(sorted(missing), 5, render=repr, enclosed=True)}); was it saved from a different model?")
        for k, s in self.shadow.items():
            s.copy_(state[k])
        self.updates = int(updates)

    @contextlib.contextmanager
    def swapped_in(self, module: nn.Module) -> Iterator[None]:
        """Temporarily load the EMA weights into ``module`` (restored on exit)."""
        backup = {k: v.detach().clone() for k, v in module.state_dict().items() if k in self.shadow}
        module.load_state_dict({**module.state_dict(), **self.shadow})
        try:
            yield
        finally:
            module.load_state_dict({**module.state_dict(), **backup})
