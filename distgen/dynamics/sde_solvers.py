"""SDE solvers: integrate an Ito SDE with diagonal noise, ``dy = f(t, y) dt + g(t, y) dW``, with torchsde.

The solver owns its settings (method, number of steps); the caller gives the drift ``f`` and the
diagonal diffusion ``g`` (both ``(t scalar tensor, y [N, D]) -> [N, D]``). Brownian motion comes
from a ``torchsde.BrownianInterval`` seeded from torch's global generator, so a seeded run is
reproducible. Diffusion's reverse-SDE sampler uses one.

A registered kind (``sde_solvers``); a plugin declares an entry point in ``distgen.sde_solvers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
import torchsde
from torch import Tensor

from distgen.capabilities import SolverCapabilities
from distgen.registry import Registry

Coefficient = Callable[[Tensor, Tensor], Tensor]


class SDESolver(ABC):
    """``solve(drift, diffusion, y0 [N, D], t0, t1) -> y(t1) [N, D]`` for an Ito SDE with diagonal noise."""

    capabilities: SolverCapabilities = SolverCapabilities()

    @abstractmethod
    def solve(self, drift: Coefficient, diffusion: Coefficient, y0: Tensor, t0: float, t1: float) -> Tensor:
        """The state at ``t1`` (one sample path per row of ``y0``)."""


class _DiagonalSDE(torch.nn.Module):
    """The torchsde view of ``(drift, diffusion)``."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, drift: Coefficient, diffusion: Coefficient) -> None:
        super().__init__()
        self.f, self.g = drift, diffusion  # type: ignore[method-assign,assignment]


class TorchsdeSolver(SDESolver):
    """A torchsde fixed-step method with ``steps`` equal steps between ``t0`` and ``t1``.

    Parameters
    ----------
    steps
        Solver steps (network evaluations: one drift evaluation per step).
    """

    method: ClassVar[str] = ""
    levy_area: ClassVar[str] = "none"

    def __init__(self, steps: int = 100) -> None:
        if steps < 1:
            raise ValueError(f"{self.method} SDE solver: steps must be >= 1, got {steps}")
        self.steps = int(steps)

    def solve(self, drift: Coefficient, diffusion: Coefficient, y0: Tensor, t0: float, t1: float) -> Tensor:
        ts = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
        entropy = int(torch.randint(0, 2**31 - 1, (1,)).item())  # drawn from the global torch seed
        bm = torchsde.BrownianInterval(t0=float(ts[0]), t1=float(ts[-1]), size=y0.shape, dtype=y0.dtype, device=y0.device,
                                       entropy=entropy, levy_area_approximation=self.levy_area)
        ys = torchsde.sdeint(_DiagonalSDE(drift, diffusion), y0, ts, method=self.method, dt=float(ts[-1] - ts[0]) / self.steps, bm=bm)
        return ys[-1]  # type: ignore[no-any-return]


class EulerMaruyama(TorchsdeSolver):
    """Euler-Maruyama (strong order 0.5)."""

    method = "euler"


class SRK(TorchsdeSolver):
    """Roessler stochastic Runge-Kutta (strong order 1.5 for diagonal noise; space-time Levy area)."""

    method = "srk"
    levy_area = "space-time"


#: The SDE-solver registry (entry points ``distgen.sde_solvers``).
sde_solvers: Registry[SDESolver] = Registry(
    "sde_solvers",
    SDESolver,
    {"euler": "distgen.dynamics.sde_solvers:EulerMaruyama", "srk": "distgen.dynamics.sde_solvers:SRK"},
)

__all__ = ["SRK", "EulerMaruyama", "SDESolver", "TorchsdeSolver", "sde_solvers"]
