"""Continuous-time VP diffusion samplers: the reverse SDE and the probability-flow ODE.

Forward VP-SDE in diffusion time ``tau`` (0 data, 1 noise): ``dx = -beta(tau)/2 x dtau + sqrt(beta(tau)) dW``
(Song et al., 2021). Written in distgen time ``t = 1 - tau`` (integrated from noise ``t = t_start``
to ``t_end`` near the data), with the score ``-eps_hat / sqrt(1 - abar)``:

* reverse SDE: ``dx = beta/2 (x - 2 eps_hat / sigma) dt + sqrt(beta) dW_t`` (an ``SDESolver``, torchsde)
* probability-flow ODE: ``dx/dt = beta/2 (x - eps_hat / sigma)`` (an ``ODESolver``, torchdiffeq)

Both stop at ``t_end`` (the first discrete step, ``tau = 1/T``) and return the denoiser's ``x0_hat``
there. Both are ``DiffusionSampler``s registered as ``sde`` and ``ode``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from distgen.capabilities import SamplerCapabilities
from distgen.config import Node, as_component
from distgen.dynamics.diffusion_samplers import Denoiser, DiffusionSampler, check_finite
from distgen.dynamics.noise_schedules import NoiseSchedule
from distgen.dynamics.ode_solvers import ODESolver
from distgen.dynamics.sde_solvers import SDESolver


def _t_end(schedule: NoiseSchedule) -> float:
    return 1.0 - 1.0 / schedule.T


def _check_start(t_start: float, schedule: NoiseSchedule, who: str) -> None:
    t_end = _t_end(schedule)
    if not 0.0 <= t_start < t_end:
        raise ValueError(f"{who}: t_start must be in [0, {t_end:.4f}) (t=0 is pure noise; timesteps={schedule.T}), got {t_start}")


def _at_tau(denoise: Denoiser, schedule: NoiseSchedule, x: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """The denoiser at diffusion time ``tau`` (distgen time ``1 - tau``)."""
    return denoise(x, schedule.abar_tau(torch.tensor(tau)), 1.0 - tau)


def _rates(schedule: NoiseSchedule, t: Tensor | float, t_end: float) -> tuple[float, float, float]:
    """``(tau, beta(tau), abar(tau))`` at distgen time ``t`` (clamped to ``t_end``: solvers may step past it)."""
    tau = 1.0 - min(float(t), t_end)
    tt = torch.tensor(tau)
    return tau, float(schedule.beta_tau(tt)), float(schedule.abar_tau(tt))


def _drift(denoise: Denoiser, schedule: NoiseSchedule, t_end: float, shape: torch.Size, weight: float, label: str) -> tuple[Callable[[Tensor, Tensor], Tensor], list[int]]:
    """``f(t, y) = beta/2 (x - weight eps_hat / sigma)`` (``y`` is ``x`` in the solver's shape) and its call counter:
    ``weight`` 2 is the reverse SDE's drift, 1 the probability-flow ODE's velocity."""
    calls = [0]

    def f(t: Tensor, y: Tensor) -> Tensor:
        calls[0] += 1
        check_finite(y, calls[0], float(t), label)
        tau, beta, abar = _rates(schedule, t, t_end)
        x = y.reshape(shape)
        _, eps = _at_tau(denoise, schedule, x, tau)
        return (0.5 * beta * (x - weight * eps / (1.0 - abar) ** 0.5)).reshape(y.shape)

    return f, calls


def _land(denoise: Denoiser, schedule: NoiseSchedule, x: Tensor, calls: int, t_end: float, label: str) -> Tensor:
    """The denoiser's ``x0_hat`` at ``t_end``, where the integration stopped (checked finite first)."""
    check_finite(x, calls, t_end, label)
    x0, _ = _at_tau(denoise, schedule, x, 1.0 - t_end)
    return x0


class ReverseSDE(DiffusionSampler):
    """The reverse VP-SDE integrated by an SDE solver (torchsde) from ``t_start`` to the first discrete step.

    Parameters
    ----------
    solver
        An ``sde_solvers`` node: ``euler`` (Euler-Maruyama) or ``srk``, with its ``steps``.
    t_start
        Time at which sampling starts from pure noise (0; ~0.01 with the cosine schedule, whose
        rate ``beta`` is huge in its last step).
    """

    label = "reverse VP-SDE"
    capabilities = SamplerCapabilities(stochastic=True)

    def __init__(self, solver: SDESolver | Node = "euler", t_start: float = 0.0) -> None:
        self.solver: SDESolver = as_component("sde_solvers", solver)
        self.t_start = float(t_start)

    def check(self, schedule: NoiseSchedule) -> None:
        _check_start(self.t_start, schedule, "sde sampler")

    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        t_end = _t_end(schedule)
        _check_start(self.t_start, schedule, "sde sampler")
        drift, calls = _drift(denoise, schedule, t_end, x.shape, 2.0, self.label)

        def diffusion(t: Tensor, y: Tensor) -> Tensor:
            _, beta, _ = _rates(schedule, t, t_end)
            return torch.full_like(y, beta**0.5)

        y1 = self.solver.solve(drift, diffusion, x.reshape(x.shape[0], -1), self.t_start, t_end)  # torchsde: [N, D]
        return _land(denoise, schedule, y1.reshape(x.shape), calls[0], t_end, self.label)


class ProbabilityFlowODE(DiffusionSampler):
    """The probability-flow ODE integrated by an ODE solver (torchdiffeq) from ``t_start`` to the first discrete step.

    Parameters
    ----------
    solver
        An ``ode_solvers`` node: fixed-step ``euler``/``midpoint``/``rk4`` with ``steps``, or adaptive
        ``dopri5``/``bosh3``/``adaptive_heun`` with tolerances.
    t_start
        Time at which sampling starts from pure noise (see ``sde``).
    """

    label = "probability-flow ODE"

    def __init__(self, solver: ODESolver | Node = "rk4", t_start: float = 0.0) -> None:
        self.solver: ODESolver = as_component("ode_solvers", solver)
        self.t_start = float(t_start)

    def check(self, schedule: NoiseSchedule) -> None:
        _check_start(self.t_start, schedule, "ode sampler")

    def sample(self, denoise: Denoiser, x: Tensor, schedule: NoiseSchedule) -> Tensor:
        t_end = _t_end(schedule)
        _check_start(self.t_start, schedule, "ode sampler")
        f, calls = _drift(denoise, schedule, t_end, x.shape, 1.0, self.label)
        res = self.solver.solve(f, x, self.t_start, t_end)
        return _land(denoise, schedule, res.x1, calls[0], t_end, self.label)


__all__ = ["ProbabilityFlowODE", "ReverseSDE"]
