"""Gaussian diffusion (variance preserving): DDPM training, sampled by a registered diffusion sampler.

Time: discrete step ``n`` in ``0 .. T-1`` is distgen time ``t = 1 - (n + 1) / T`` (``t = 0`` pure
noise, ``t = 1`` data); backbones only ever see ``t``. Training draws one step per *set* (every
cell of a set shares its noise level, as in PerturbDiff). Classifier-free guidance works in
noise space: ``eps = eps_null + w (eps_cond - eps_null)`` (``w = 1`` is plain conditional
sampling, as in every distgen dynamics; PerturbDiff's ``guidance_strength = 1`` is ``w = 2``);
self-conditioning feeds the previous data estimate back to the network
(``Field(..., x_self_cond=...)``).

The parts are small registered objects given as nested config nodes: the noise schedule
(``noise_schedules``) and the sampler (``diffusion_samplers``: ``ddim``,
``ddim_official_truncated``, ``ddpm``, ``sde``, ``ode``); a bare name stands for the part with
its defaults.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from distgen.capabilities import DynamicsCapabilities
from distgen.config import Node, as_component
from distgen.couplings.base import Coupling
from distgen.dynamics.base import Dynamics, Field, check_guidance, guided_pair, masked_mse
from distgen.dynamics.diffusion_predictions import PREDICTIONS, from_x0_noise, to_noise, to_x0
from distgen.dynamics.diffusion_samplers import Denoiser, DiffusionSampler
from distgen.dynamics.noise_schedules import NoiseSchedule
from distgen.types import LossOutput, SampleOutput

_SAMPLER_KEYS = "e.g. sampler: {name: ddim, steps: 100, eta: 0.0} or model.dynamics.sampler.steps=100"


class Diffusion(Dynamics):
    """Variance-preserving diffusion (DDPM) trained on sets, sampled by DDIM, DDPM, reverse SDE or PF-ODE.

    Parameters
    ----------
    schedule
        A ``noise_schedules`` node: ``linear`` (``timesteps``, ``beta_start``, ``beta_end``) or
        ``cosine`` (``timesteps``, ``s``, ``max_beta``).
    prediction
        Network output: ``"noise"`` (eps), ``"x0"`` (data; PerturbDiff) or ``"velocity"``
        (``a eps - s x0``). The training loss is the MSE in that space.
    self_condition
        Probability (one coin per batch) of a no-grad first pass whose ``x0`` estimate is fed
        back as ``x_self_cond`` (PerturbDiff: 0.5); at sampling the previous step's estimate is fed
        whenever this is > 0.
    guidance
        Classifier-free guidance weight ``w`` in noise space, ``eps = eps_null + w (eps_cond - eps_null)``;
        1 disables it (one network call per step); 0 (the unconditional model: one prediction for every
        perturbation) and below are refused (``distgen.dynamics.base.check_guidance``). PerturbDiff's
        ``(1 + s) eps_cond - s eps_null`` with ``s = 1`` is ``w = 2``. Needs a model trained with
        condition dropout (``p_drop_condition > 0``).
    sampler
        A ``diffusion_samplers`` node: ``ddim`` (``steps``, ``eta``), ``ddim_official_truncated``
        (PerturbDiff's released sampler: ``start_step``, ``eta``), ``ddpm`` (``steps``, ``variance``),
        ``sde`` (reverse VP-SDE: an ``sde_solvers`` node, ``t_start``) or ``ode`` (probability-flow
        ODE: an ``ode_solvers`` node, ``t_start``).
    clip_denoised
        If set, every ``x0`` estimate is thresholded during sampling: values below it become 0
        (PerturbDiff: 1e-4, non-negative expression). None disables. A small cutoff ``>= 0`` in the
        model's units (expression times ``input_scale``) that turns near-zero estimates into exact
        zeros: a negative one is refused, and ``Generator.prepare`` refuses one above every training
        value (every generated value would be 0) and warns when it would zero more than 1 % of the
        non-zero training values.
    """

    capabilities = DynamicsCapabilities(sources=("noise",), signed_prediction=None, self_conditioning=None, guidance=None)
    example_params: ClassVar[dict[str, Any]] = {
        "schedule": {"name": "linear", "timesteps": 100},
        "sampler": {"name": "ddim", "steps": 4},
    }
    moved_params: ClassVar[dict[str, str]] = {
        "timesteps": "set it on the schedule, e.g. schedule: {name: linear, timesteps: 1000}",
        "beta_start": "set it on the schedule, e.g. schedule: {name: linear, beta_start: 1.0e-4}",
        "beta_end": "set it on the schedule, e.g. schedule: {name: linear, beta_end: 0.02}",
        "cosine_s": "set it on the schedule, e.g. schedule: {name: cosine, s: 0.008}",
        "sample_steps": "set the sampler's steps (ddim, ddpm) or its solver's steps (sde, ode), " + _SAMPLER_KEYS,
        "eta": "set it on the sampler, e.g. sampler: {name: ddim, steps: 100, eta: 0.0} or model.dynamics.sampler.eta=0.0",
        "start_step": "set it on the sampler, e.g. sampler: {name: ddim_official_truncated, start_step: 99}",
        "ddpm_variance": "set it on the sampler, e.g. sampler: {name: ddpm, variance: large}",
        "sde_method": "give the sde sampler its solver, e.g. sampler: {name: sde, solver: {name: srk, steps: 100}}",
        "ode_method": "give the ode sampler its solver, e.g. sampler: {name: ode, solver: {name: rk4, steps: 100}}",
        "rtol": "set it on the ode sampler's solver, e.g. sampler: {name: ode, solver: {name: dopri5, rtol: 1e-4}}",
        "atol": "set it on the ode sampler's solver, e.g. sampler: {name: ode, solver: {name: dopri5, atol: 1e-4}}",
        "continuous_t_start": "set it on the sde/ode sampler, e.g. sampler: {name: sde, t_start: 0.01}",
    }

    def __init__(
        self,
        schedule: NoiseSchedule | Node = "linear",
        prediction: Literal["noise", "x0", "velocity"] = "noise",
        self_condition: float = 0.0,
        guidance: float = 1.0,
        sampler: DiffusionSampler | Node = "ddim",
        clip_denoised: float | None = None,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"diffusion: prediction={prediction!r} is not one of {PREDICTIONS}")
        if not 0.0 <= self_condition <= 1.0:
            raise ValueError(f"diffusion: self_condition is a probability in [0, 1], got {self_condition}")
        self.schedule: NoiseSchedule = as_component("noise_schedules", schedule)
        self.sampler: DiffusionSampler = as_component("diffusion_samplers", sampler)
        try:
            self.sampler.check(self.schedule)
        except ValueError as exc:
            raise ValueError(f"diffusion: {exc}") from None
        self.prediction = prediction
        self.self_condition = float(self_condition)
        self.guidance = check_guidance("diffusion", guidance)
        if clip_denoised is not None and not (math.isfinite(clip_denoised) and clip_denoised >= 0):
            raise ValueError(
                f"diffusion: clip_denoised={clip_denoised}: it is the cutoff below which denoised estimates become exactly 0 "
                "(PerturbDiff: 1.0e-4, in model units: expression x input_scale), so it must be a small number >= 0; "
                "set clip_denoised: null to keep every estimate"
            )
        self.clip_denoised = clip_denoised
        self.source = "noise"
        self.capabilities = type(self).capabilities.replace(
            signed_prediction=prediction != "x0", self_conditioning=self.self_condition > 0, guidance=self.guidance != 1.0
        )

    # ------------------------------------------------------------------ training
    def loss(self, field: Field, x1: Tensor, mask: Tensor, source: Tensor, coupling: Coupling) -> LossOutput:
        eps = coupling.pair(source, x1, mask)
        b, m, _ = x1.shape
        n = torch.randint(self.schedule.T, (b,), device=x1.device)  # one noise level per set
        abar = self.schedule.abar(n).to(device=x1.device, dtype=x1.dtype)[:, None, None]
        a, s = abar.sqrt(), (1 - abar).sqrt()
        x_t = torch.addcmul(a * x1, s, eps)  # a x1 + s eps, one pass less
        t = self.schedule.step_to_t(n).to(device=x1.device, dtype=x1.dtype)[:, None].expand(b, m)
        x_sc = None
        if self.self_condition > 0 and float(torch.rand(())) < self.self_condition:
            with torch.no_grad():
                # a copy, not the field's own output: under CUDA graphs (torch.compile's reduce-overhead mode) that
                # output lives in the graph's memory pool, which the next call (the one fed this estimate) reuses
                x_sc = to_x0(field(x_t, t), self.prediction, x_t, a, s).detach().clone()
        out = field(x_t, t, x_self_cond=x_sc) if x_sc is not None else field(x_t, t)
        mse = masked_mse(out, from_x0_noise(self.prediction, x1, eps, a, s), mask)
        x1_hat = to_x0(out, self.prediction, x_t, a, s)
        return LossOutput(loss=mse, parts={"diffusion_mse": mse.detach()}, extras={"x1_hat": x1_hat, "t": t})

    # ------------------------------------------------------------------ sampling
    def denoiser(self, field: Field) -> tuple[Denoiser, dict[str, Any]]:
        """``denoise(x, abar, t) -> (x0_hat, eps_hat)`` with guidance, self-conditioning, clipping; and its state."""
        state: dict[str, Any] = {"x0": None, "nfe": 0}

        def denoise(x: Tensor, abar: Tensor, t: float) -> tuple[Tensor, Tensor]:
            ab = torch.as_tensor(abar, dtype=x.dtype, device=x.device)
            a, s = ab.sqrt(), (1 - ab).sqrt()
            tt = torch.full(x.shape[:2], t, dtype=x.dtype, device=x.device)
            kw = {"x_self_cond": state["x0"]} if self.self_condition > 0 and state["x0"] is not None else {}
            if self.guidance != 1.0:
                out_cond, out_null = guided_pair(field, x, tt, **kw)  # one batched call where the field offers it
                state["nfe"] += 2
                # eps_null + w (eps_cond - eps_null): every parameterisation is affine in the network output
                # with the same coefficients for both calls, so guiding the outputs is the same combination
                out = torch.lerp(out_null, out_cond, self.guidance)
            else:
                out = field(x, tt, **kw)
                state["nfe"] += 1
            x0, eps = to_x0(out, self.prediction, x, a, s), to_noise(out, self.prediction, x, a, s)
            if self.clip_denoised is not None:
                x0 = zero_below(x0, self.clip_denoised)
                eps = (x - a * x0) / s
            state["x0"] = x0
            return x0, eps

        return denoise, state

    def sample(self, field: Field, x0: Tensor, mask: Tensor) -> SampleOutput:
        denoise, state = self.denoiser(field)
        cells = self.sampler.sample(denoise, x0, self.schedule)
        return SampleOutput(cells=cells, nfe=state["nfe"], info={"sampler": self.sampler.label})


def zero_below(x: Tensor, c: float) -> Tensor:
    """``where(x < c, 0, x)`` in one threshold pass (NaN stays NaN).

    ``F.threshold(x, th, 0)`` keeps ``x > th``; with ``th`` the largest value of ``x``'s dtype below
    ``c`` (as rounded to that dtype, as the comparison rounds it) that keeps exactly ``x >= c``. On one
    CPU thread the bool mask and ``where`` of 256 k floats take ~1.3 ms, the threshold ~0.04 ms.
    """
    c_ = torch.tensor(c, dtype=x.dtype)
    th = torch.nextafter(c_, torch.tensor(-math.inf, dtype=x.dtype))
    return F.threshold(x, float(th), 0.0)


__all__ = ["Diffusion", "zero_below"]
