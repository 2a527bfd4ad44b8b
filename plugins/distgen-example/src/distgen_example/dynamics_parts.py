"""Three small dynamics parts a plugin can add: a probability path, an ODE solver, a diffusion sampler.

Each is a subclass of distgen's interface for its kind, declared under an entry point of that kind
(``pyproject.toml``), and usable from any config by name:

    model:
      dynamics:
        name: flow_matching
        path: {name: power, exponent: 2.0}
        solver: {name: heun3, steps: 10}

    model:
      dynamics:
        name: diffusion
        sampler: {name: ddim_quadratic, steps: 50}
"""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.capabilities import SamplerCapabilities
from distgen.dynamics.diffusion_samplers import Denoiser, DiffusionSampler, ddim_walk
from distgen.dynamics.noise_schedules import NoiseSchedule
from distgen.dynamics.ode_solvers import FixedStepSolver
from distgen.dynamics.paths import AffinePath


class PowerPath(AffinePath):
    """Affine path ``x_t = t^p x1 + (1 - t^p) x0``: ``p > 1`` lingers near the source, ``p < 1`` near the data.

    Parameters
    ----------
    exponent
        ``p`` (> 0); 1 is the rectified (CondOT, ``sigma_min = 0``) path.
    """

    def __init__(self, exponent: float = 2.0) -> None:
        if exponent <= 0:
            raise ValueError(f"power path: exponent must be > 0, got {exponent}")
        self.exponent = float(exponent)

    def schedule(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p = self.exponent
        a = t.clamp_min(0) ** p
        da = p * t.clamp_min(1e-12) ** (p - 1)
        return a, 1 - a, da, -da


class Heun3(FixedStepSolver):
    """Heun's third-order Runge-Kutta method (torchdiffeq ``heun3``; three evaluations per step)."""

    method = "heun3"


class QuadraticDDIM(DiffusionSampler):
    """DDIM on ``steps`` steps spaced quadratically in the discrete chain (dense near the data; Song et al. 2021).

    Parameters
    ----------
    steps
        Network evaluations (at most the schedule's ``timesteps``).
    """

    label = "ddim_quadratic"
    capabilities = SamplerCapabilities(stochastic=False)

    def __init__(self, steps: int = 50) -> None:
        if steps < 1:
            raise ValueError(f"ddim_quadratic: steps must be >= 1, got {steps}")
        self.steps = int(steps)

    def _grid(self, total: int) -> list[int]:
        n = (torch.linspace(0, (0.8 * total) ** 0.5, self.steps, dtype=torch.float64) ** 2).round().long()
        return sorted({min(int(v), total - 1) for v in n} | {total - 1}, reverse=True)

    def check(self, schedule: NoiseSchedule) -> None:
        if self.steps > schedule.T:
            raise ValueError(f"ddim_quadratic: steps must be <= timesteps={schedule.T}, got {self.steps}")

    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        return ddim_walk(denoise, x, schedule, self._grid(schedule.T), 0.0, self.label)
