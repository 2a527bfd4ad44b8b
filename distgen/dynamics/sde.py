"""Continuous-time VP diffusion samplers: the reverse SDE (torchsde) and the probability-flow ODE (torchdiffeq).

Forward VP-SDE in diffusion time ``tau`` (0 data, 1 noise): ``dx = -beta(tau)/2 x dtau + sqrt(beta(tau)) dW``
(Song et al., 2021). Written in distgen time ``t = 1 - tau`` (integrated from noise ``t = t_start``
to ``t_end`` near the data), with the score ``-eps_hat / sqrt(1 - abar)``:

* reverse SDE: ``dx = beta/2 (x - 2 eps_hat / sigma) dt + sqrt(beta) dW_t``
* probability-flow ODE: ``dx/dt = beta/2 (x - eps_hat / sigma)``

Both stop at ``t_end`` (the first discrete step, ``tau = 1/T``) and return the denoiser's ``x0_hat``
there. The denoiser is ``denoise(x [B, m, G], tau) -> (x0_hat, eps_hat)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchsde
from torch import Tensor
from torchdiffeq import odeint

from distgen.dynamics.diffusion_samplers import NonFiniteSampleError, check_finite
from distgen.dynamics.schedules import VPSchedule

ContinuousDenoiser = Callable[[Tensor, float], tuple[Tensor, Tensor]]
SDE_METHODS = ("euler", "srk")  # Euler-Maruyama (strong order 0.5) and Roessler SRK (strong order 1.5)
ODE_METHODS = ("euler", "midpoint", "rk4", "dopri5", "bosh3", "adaptive_heun")
ODE_FIXED = ("euler", "midpoint", "rk4")


class _ReverseVPSDE(torch.nn.Module):
    """torchsde wrapper: state ``[B, m*G]``, Ito, diagonal noise, distgen time."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, denoise: ContinuousDenoiser, schedule: VPSchedule, shape: torch.Size, t_end: float) -> None:
        super().__init__()
        self.denoise = denoise
        self.schedule = schedule
        self.shape = shape
        self.t_end = t_end
        self.calls = 0

    def _tau(self, t: Tensor) -> float:
        return 1.0 - min(float(t), self.t_end)

    def _beta_abar(self, t: Tensor) -> tuple[float, float]:
        tau = torch.tensor(self._tau(t))
        return float(self.schedule.beta_tau(tau)), float(self.schedule.abar_tau(tau))

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        self.calls += 1
        check_finite(y, self.calls, float(t), "reverse VP-SDE")
        beta, abar = self._beta_abar(t)
        x = y.reshape(self.shape)
        _, eps = self.denoise(x, self._tau(t))
        drift = 0.5 * beta * (x - 2.0 * eps / (1.0 - abar) ** 0.5)
        return drift.reshape(y.shape)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        beta, _ = self._beta_abar(t)
        return torch.full_like(y, beta**0.5)


def reverse_sde(
    denoise: ContinuousDenoiser, x: Tensor, schedule: VPSchedule, method: str = "euler", steps: int = 100, t_start: float = 0.0
) -> Tensor:
    """Integrate the reverse VP-SDE from ``x`` (noise at ``t_start``) with ``steps`` steps of torchsde."""
    if method not in SDE_METHODS:
        raise ValueError(f"sde_method must be one of {SDE_METHODS}, got {method!r}")
    t_end = 1.0 - 1.0 / schedule.T
    _check_span(t_start, t_end, steps)
    sde = _ReverseVPSDE(denoise, schedule, x.shape, t_end)
    y0 = x.reshape(x.shape[0], -1)
    ts = torch.tensor([t_start, t_end], dtype=x.dtype, device=x.device)
    entropy = int(torch.randint(0, 2**31 - 1, (1,)).item())  # drawn from the global torch seed
    levy = "space-time" if method == "srk" else "none"
    bm = torchsde.BrownianInterval(t0=float(ts[0]), t1=float(ts[-1]), size=y0.shape, dtype=x.dtype, device=x.device,
                                   entropy=entropy, levy_area_approximation=levy)
    ys = torchsde.sdeint(sde, y0, ts, method=method, dt=float(ts[-1] - ts[0]) / steps, bm=bm)
    out = ys[-1].reshape(x.shape)
    check_finite(out, sde.calls, t_end, "reverse VP-SDE")
    x0, _ = denoise(out, 1.0 - t_end)
    return x0


def probability_flow(
    denoise: ContinuousDenoiser,
    x: Tensor,
    schedule: VPSchedule,
    method: str = "rk4",
    steps: int = 100,
    t_start: float = 0.0,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> Tensor:
    """Integrate the probability-flow ODE from ``x`` at ``t_start`` with torchdiffeq."""
    if method not in ODE_METHODS:
        raise ValueError(f"ode_method must be one of {ODE_METHODS}, got {method!r}")
    t_end = 1.0 - 1.0 / schedule.T
    _check_span(t_start, t_end, steps)
    calls = 0

    def f(t: Tensor, y: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        check_finite(y, calls, float(t), "probability-flow ODE")
        tau = 1.0 - min(float(t), t_end)  # adaptive solvers may step past t_end and interpolate back
        beta, abar = float(schedule.beta_tau(torch.tensor(tau))), float(schedule.abar_tau(torch.tensor(tau)))
        _, eps = denoise(y, tau)
        return 0.5 * beta * (y - eps / (1.0 - abar) ** 0.5)

    opts: dict[str, Any] = {}
    if method in ODE_FIXED:
        grid = torch.linspace(t_start, t_end, steps + 1, dtype=x.dtype, device=x.device)
    else:
        grid = torch.tensor([t_start, t_end], dtype=x.dtype, device=x.device)
        opts = {"rtol": rtol, "atol": atol}
    out = odeint(f, x, grid, method=method, **opts)[-1]
    check_finite(out, calls, t_end, "probability-flow ODE")
    x0, _ = denoise(out, 1.0 - t_end)
    return x0


def _check_span(t_start: float, t_end: float, steps: int) -> None:
    if not 0.0 <= t_start < t_end:
        raise ValueError(f"continuous_t_start must be in [0, {t_end:.4f}) (t=0 is pure noise), got {t_start}")
    if steps < 1:
        raise ValueError(f"sample_steps must be >= 1, got {steps}")


__all__ = ["ODE_METHODS", "SDE_METHODS", "NonFiniteSampleError", "probability_flow", "reverse_sde"]
