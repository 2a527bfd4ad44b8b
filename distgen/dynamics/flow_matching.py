"""Conditional flow matching on an affine probability path, sampled by torchdiffeq.

The pieces are small and injected by name: the path (``paths.py``), the time sampler
(``time_samplers.py``), the coupling (``distgen.couplings``, passed to ``loss``), the prediction
type and the ODE solver (``ode.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from distgen.couplings.base import Coupling
from distgen.dynamics import dynamics
from distgen.dynamics.base import Dynamics, Field, masked_mse
from distgen.dynamics.ode import ADAPTIVE, FIXED_STEP, integrate
from distgen.dynamics.paths import make_path
from distgen.dynamics.time_samplers import make_time_sampler
from distgen.types import LossOutput, SampleOutput

PREDICTIONS = ("velocity", "endpoint")


@dynamics.register("flow_matching")
class FlowMatching(Dynamics):
    """Flow matching: regress the velocity (or the endpoint) of an affine path from source to data.

    Default: the CondOT path ``x_t = t x1 + (1 - (1 - sigma_min) t) x0`` with ``t ~ U(0, 1)`` per
    cell, velocity prediction, RK4 on 20 grid points (scDFM). ``loss`` puts the one-step endpoint
    estimate ``x1_hat`` (``x_t + (1 - t) v_hat`` on the CondOT path) in ``extras`` for a
    distribution-level loss.

    Parameters
    ----------
    source
        ``"noise"`` (standard normal, scDFM) or ``"control"`` (the matched control cells).
    path
        ``"condot"`` (linear) or ``"cosine"`` (variance-preserving trigonometric).
    sigma_min
        Width of the CondOT path at ``t = 1`` (0 gives the rectified path).
    prediction
        What the network outputs: ``"velocity"`` or ``"endpoint"`` (``x1``); the loss is the MSE in
        that space and sampling converts endpoints to velocities.
    time_sampler, time_loc, time_scale
        ``"uniform"`` or ``"logit_normal"`` (with the logit's ``time_loc``/``time_scale``).
    solver
        torchdiffeq method: fixed-step ``euler``, ``midpoint``, ``rk4`` or adaptive ``dopri5``,
        ``bosh3``, ``adaptive_heun``.
    steps
        Grid points in [0, 1] for fixed-step solvers (scDFM: 20, i.e. 19 RK4 steps).
    rtol, atol, max_nfe
        Tolerances and evaluation budget of adaptive solvers (budget exceeded: ``SolverBudgetError``).
    clamp_min
        Clamp generated values below this (scDFM clamps at 0); None to disable.
    guidance
        Classifier-free guidance weight ``w``: ``v = v_null + w (v_cond - v_null)``; 1 disables it.
    """

    capabilities: ClassVar[dict[str, Any]] = {"source": ("noise", "control"), "stochastic_sampler": False}
    example_params: ClassVar[dict[str, Any]] = {"steps": 4}

    def __init__(
        self,
        source: str = "noise",
        path: str = "condot",
        sigma_min: float = 0.0,
        prediction: str = "velocity",
        time_sampler: str = "uniform",
        time_loc: float = 0.0,
        time_scale: float = 1.0,
        solver: str = "rk4",
        steps: int = 20,
        rtol: float = 1e-4,
        atol: float = 1e-4,
        max_nfe: int = 2000,
        clamp_min: float | None = None,
        guidance: float = 1.0,
    ) -> None:
        if source not in ("noise", "control"):
            raise ValueError(f"flow_matching: source must be 'noise' or 'control', got {source!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"flow_matching: prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if solver not in FIXED_STEP + ADAPTIVE:
            raise ValueError(f"flow_matching: unknown solver {solver!r}; choose from {FIXED_STEP + ADAPTIVE}")
        if steps < 2:
            raise ValueError(f"flow_matching: steps must be >= 2 grid points, got {steps}")
        if rtol <= 0 or atol <= 0:
            raise ValueError(f"flow_matching: rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        if max_nfe < 1:
            raise ValueError(f"flow_matching: max_nfe must be >= 1, got {max_nfe}")
        self.source = source
        self.path = make_path(path, sigma_min)
        self.sigma_min = sigma_min
        self.prediction = prediction
        self.time_sampler = make_time_sampler(time_sampler, time_loc, time_scale)
        self.solver = solver
        self.steps = steps
        self.rtol = rtol
        self.atol = atol
        self.max_nfe = max_nfe
        self.clamp_min = clamp_min
        self.guidance = float(guidance)

    # ------------------------------------------------------------------ conversions
    def to_velocity(self, out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Network output -> velocity at ``(x_t, t [B, m])``."""
        return out if self.prediction == "velocity" else self.path.x1_to_velocity(x_t, out, t)

    def to_endpoint(self, out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Network output -> data endpoint estimate ``x1_hat`` at ``(x_t, t [B, m])``."""
        return out if self.prediction == "endpoint" else self.path.velocity_to_x1(x_t, out, t)

    # ------------------------------------------------------------------ training
    def loss(self, field: Field, x1: Tensor, mask: Tensor, source: Tensor, coupling: Coupling) -> LossOutput:
        x0 = coupling.pair(source, x1, mask)
        t = self.time_sampler.sample(tuple(x1.shape[:2]), x1.device, x1.dtype)  # one time per cell
        x_t, u = self.path.sample(x0, x1, t)
        out = field(x_t, t)
        target = u if self.prediction == "velocity" else x1
        fm = masked_mse(out, target, mask)
        x1_hat = self.to_endpoint(out, x_t, t)
        return LossOutput(loss=fm, parts={"flow_matching": float(fm.detach())}, extras={"x1_hat": x1_hat, "t": t})

    # ------------------------------------------------------------------ sampling
    def sample(self, field: Field, x0: Tensor, mask: Tensor) -> SampleOutput:
        b, m, _ = x0.shape
        net_evals = 0

        def f(t: Tensor, x: Tensor) -> Tensor:
            nonlocal net_evals
            tt = t.to(x.dtype).expand(b, m)
            out = field(x, tt)
            net_evals += 1
            if self.guidance != 1.0:
                out_null = field(x, tt, uncond=True)
                net_evals += 1
                out = out_null + self.guidance * (out - out_null)
            return self.to_velocity(out, x, tt)

        res = integrate(f, x0, self.solver, self.steps, self.rtol, self.atol, self.max_nfe)
        x1 = res.x1
        if self.clamp_min is not None:
            x1 = x1.clamp_min(self.clamp_min)
        info = {**res.info, "ode_evals": res.nfe, "guidance": self.guidance}
        return SampleOutput(cells=x1, nfe=net_evals, info=info)
