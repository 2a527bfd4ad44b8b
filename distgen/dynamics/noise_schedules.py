"""Variance-preserving noise schedules, discrete (DDPM) and their continuous-time extension.

Two clocks meet here. The discrete DDPM chain has steps ``n = 0 .. T-1`` with
``x_n = sqrt(abar_n) x_data + sqrt(1 - abar_n) eps``. Diffusion time ``tau = (n + 1) / T`` runs from
data (``tau = 0``, ``abar = 1``) to noise (``tau = 1``). distgen's time runs the other way,
``t = 1 - tau`` (``t = 0`` noise, ``t = 1`` data), and is what backbones see.

The continuous schedule interpolates ``log abar`` linearly between the discrete points (with
``abar(0) = 1``), so it agrees *exactly* with the discrete chain at every ``tau_n``; its rate
``beta(tau) = -d log abar / d tau`` is piecewise constant (``= -T log(1 - beta_n)``, ~ ``T beta_n``)
and drives the reverse VP-SDE and the probability-flow ODE.

A registered kind (``noise_schedules``): a schedule is its ``[T]`` betas; everything else follows.
A plugin subclasses ``NoiseSchedule``, computes its betas and declares an entry point in
``distgen.noise_schedules``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from distgen.capabilities import Capabilities
from distgen.registry import Registry


def linear_betas(steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """``[T]`` DDPM linear betas, scaled by ``1000 / T`` so that any ``T`` spans the same noise (float64)."""
    scale = 1000.0 / steps
    return torch.linspace(scale * beta_start, scale * beta_end, steps, dtype=torch.float64)


def cosine_betas(steps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """``[T]`` betas of the Nichol & Dhariwal cosine schedule ``abar(tau) = cos^2((tau + s)/(1 + s) pi/2)``."""
    tau = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((tau + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


class NoiseSchedule:
    """A variance-preserving schedule: discrete ``abar_n`` and continuous ``abar(tau)``, ``beta(tau)``.

    Parameters
    ----------
    betas
        ``[T]`` per-step betas in (0, 1).
    """

    capabilities: Capabilities = Capabilities()

    def __init__(self, betas: Tensor) -> None:
        betas = betas.to(torch.float64)
        if betas.dim() != 1 or betas.numel() < 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("noise schedule: betas must be a non-empty 1-d tensor with values in (0, 1)")
        self.betas = betas
        self.T = int(betas.numel())
        self.alpha_bar = torch.cumprod(1 - betas, 0)  # [T], abar_n for n = 0..T-1
        # knots of the continuous schedule: tau = 0, 1/T, ..., 1 with log abar = 0, log abar_0, ...
        self.log_abar_knots = torch.cat([torch.zeros(1, dtype=torch.float64), torch.log(self.alpha_bar)])
        self._abar_steps = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar])  # abar_n at n + 1
        self._copies: dict[tuple[str, torch.device], Tensor] = {}

    def _on(self, name: str, device: torch.device) -> Tensor:
        """The table ``name`` on ``device``, copied there once: a copy per call was a blocking host-to-device
        transfer in every training step on a GPU."""
        key = (name, device)
        if key not in self._copies:
            self._copies[key] = getattr(self, name).to(device)
        return self._copies[key]

    # ------------------------------------------------------------------ discrete clock
    def abar(self, n: Tensor) -> Tensor:
        """``abar_n`` for integer steps ``n`` (``n = -1`` gives 1, the clean data), float64."""
        n = torch.as_tensor(n)
        return self._on("_abar_steps", n.device)[n.long() + 1]

    def step_to_t(self, n: Tensor) -> Tensor:
        """distgen time ``t = 1 - (n + 1) / T`` of discrete step ``n``."""
        return 1.0 - (torch.as_tensor(n, dtype=torch.float64) + 1.0) / self.T

    # ------------------------------------------------------------------ continuous clock
    def log_abar_tau(self, tau: Tensor) -> Tensor:
        """``log abar(tau)`` for ``tau`` in [0, 1], piecewise linear through the discrete steps."""
        tau = torch.as_tensor(tau, dtype=torch.float64).clamp(0.0, 1.0)
        pos = tau * self.T
        lo = pos.floor().clamp(max=self.T - 1).long()
        frac = pos - lo
        knots = self._on("log_abar_knots", tau.device)
        return knots[lo] + frac * (knots[lo + 1] - knots[lo])

    def abar_tau(self, tau: Tensor) -> Tensor:
        """``abar(tau)`` (float64)."""
        return torch.exp(self.log_abar_tau(tau))

    def beta_tau(self, tau: Tensor) -> Tensor:
        """Rate ``beta(tau) = -d log abar / d tau`` (piecewise constant), float64."""
        tau = torch.as_tensor(tau, dtype=torch.float64).clamp(0.0, 1.0)
        lo = (tau * self.T).floor().clamp(max=self.T - 1).long()
        knots = self._on("log_abar_knots", tau.device)
        return -(knots[lo + 1] - knots[lo]) * self.T


class LinearSchedule(NoiseSchedule):
    """DDPM's linear betas ``beta_start .. beta_end`` (scaled by ``1000 / T``) over ``timesteps`` steps.

    Parameters
    ----------
    timesteps
        Length ``T`` of the discrete chain (PerturbDiff: 1000).
    beta_start, beta_end
        First and last beta for ``T = 1000`` (Ho et al.: 1e-4, 0.02).
    """

    def __init__(self, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        if timesteps < 1:
            raise ValueError(f"linear schedule: timesteps must be >= 1, got {timesteps}")
        if not 0 < beta_start < beta_end < 1:
            raise ValueError(f"linear schedule: need 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}")
        if beta_end * 1000.0 / timesteps >= 1:
            raise ValueError(
                f"linear schedule: betas are scaled by 1000/timesteps, so timesteps={timesteps} makes the last beta "
                f"{beta_end * 1000.0 / timesteps:.3g} >= 1; use timesteps > {int(beta_end * 1000)} or a smaller beta_end"
            )
        self.beta_start, self.beta_end = beta_start, beta_end
        super().__init__(linear_betas(timesteps, beta_start, beta_end))


class CosineSchedule(NoiseSchedule):
    """Nichol & Dhariwal's cosine schedule ``abar(tau) = cos^2((tau + s)/(1 + s) pi/2)``, betas clipped at ``max_beta``.

    Parameters
    ----------
    timesteps
        Length ``T`` of the discrete chain.
    s
        Offset that keeps the first betas away from 0 (0.008).
    max_beta
        Upper clip of the betas (0.999): the last step's rate is huge; start continuous samplers a
        little after pure noise (``t_start`` ~ 0.01).
    """

    def __init__(self, timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> None:
        if timesteps < 1:
            raise ValueError(f"cosine schedule: timesteps must be >= 1, got {timesteps}")
        if s < 0 or not 0 < max_beta < 1:
            raise ValueError(f"cosine schedule: need s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
        self.s, self.max_beta = s, max_beta
        super().__init__(cosine_betas(timesteps, s, max_beta))


def strided_steps(total: int, count: int) -> list[int]:
    """``count`` discrete steps, evenly spaced from ``total - 1`` down to 0 (distinct, descending)."""
    if not 1 <= count <= total:
        raise ValueError(f"steps must be in [1, timesteps={total}], got {count}")
    grid = torch.linspace(total - 1, 0, count, dtype=torch.float64).round().long().tolist()
    return sorted(set(grid), reverse=True)


#: The noise-schedule registry (entry points ``distgen.noise_schedules``).
noise_schedules: Registry[NoiseSchedule] = Registry(
    "noise_schedules",
    NoiseSchedule,
    {"cosine": "distgen.dynamics.noise_schedules:CosineSchedule", "linear": "distgen.dynamics.noise_schedules:LinearSchedule"},
)

__all__ = ["CosineSchedule", "LinearSchedule", "NoiseSchedule", "cosine_betas", "linear_betas", "noise_schedules", "strided_steps"]
