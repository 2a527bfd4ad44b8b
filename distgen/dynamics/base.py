"""Generative dynamics interface: a training objective and a sampler; no weights.

Time convention everywhere in distgen: ``t`` in [0, 1], ``t = 0`` the source (noise or control
cells), ``t = 1`` the data. Discrete-time diffusion maps into this frame inside ``dynamics/``;
conversions between predictions (noise, velocity, sample) live here and nowhere else.

A dynamics is assembled from small registered parts, each its own kind with its own registry:
probability paths (``paths``), time samplers (``time_samplers``), ODE solvers (``ode_solvers``),
SDE solvers (``sde_solvers``), noise schedules (``noise_schedules``) and diffusion samplers
(``diffusion_samplers``); the coupling is passed to ``loss``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.nn import functional as F

from distgen.capabilities import DynamicsCapabilities
from distgen.couplings.base import Coupling
from distgen.registry import Registry
from distgen.types import LossOutput, SampleOutput, nothing_padded


class Field(Protocol):
    """A backbone with its condition bound: ``field(x_t [B, m, G], t [B, m]) -> [B, m, G]``.

    ``x_self_cond`` passes the previous data estimate (self-conditioning); ``uncond=True`` asks
    for the prediction with the condition dropped (classifier-free guidance). A field may also
    carry ``both(x_t, t, *, x_self_cond=None) -> (conditional, unconditional)``: the two
    predictions from one batched network call (``guided_pair`` uses it when present).
    """

    def __call__(self, x_t: Tensor, t: Tensor, *, x_self_cond: Tensor | None = None, uncond: bool = False) -> Tensor: ...


def guided_pair(field: Field, x_t: Tensor, t: Tensor, **kw: Any) -> tuple[Tensor, Tensor]:
    """``(field(x_t, t), field(x_t, t, uncond=True))``, in one call when the field offers ``both``."""
    both = getattr(field, "both", None)
    if both is not None:
        return both(x_t, t, **kw)  # type: ignore[no-any-return]
    return field(x_t, t, **kw), field(x_t, t, uncond=True, **kw)


def check_guidance(who: str, w: float) -> float:
    """The classifier-free guidance weight ``w`` as a float; refused unless finite and > 0.

    distgen's convention: ``pred = pred_null + w (pred_cond - pred_null)``, so ``w = 1`` is plain
    conditional sampling (no guidance) and ``w > 1`` strengthens the condition (``w = 1 + s`` in the
    ``(1 + s) pred_cond - s pred_null`` form of PerturbDiff and of Ho & Salimans, where ``s = 0`` is no
    guidance). ``w = 0`` would sample the unconditional model alone, the same for every
    perturbation, which is what a user of the other convention gets by writing 0 for "off"; distgen
    has no unconditional sampling option, so 0 (and below) is refused. ``0 < w < 1`` weakens the condition.
    """
    w = float(w)
    convention = (
        "distgen's guidance weight w gives pred_null + w (pred_cond - pred_null): w = 1 is plain conditional sampling "
        "(no guidance), w > 1 strengthens the condition (the s of (1 + s) pred_cond - s pred_null is w - 1)"
    )
    if w == 0:
        raise ValueError(
            f"{who}: guidance=0 would sample the unconditional model, the same prediction for every perturbation; {convention}. "
            "Set guidance: 1 for no guidance (in the convention where 0 is 'off', use w = 1 + your value)"
        )
    if not (math.isfinite(w) and w > 0):
        raise ValueError(f"{who}: guidance must be a finite weight > 0, got {w}; {convention}. Set guidance: 1 for no guidance")
    return w


class Dynamics(ABC):
    """``loss(field, x1, mask, source, coupling) -> LossOutput``; ``sample(field, x0, mask) -> SampleOutput``.

    ``source`` is the ``[B, m, G]`` starting population: Gaussian noise (``self.source == "noise"``)
    or control cells (``"control"``); the model draws it with ``draw_source``. ``loss`` puts the
    one-step estimate of the data endpoint in ``extras["x1_hat"]`` (``[B, m, G]``, differentiable)
    so a distribution-level loss can compare it with the real set.
    """

    capabilities: DynamicsCapabilities = DynamicsCapabilities()
    source: str = "noise"

    def draw_source(self, x1: Tensor, control: Tensor | None) -> Tensor:
        """``[B, m, G]`` source samples: standard normal, or the matched control cells."""
        if self.source == "noise":
            return torch.randn_like(x1)
        if self.source == "control":
            if control is None or control.shape != x1.shape:
                raise ValueError("dynamics with source='control' needs one control cell per target cell")
            return control
        raise ValueError(f"unknown source {self.source!r}; expected 'noise' or 'control'")

    @abstractmethod
    def loss(self, field: Field, x1: Tensor, mask: Tensor, source: Tensor, coupling: Coupling) -> LossOutput:
        """Training loss on target sets ``x1 [B, m, G]`` with real-cell mask ``[B, m]``."""

    @abstractmethod
    def sample(self, field: Field, x0: Tensor, mask: Tensor) -> SampleOutput:
        """Transport source samples ``x0 [B, m, G]`` to data (``t = 0 -> 1``)."""


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over real cells (``mask [B, m]``) and all genes."""
    if pred.shape == target.shape and pred.numel() > 0 and nothing_padded(mask):
        return F.mse_loss(pred, target)  # the same mean, one fused pass forward and backward
    w = mask.to(pred.dtype)[..., None]
    return ((pred - target).pow(2) * w).sum() / (w.sum() * pred.shape[-1]).clamp_min(1.0)


#: The dynamics registry: built-ins here, plugins from entry points ``distgen.dynamics``.
dynamics: Registry[Dynamics] = Registry(
    "dynamics",
    Dynamics,
    {"diffusion": "distgen.dynamics.diffusion:Diffusion", "flow_matching": "distgen.dynamics.flow_matching:FlowMatching"},
)
