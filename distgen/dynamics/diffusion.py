"""Gaussian diffusion (variance preserving): DDPM training, DDIM/DDPM/SDE/ODE sampling.

Time: discrete step ``n`` in ``0 .. T-1`` is distgen time ``t = 1 - (n + 1) / T`` (``t = 0`` pure
noise, ``t = 1`` data); backbones only ever see ``t``. Training draws one step per *set* (every
cell of a set shares its noise level, as in PerturbDiff). Classifier-free guidance works in
noise space: ``eps = eps_null + w (eps_cond - eps_null)`` (``w = 1`` is plain conditional
sampling, as in every distgen dynamics; PerturbDiff's ``guidance_strength = 1`` is ``w = 2``);
self-conditioning feeds the previous data
estimate back to the network (``Field(..., x_self_cond=...)``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.couplings.base import Coupling
from distgen.dynamics import dynamics
from distgen.dynamics.base import Dynamics, Field, masked_mse
from distgen.dynamics.diffusion_predictions import PREDICTIONS, from_x0_noise, to_noise, to_x0
from distgen.dynamics.diffusion_samplers import DDPM_VARIANCES, ddim, ddpm
from distgen.dynamics.schedules import VPSchedule, make_betas, strided_steps
from distgen.dynamics.sde import ODE_METHODS, SDE_METHODS, probability_flow, reverse_sde
from distgen.types import LossOutput, SampleOutput

SAMPLERS = ("ddim", "ddim_official_truncated", "ddpm", "sde", "ode")


@dynamics.register("diffusion")
class Diffusion(Dynamics):
    """Variance-preserving diffusion (DDPM) trained on sets, sampled by DDIM, DDPM, reverse SDE or PF-ODE.

    Parameters
    ----------
    schedule, timesteps, beta_start, beta_end, cosine_s
        Noise schedule: ``"linear"`` (betas ``beta_start..beta_end`` scaled by ``1000/T``) or
        ``"cosine"`` (Nichol & Dhariwal, offset ``cosine_s``) over ``timesteps`` (``T``) steps.
    prediction
        Network output: ``"noise"`` (eps), ``"x0"`` (data; PerturbDiff) or ``"velocity"``
        (``a eps - s x0``). The training loss is the MSE in that space.
    self_condition
        Probability (one coin per batch) of a no-grad first pass whose ``x0`` estimate is fed
        back as ``x_self_cond`` (PerturbDiff: 0.5); at sampling the previous step's estimate is fed
        whenever this is > 0.
    guidance
        Classifier-free guidance weight ``w`` in noise space, ``eps = eps_null + w (eps_cond - eps_null)``;
        1 disables it (one network call per step), 0 samples unconditionally. PerturbDiff's
        ``(1 + s) eps_cond - s eps_null`` with ``s = 1`` is ``w = 2``. Needs a model trained with
        condition dropout (``p_drop_condition > 0``).
    sampler
        ``"ddim"`` (``sample_steps`` strided from ``T-1``; ``eta``), ``"ddim_official_truncated"``
        (PerturbDiff's released sampler: consecutive steps ``start_step, ..., 0`` of the ``T``-step
        chain, starting from *pure noise* at ``start_step`` although the forward marginal there is
        mostly data; not equivalent to a strided DDIM), ``"ddpm"`` (ancestral, ``sample_steps``
        respaced), ``"sde"`` (reverse VP-SDE by torchsde) or ``"ode"`` (probability-flow ODE by
        torchdiffeq).
    sample_steps
        Steps of ``ddim``/``ddpm``/``sde``/fixed-step ``ode``.
    eta
        DDIM stochasticity (0 deterministic, 1 = DDPM posterior variance).
    start_step
        First step of ``ddim_official_truncated`` (PerturbDiff: ``start_time=100`` -> 99).
    ddpm_variance
        ``"small"`` (posterior) or ``"large"`` (``beta``; PerturbDiff's FIXED_LARGE).
    sde_method
        ``"euler"`` (Euler-Maruyama) or ``"srk"`` (stochastic Runge-Kutta, strong order 1.5).
    ode_method, rtol, atol
        torchdiffeq method (fixed-step ``euler``/``midpoint``/``rk4``, adaptive ``dopri5``...) and tolerances.
    continuous_t_start
        Time at which ``sde``/``ode`` start from pure noise (0; use ~0.01 with the cosine schedule,
        whose rate ``beta`` is huge in its last step).
    clip_denoised
        If set, every ``x0`` estimate is thresholded during sampling: values below it become 0
        (PerturbDiff: 1e-4, non-negative expression). None disables.
    """

    capabilities: ClassVar[dict[str, Any]] = {"source": ("noise",), "stochastic_sampler": True}
    example_params: ClassVar[dict[str, Any]] = {"timesteps": 100, "sample_steps": 4}

    def __init__(
        self,
        schedule: str = "linear",
        timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        cosine_s: float = 0.008,
        prediction: str = "noise",
        self_condition: float = 0.0,
        guidance: float = 1.0,
        sampler: str = "ddim",
        sample_steps: int = 100,
        eta: float = 0.0,
        start_step: int = 99,
        ddpm_variance: str = "small",
        sde_method: str = "euler",
        ode_method: str = "rk4",
        rtol: float = 1e-4,
        atol: float = 1e-4,
        continuous_t_start: float = 0.0,
        clip_denoised: float | None = None,
    ) -> None:
        checks = [
            (prediction in PREDICTIONS, "prediction", prediction, PREDICTIONS),
            (sampler in SAMPLERS, "sampler", sampler, SAMPLERS),
            (ddpm_variance in DDPM_VARIANCES, "ddpm_variance", ddpm_variance, DDPM_VARIANCES),
            (sde_method in SDE_METHODS, "sde_method", sde_method, SDE_METHODS),
            (ode_method in ODE_METHODS, "ode_method", ode_method, ODE_METHODS),
        ]
        for ok, key, value, choices in checks:
            if not ok:
                raise ValueError(f"diffusion: {key}={value!r} is not one of {choices}")
        if not 0.0 <= self_condition <= 1.0:
            raise ValueError(f"diffusion: self_condition is a probability in [0, 1], got {self_condition}")
        if guidance < 0:
            raise ValueError(f"diffusion: guidance weight must be >= 0 (1 disables it), got {guidance}")
        if eta < 0:
            raise ValueError(f"diffusion: eta must be >= 0, got {eta}")
        if not 1 <= sample_steps <= timesteps:
            raise ValueError(f"diffusion: sample_steps must be in [1, timesteps={timesteps}], got {sample_steps}")
        if not 0 <= start_step < timesteps:
            raise ValueError(f"diffusion: start_step must be in [0, timesteps={timesteps}), got {start_step}")
        self.schedule = VPSchedule(make_betas(schedule, timesteps, beta_start, beta_end, cosine_s))
        self.schedule_name = schedule
        self.prediction = prediction
        self.self_condition = float(self_condition)
        self.guidance = float(guidance)
        self.sampler = sampler
        self.sample_steps = sample_steps
        self.eta = float(eta)
        self.start_step = start_step
        self.ddpm_variance = ddpm_variance
        self.sde_method = sde_method
        self.ode_method = ode_method
        self.rtol, self.atol = rtol, atol
        self.continuous_t_start = continuous_t_start
        self.clip_denoised = clip_denoised
        self.source = "noise"

    # ------------------------------------------------------------------ training
    def loss(self, field: Field, x1: Tensor, mask: Tensor, source: Tensor, coupling: Coupling) -> LossOutput:
        eps = coupling.pair(source, x1, mask)
        b, m, _ = x1.shape
        n = torch.randint(self.schedule.T, (b,), device=x1.device)  # one noise level per set
        abar = self.schedule.abar(n).to(device=x1.device, dtype=x1.dtype)[:, None, None]
        a, s = abar.sqrt(), (1 - abar).sqrt()
        x_t = a * x1 + s * eps
        t = self.schedule.step_to_t(n).to(device=x1.device, dtype=x1.dtype)[:, None].expand(b, m)
        x_sc = None
        if self.self_condition > 0 and float(torch.rand(())) < self.self_condition:
            with torch.no_grad():
                x_sc = to_x0(field(x_t, t), self.prediction, x_t, a, s).detach()
        out = field(x_t, t, x_self_cond=x_sc)
        mse = masked_mse(out, from_x0_noise(self.prediction, x1, eps, a, s), mask)
        x1_hat = to_x0(out, self.prediction, x_t, a, s)
        return LossOutput(loss=mse, parts={"diffusion_mse": float(mse.detach())}, extras={"x1_hat": x1_hat, "t": t})

    # ------------------------------------------------------------------ sampling
    def denoiser(self, field: Field) -> tuple[Any, dict[str, int]]:
        """``denoise(x, abar, t) -> (x0_hat, eps_hat)`` with guidance, self-conditioning, clipping."""
        state: dict[str, Any] = {"x0": None, "nfe": 0}

        def denoise(x: Tensor, abar: Tensor, t: float) -> tuple[Tensor, Tensor]:
            ab = torch.as_tensor(abar, dtype=x.dtype, device=x.device)
            a, s = ab.sqrt(), (1 - ab).sqrt()
            tt = torch.full(x.shape[:2], t, dtype=x.dtype, device=x.device)
            x_sc = state["x0"] if self.self_condition > 0 else None
            out = field(x, tt, x_self_cond=x_sc)
            state["nfe"] += 1
            if self.guidance != 1.0:
                out_null = field(x, tt, x_self_cond=x_sc, uncond=True)
                state["nfe"] += 1
                eps_null = to_noise(out_null, self.prediction, x, a, s)
                eps = eps_null + self.guidance * (to_noise(out, self.prediction, x, a, s) - eps_null)
                x0 = (x - s * eps) / a
            else:
                x0, eps = to_x0(out, self.prediction, x, a, s), to_noise(out, self.prediction, x, a, s)
            if self.clip_denoised is not None:
                x0 = torch.where(x0 < self.clip_denoised, torch.zeros_like(x0), x0)
                eps = (x - a * x0) / s
            state["x0"] = x0
            return x0, eps

        return denoise, state

    def sample(self, field: Field, x0: Tensor, mask: Tensor) -> SampleOutput:
        denoise, state = self.denoiser(field)
        sch = self.schedule

        def discrete(x: Tensor, n: int) -> tuple[Tensor, Tensor]:
            return denoise(x, sch.abar(torch.tensor(n)), float(sch.step_to_t(torch.tensor(n))))

        def continuous(x: Tensor, tau: float) -> tuple[Tensor, Tensor]:
            return denoise(x, sch.abar_tau(torch.tensor(tau)), 1.0 - tau)

        if self.sampler == "ddim":
            cells = ddim(discrete, x0, sch, strided_steps(sch.T, self.sample_steps), self.eta)
        elif self.sampler == "ddim_official_truncated":
            steps = list(range(self.start_step, -1, -1))
            cells = ddim(discrete, x0, sch, steps, self.eta, name="ddim_official_truncated")
        elif self.sampler == "ddpm":
            cells = ddpm(discrete, x0, sch, strided_steps(sch.T, self.sample_steps), self.ddpm_variance)
        elif self.sampler == "sde":
            cells = reverse_sde(continuous, x0, sch, self.sde_method, self.sample_steps, self.continuous_t_start)
        else:
            cells = probability_flow(
                continuous, x0, sch, self.ode_method, self.sample_steps, self.continuous_t_start, self.rtol, self.atol
            )
        return SampleOutput(cells=cells, nfe=state["nfe"], info={"sampler": self.sampler})


__all__ = ["SAMPLERS", "Diffusion"]
