"""Affine probability paths ``x_t = alpha(t) x1 + sigma(t) x0`` and prediction conversions.

``t = 0`` is the source (noise or control cells), ``t = 1`` the data. A path is a small object
holding its schedule; the conversions between what a network predicts (velocity or endpoint
``x1``) and the other quantity are pure functions of the schedule, valid for every affine path:

    x_t = a x1 + s x0,  u_t = a' x1 + s' x0
    =>  x1 = (s' x_t - s u) / (s' a - s a'),   u = (s' x_t + (s a' - s' a) x1) / s

For CondOT with ``sigma_min = 0`` this gives scDFM's one-step estimate ``x1 = x_t + (1 - t) v``.
Paths are a registered kind (``paths``): a plugin adds one by subclassing ``AffinePath`` and
declaring an entry point in ``distgen.paths``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from distgen.capabilities import Capabilities
from distgen.registry import Registry


class AffinePath(ABC):
    """``x_t = alpha(t) x1 + sigma(t) x0``; subclasses give ``alpha, sigma`` and their derivatives.

    A path must give ``alpha(0) = 0, sigma(0) = 1`` up to a constant width (the source end) and
    ``alpha(1) = 1`` (the data end); the contract suite checks the ends and that ``u_t`` is the time
    derivative of ``x_t``.
    """

    capabilities: Capabilities = Capabilities()

    @abstractmethod
    def schedule(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(alpha, sigma, d alpha/dt, d sigma/dt)`` at times ``t`` (any shape)."""

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(x_t, u_t)`` for ``x0, x1 [..., G]`` and times ``t [...]``: the point and its target velocity."""
        a, s, da, ds = (v[..., None] for v in self.schedule(t))
        return a * x1 + s * x0, da * x1 + ds * x0

    def velocity_to_x1(self, x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
        """Endpoint implied by velocity ``v`` at ``(x_t, t)``: ``(s' x_t - s v) / (s' a - s a')``."""
        a, s, da, ds = (q[..., None] for q in self.schedule(t))
        return (ds * x_t - s * v) / (ds * a - s * da)

    def x1_to_velocity(self, x_t: Tensor, x1: Tensor, t: Tensor) -> Tensor:
        """Velocity implied by endpoint ``x1`` at ``(x_t, t)``: ``(s' x_t + (s a' - s' a) x1) / s``.

        Singular where ``sigma(t) = 0`` (the data end ``t = 1`` of ``condot`` with ``sigma_min = 0``
        and of ``cosine``): there it is ``0/0`` for an exact ``x1`` and the endpoint's error divided by
        zero otherwise, so it is not evaluated there (``FlowMatching.sample`` stops short and ends
        with ``jump``).
        """
        a, s, da, ds = (q[..., None] for q in self.schedule(t))
        return (ds * x_t + (s * da - ds * a) * x1) / s

    def jump(self, x_t: Tensor, x1: Tensor, t: Tensor, t_next: Tensor) -> Tensor:
        """``x`` at ``t_next`` on the conditional path through ``(x_t, t)`` with endpoint ``x1`` held fixed.

        ``a(t') x1 + s(t') x0_hat`` with ``x0_hat = (x_t - a(t) x1) / s(t)`` (the DDIM step of the path;
        ``t`` needs ``sigma(t) != 0``). At ``t' = 1`` with ``sigma(1) = 0`` it is ``x1``; on ``condot``
        it is the Euler step of ``x1_to_velocity``.
        """
        a, s, _, _ = (q[..., None] for q in self.schedule(t))
        a2, s2, _, _ = (q[..., None] for q in self.schedule(t_next))
        return a2 * x1 + s2 * (x_t - a * x1) / s

class CondOTPath(AffinePath):
    """Conditional-OT (rectified) linear path ``x_t = t x1 + (1 - (1 - sigma_min) t) x0``.

    Parameters
    ----------
    sigma_min
        Width of the conditional path at the data end (scDFM: 0, Lipman et al.: small > 0).
    """

    def __init__(self, sigma_min: float = 0.0) -> None:
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"condot path: sigma_min must be in [0, 1), got {sigma_min}")
        self.sigma_min = float(sigma_min)

    def schedule(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c = 1.0 - self.sigma_min
        return t, 1.0 - c * t, torch.ones_like(t), torch.full_like(t, -c)


class CosinePath(AffinePath):
    """Variance-preserving trigonometric path ``x_t = sin(pi t / 2) x1 + cos(pi t / 2) x0``.

    ``alpha^2 + sigma^2 = 1`` at every ``t`` (the "VP/cosine" interpolant of Albergo & Vanden-Eijnden).
    """

    def schedule(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h = 0.5 * math.pi
        return torch.sin(h * t), torch.cos(h * t), h * torch.cos(h * t), -h * torch.sin(h * t)


#: The probability-path registry (entry points ``distgen.paths``).
paths: Registry[AffinePath] = Registry(
    "paths",
    AffinePath,
    {"condot": "distgen.dynamics.paths:CondOTPath", "cosine": "distgen.dynamics.paths:CosinePath"},
)

__all__ = ["AffinePath", "CondOTPath", "CosinePath", "paths"]
