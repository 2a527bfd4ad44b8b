"""Discrete-time diffusion samplers: DDIM (any eta, any step subset) and DDPM ancestral.

A sampler walks a descending list of discrete steps ``n_0 > n_1 > ... > n_K`` of a ``VPSchedule``
and calls a *denoiser* ``denoise(x [B, m, G], n) -> (x0_hat, eps_hat)`` once per step; guidance,
self-conditioning and clipping live in the denoiser, so every sampler gets them for free. The
last step jumps to the data (``n = -1``, ``abar = 1``), so the output is the final ``x0_hat``.
Randomness comes from torch's global generator (seed it with ``torch.manual_seed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from distgen.dynamics.schedules import VPSchedule

Denoiser = Callable[[Tensor, int], tuple[Tensor, Tensor]]
DDPM_VARIANCES = ("small", "large")


class NonFiniteSampleError(FloatingPointError):
    """A sampler produced NaN/inf; the message names the step and the time where it happened."""


def check_finite(x: Tensor, step: int, t: float, sampler: str) -> None:
    """Raise ``NonFiniteSampleError`` naming ``step`` and distgen time ``t`` if ``x`` is not finite."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteSampleError(
            f"{sampler}: {bad} non-finite value(s) at solver step {step} (t={t:.4f}, t=0 noise, t=1 data); "
            "sampling stopped. Check the model for divergence, lower the guidance weight, enable "
            "clip_denoised, or use more/smaller steps."
        )


def _coef(v: Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def ddim(denoise: Denoiser, x: Tensor, schedule: VPSchedule, steps: Sequence[int], eta: float = 0.0, name: str = "ddim") -> Tensor:
    """DDIM (Song et al., 2021) from ``x`` at step ``steps[0]`` through ``steps`` to the data.

    ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z`` with
    ``sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev)``; ``eta = 0`` is
    deterministic, ``eta = 1`` is the DDPM posterior (small variance).
    """
    x0 = x
    for i, n in enumerate(steps):
        prev = steps[i + 1] if i + 1 < len(steps) else -1
        x0, eps = denoise(x, n)
        ab, ab_prev = schedule.abar(torch.tensor(n)), schedule.abar(torch.tensor(prev))
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        x = _coef(ab_prev.sqrt(), x) * x0 + _coef((1 - ab_prev - sigma**2).clamp_min(0).sqrt(), x) * eps
        if eta > 0 and prev >= 0:
            x = x + _coef(sigma, x) * torch.randn_like(x)
        check_finite(x, i, float(schedule.step_to_t(torch.tensor(prev))), name)
    return x if steps else x0


def ddpm(denoise: Denoiser, x: Tensor, schedule: VPSchedule, steps: Sequence[int], variance: str = "small") -> Tensor:
    """Ancestral sampling from the DDPM posterior ``q(x_prev | x, x0_hat)`` over ``steps``.

    With a subset of steps the chain is respaced (``beta = 1 - abar / abar_prev``). ``variance``:
    ``"small"`` = posterior variance ``(1 - abar_prev)/(1 - abar) beta``, ``"large"`` = ``beta``
    (guided-diffusion's FIXED_LARGE, PerturbDiff's setting). No noise is added at the last step.
    """
    if variance not in DDPM_VARIANCES:
        raise ValueError(f"ddpm_variance must be one of {DDPM_VARIANCES}, got {variance!r}")
    for i, n in enumerate(steps):
        prev = steps[i + 1] if i + 1 < len(steps) else -1
        x0, _ = denoise(x, n)
        ab, ab_prev = schedule.abar(torch.tensor(n)), schedule.abar(torch.tensor(prev))
        beta = 1 - ab / ab_prev
        c0 = ab_prev.sqrt() * beta / (1 - ab)
        ct = (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab)
        x = _coef(c0, x) * x0 + _coef(ct, x) * x
        if prev >= 0:
            var = beta if variance == "large" else (1 - ab_prev) / (1 - ab) * beta
            x = x + _coef(var.sqrt(), x) * torch.randn_like(x)
        check_finite(x, i, float(schedule.step_to_t(torch.tensor(prev))), "ddpm")
    return x


__all__ = ["DDPM_VARIANCES", "Denoiser", "NonFiniteSampleError", "check_finite", "ddim", "ddpm"]
