"""Diffusion samplers: walk a noise schedule from pure noise to data, calling a denoiser.

A sampler is a small object holding its own settings. It gets a *denoiser*
``denoise(x [B, m, G], abar, t) -> (x0_hat, eps_hat)`` (the network's estimate at noise level
``abar`` and distgen time ``t``) and the ``NoiseSchedule``; guidance, self-conditioning and
clipping live in the denoiser, so every sampler gets them for free. Randomness comes from
torch's global generator (seed it with ``torch.manual_seed``).

Discrete samplers (this module) walk a descending list of steps ``n_0 > ... > n_K`` and jump to
the data at the end (``n = -1``, ``abar = 1``), so their output is the final ``x0_hat``. The
continuous ones (reverse SDE, probability-flow ODE) live in ``vp_samplers``.

A registered kind (``diffusion_samplers``): adding one is a subclass and a line in the table
below; a plugin declares an entry point in ``distgen.diffusion_samplers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor

from distgen.capabilities import SamplerCapabilities
from distgen.dynamics.noise_schedules import NoiseSchedule, strided_steps
from distgen.registry import Registry

#: ``denoise(x, abar, t) -> (x0_hat, eps_hat)``: ``abar`` a float64 scalar tensor, ``t`` distgen time.
Denoiser = Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor]]


class NonFiniteSampleError(FloatingPointError):
    """A sampler produced NaN/inf; the message names the step and the time where it happened."""


def check_finite(x: Tensor, step: int, t: float, sampler: str) -> None:
    """Raise ``NonFiniteSampleError`` naming ``step`` and distgen time ``t`` if ``x`` is not finite."""
    if bool(torch.isfinite(x.sum())):  # NaN or inf anywhere makes the sum non-finite (one pass, no bool tensor)
        return
    if not bool(torch.isfinite(x).all()):  # the sum overflowed, or something is not finite
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteSampleError(
            f"{sampler}: {bad} non-finite value(s) at solver step {step} (t={t:.4f}, t=0 noise, t=1 data); "
            "sampling stopped. Check the model for divergence, lower the guidance weight, enable "
            "clip_denoised, or use more/smaller steps."
        )


def _coef(v: Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


class DiffusionSampler(ABC):
    """``sample(denoise, x, schedule) -> [B, m, G]`` data from noise ``x`` (``t = 0``)."""

    capabilities: SamplerCapabilities = SamplerCapabilities()
    label: ClassVar[str] = "sampler"  #: used in messages and in ``SampleOutput.info["sampler"]``

    def check(self, schedule: NoiseSchedule) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Raise ``ValueError`` if this sampler cannot run on ``schedule`` (called when the dynamics is built)."""

    @abstractmethod
    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        """Transport noise ``x`` to data."""


def _discrete(denoise: Denoiser, schedule: NoiseSchedule) -> Callable[[Tensor, int], tuple[Tensor, Tensor]]:
    def at(x: Tensor, n: int) -> tuple[Tensor, Tensor]:
        return denoise(x, schedule.abar(torch.tensor(n)), float(schedule.step_to_t(torch.tensor(n))))

    return at


def ddim_walk(denoise: Denoiser, x: Tensor, schedule: NoiseSchedule, steps: Sequence[int], eta: float, name: str) -> Tensor:
    """DDIM (Song et al., 2021) from ``x`` at step ``steps[0]`` through ``steps`` to the data.

    ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z`` with
    ``sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev)``; ``eta = 0`` is
    deterministic, ``eta = 1`` is the DDPM posterior (small variance).
    """
    at = _discrete(denoise, schedule)
    x0 = x
    for i, n in enumerate(steps):
        prev = steps[i + 1] if i + 1 < len(steps) else -1
        x0, eps = at(x, n)
        ab, ab_prev = schedule.abar(torch.tensor(n)), schedule.abar(torch.tensor(prev))
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        x = _coef(ab_prev.sqrt(), x) * x0 + _coef((1 - ab_prev - sigma**2).clamp_min(0).sqrt(), x) * eps
        if eta > 0 and prev >= 0:
            x = x + _coef(sigma, x) * torch.randn_like(x)
        check_finite(x, i, float(schedule.step_to_t(torch.tensor(prev))), name)
    return x if steps else x0


class DDIM(DiffusionSampler):
    """DDIM on ``steps`` steps strided evenly from ``T - 1`` to 0 (``eta`` 0: deterministic).

    Parameters
    ----------
    steps
        Network evaluations (at most the schedule's ``timesteps``).
    eta
        Stochasticity: 0 deterministic, 1 the DDPM posterior variance.
    """

    label = "ddim"
    capabilities = SamplerCapabilities(stochastic=None)  # eta > 0

    def __init__(self, steps: int = 100, eta: float = 0.0) -> None:
        if steps < 1 or eta < 0:
            raise ValueError(f"ddim: need steps >= 1 and eta >= 0, got steps={steps}, eta={eta}")
        self.steps, self.eta = int(steps), float(eta)
        self.capabilities = SamplerCapabilities(stochastic=self.eta > 0)

    def check(self, schedule: NoiseSchedule) -> None:
        strided_steps(schedule.T, self.steps)

    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        return ddim_walk(denoise, x, schedule, strided_steps(schedule.T, self.steps), self.eta, self.label)


class DDIMOfficialTruncated(DiffusionSampler):
    """PerturbDiff's released sampler: DDIM over the consecutive steps ``start_step, ..., 0`` from pure noise.

    It starts from *pure noise* at ``start_step`` although the forward marginal there is mostly data
    (``abar`` near 1 for ``start_step = 99`` of 1000), so it is not a strided DDIM; kept for parity
    with the official code (``sampling.start_time=100``).

    Parameters
    ----------
    start_step
        First discrete step (PerturbDiff: 99); ``start_step + 1`` network evaluations.
    eta
        DDIM stochasticity (PerturbDiff: 0).
    """

    label = "ddim_official_truncated"
    capabilities = SamplerCapabilities(stochastic=None)  # eta > 0

    def __init__(self, start_step: int = 99, eta: float = 0.0) -> None:
        if start_step < 0 or eta < 0:
            raise ValueError(f"ddim_official_truncated: need start_step >= 0 and eta >= 0, got {start_step}, {eta}")
        self.start_step, self.eta = int(start_step), float(eta)
        self.capabilities = SamplerCapabilities(stochastic=self.eta > 0)

    def check(self, schedule: NoiseSchedule) -> None:
        if not 0 <= self.start_step < schedule.T:
            raise ValueError(f"ddim_official_truncated: start_step must be in [0, timesteps={schedule.T}), got {self.start_step}")

    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        return ddim_walk(denoise, x, schedule, list(range(self.start_step, -1, -1)), self.eta, self.label)


class DDPM(DiffusionSampler):
    """Ancestral sampling from the DDPM posterior ``q(x_prev | x, x0_hat)`` over ``steps`` strided steps.

    With fewer steps than ``T`` the chain is respaced (``beta = 1 - abar / abar_prev``). No noise is
    added at the last step.

    Parameters
    ----------
    steps
        Network evaluations (at most the schedule's ``timesteps``).
    variance
        ``"small"``: the posterior variance ``(1 - abar_prev)/(1 - abar) beta``; ``"large"``: ``beta``
        (guided-diffusion's FIXED_LARGE, PerturbDiff's setting).
    """

    label = "ddpm"
    capabilities = SamplerCapabilities(stochastic=True)

    def __init__(self, steps: int = 100, variance: Literal["small", "large"] = "small") -> None:
        if steps < 1:
            raise ValueError(f"ddpm: steps must be >= 1, got {steps}")
        if variance not in ("small", "large"):
            raise ValueError(f"ddpm: variance must be 'small' or 'large', got {variance!r}")
        self.steps, self.variance = int(steps), variance

    def check(self, schedule: NoiseSchedule) -> None:
        strided_steps(schedule.T, self.steps)

    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        at = _discrete(denoise, schedule)
        steps = strided_steps(schedule.T, self.steps)
        for i, n in enumerate(steps):
            prev = steps[i + 1] if i + 1 < len(steps) else -1
            x0, _ = at(x, n)
            ab, ab_prev = schedule.abar(torch.tensor(n)), schedule.abar(torch.tensor(prev))
            beta = 1 - ab / ab_prev
            c0 = ab_prev.sqrt() * beta / (1 - ab)
            ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
            x = _coef(c0, x) * x0 + _coef(ct, x) * x
            if prev >= 0:
                var = beta if self.variance == "large" else (1 - ab_prev) / (1 - ab) * beta
                x = x + _coef(var.sqrt(), x) * torch.randn_like(x)
            check_finite(x, i, float(schedule.step_to_t(torch.tensor(prev))), self.label)
        return x


#: The diffusion-sampler registry (entry points ``distgen.diffusion_samplers``).
diffusion_samplers: Registry[DiffusionSampler] = Registry(
    "diffusion_samplers",
    DiffusionSampler,
    {
        "ddim": "distgen.dynamics.diffusion_samplers:DDIM",
        "ddim_official_truncated": "distgen.dynamics.diffusion_samplers:DDIMOfficialTruncated",
        "ddpm": "distgen.dynamics.diffusion_samplers:DDPM",
        "ode": "distgen.dynamics.vp_samplers:ProbabilityFlowODE",
        "sde": "distgen.dynamics.vp_samplers:ReverseSDE",
    },
)

__all__ = [
    "DDIM",
    "DDPM",
    "DDIMOfficialTruncated",
    "Denoiser",
    "DiffusionSampler",
    "NonFiniteSampleError",
    "check_finite",
    "ddim_walk",
    "diffusion_samplers",
]
