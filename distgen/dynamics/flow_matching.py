"""Conditional flow matching on the linear (CondOT) path, sampled by torchdiffeq."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor
from torchdiffeq import odeint

from distgen.couplings.base import Coupling
from distgen.dynamics import dynamics
from distgen.dynamics.base import Dynamics, Field, masked_mse
from distgen.types import LossOutput, SampleOutput

FIXED_STEP = ("euler", "midpoint", "rk4")
ADAPTIVE = ("dopri5",)


@dynamics.register("flow_matching")
class FlowMatching(Dynamics):
    """Flow matching: ``x_t = t x1 + (1 - (1 - sigma_min) t) x0``, regress the velocity.

    Parameters
    ----------
    source
        ``"noise"`` (standard normal) or ``"control"`` (matched control cells).
    sigma_min
        Width of the conditional path at ``t = 1`` (0 gives the rectified/linear path).
    solver
        torchdiffeq method: fixed-step ``euler``, ``midpoint``, ``rk4`` or adaptive ``dopri5``.
    steps
        Number of grid points in [0, 1] for fixed-step solvers (scDFM: 20 -> 19 RK4 steps).
    rtol, atol
        Tolerances of adaptive solvers.
    clamp_min
        Clamp generated values below this (scDFM clamps at 0); None to disable.
    """

    capabilities: ClassVar[dict[str, Any]] = {"source": ("noise", "control"), "stochastic_sampler": False}

    def __init__(
        self,
        source: str = "noise",
        sigma_min: float = 0.0,
        solver: str = "rk4",
        steps: int = 20,
        rtol: float = 1e-4,
        atol: float = 1e-4,
        clamp_min: float | None = None,
    ) -> None:
        if source not in ("noise", "control"):
            raise ValueError(f"flow_matching: source must be 'noise' or 'control', got {source!r}")
        if solver not in FIXED_STEP + ADAPTIVE:
            raise ValueError(f"flow_matching: unknown solver {solver!r}; choose from {FIXED_STEP + ADAPTIVE}")
        if steps < 2:
            raise ValueError(f"flow_matching: steps must be >= 2 grid points, got {steps}")
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"flow_matching: sigma_min must be in [0, 1), got {sigma_min}")
        self.source = source
        self.sigma_min = sigma_min
        self.solver = solver
        self.steps = steps
        self.rtol = rtol
        self.atol = atol
        self.clamp_min = clamp_min

    def loss(self, field: Field, x1: Tensor, mask: Tensor, source: Tensor, coupling: Coupling) -> LossOutput:
        x0 = coupling.pair(source, x1, mask)
        t = torch.rand(x1.shape[:2], device=x1.device, dtype=x1.dtype)  # one time per cell
        tt = t[..., None]
        x_t = tt * x1 + (1.0 - (1.0 - self.sigma_min) * tt) * x0
        u = x1 - (1.0 - self.sigma_min) * x0
        v = field(x_t, t)
        fm = masked_mse(v, u, mask)
        x1_hat = x_t + (1.0 - tt) * v  # one-step endpoint estimate
        return LossOutput(loss=fm, parts={"flow_matching": float(fm.detach())}, extras={"x1_hat": x1_hat})

    def sample(self, field: Field, x0: Tensor, mask: Tensor) -> SampleOutput:
        nfe = 0
        b, m, _ = x0.shape

        def f(t: Tensor, x: Tensor) -> Tensor:
            nonlocal nfe
            nfe += 1
            return field(x, t.expand(b, m).to(x.dtype))

        grid = torch.linspace(0.0, 1.0, self.steps if self.solver in FIXED_STEP else 2, device=x0.device)
        opts: dict[str, Any] = {}
        if self.solver in ADAPTIVE:
            opts = {"rtol": self.rtol, "atol": self.atol}
        x1 = odeint(f, x0, grid, method=self.solver, **opts)[-1]
        if self.clamp_min is not None:
            x1 = x1.clamp_min(self.clamp_min)
        return SampleOutput(cells=x1, nfe=nfe, info={"solver": self.solver})
