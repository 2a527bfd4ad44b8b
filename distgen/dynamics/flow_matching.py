"""Conditional flow matching on an affine probability path, sampled by an ODE solver.

The parts are small registered objects given as nested config nodes: the path (``paths``), the
time sampler (``time_samplers``), the ODE solver (``ode_solvers``); the coupling
(``distgen.couplings``) is passed to ``loss``. A bare name stands for the part with its defaults
(``solver: euler`` is ``solver: {name: euler}``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import Tensor

from distgen.capabilities import DynamicsCapabilities
from distgen.config import Node, as_component
from distgen.couplings.base import Coupling
from distgen.dynamics.base import Dynamics, Field, guided_pair, masked_mse
from distgen.dynamics.ode_solvers import ODESolver
from distgen.dynamics.paths import AffinePath
from distgen.dynamics.time_samplers import TimeSampler
from distgen.types import LossOutput, SampleOutput

PREDICTIONS = ("velocity", "endpoint")


class FlowMatching(Dynamics):
    """Flow matching: regress the velocity (or the endpoint) of an affine path from source to data.

    Default: the CondOT path ``x_t = t x1 + (1 - t) x0`` with ``t ~ U(0, 1)`` per cell, velocity
    prediction, 20 RK4 steps. ``loss`` puts the one-step endpoint estimate ``x1_hat``
    (``x_t + (1 - t) v_hat`` on the CondOT path) in ``extras`` for a distribution-level loss.

    Parameters
    ----------
    source
        ``"noise"`` (standard normal, scDFM) or ``"control"`` (the matched control cells).
    path
        A ``paths`` node: ``condot`` (linear, with ``sigma_min``) or ``cosine`` (variance preserving).
    prediction
        What the network outputs: ``"velocity"`` or ``"endpoint"`` (``x1``); the loss is the MSE in
        that space and sampling converts endpoints to velocities.
    time_sampler
        A ``time_samplers`` node: ``uniform`` or ``logit_normal`` (with ``loc``, ``scale``).
    solver
        An ``ode_solvers`` node: fixed-step ``euler``, ``midpoint``, ``rk4`` (with ``steps``) or
        adaptive ``dopri5``, ``bosh3``, ``adaptive_heun`` (with ``rtol``, ``atol``, ``max_nfe``).
    clamp_min
        Clamp generated values below this (scDFM clamps at 0); None to disable.
    guidance
        Classifier-free guidance weight ``w``: ``v = v_null + w (v_cond - v_null)``; 1 disables it.
    """

    capabilities = DynamicsCapabilities(sources=("noise", "control"), signed_prediction=None, guidance=None)
    example_params: ClassVar[dict[str, Any]] = {"solver": {"name": "rk4", "steps": 3}}
    moved_params: ClassVar[dict[str, str]] = {
        "steps": "set the solver's steps, e.g. solver: {name: rk4, steps: 19} or model.dynamics.solver.steps=19 "
        "(it now counts solver steps: the old steps counted grid points, i.e. steps - 1 solver steps)",
        "rtol": "set it on an adaptive solver, e.g. solver: {name: dopri5, rtol: 1e-4}",
        "atol": "set it on an adaptive solver, e.g. solver: {name: dopri5, atol: 1e-4}",
        "max_nfe": "set it on an adaptive solver, e.g. solver: {name: dopri5, max_nfe: 2000}",
        "sigma_min": "set it on the path, e.g. path: {name: condot, sigma_min: 0.1}",
        "time_loc": "set it on the time sampler, e.g. time_sampler: {name: logit_normal, loc: 0.0}",
        "time_scale": "set it on the time sampler, e.g. time_sampler: {name: logit_normal, scale: 1.0}",
    }

    def __init__(
        self,
        source: Literal["noise", "control"] = "noise",
        path: AffinePath | Node = "condot",
        prediction: Literal["velocity", "endpoint"] = "velocity",
        time_sampler: TimeSampler | Node = "uniform",
        solver: ODESolver | Node = "rk4",
        clamp_min: float | None = None,
        guidance: float = 1.0,
    ) -> None:
        if source not in ("noise", "control"):
            raise ValueError(f"flow_matching: source must be 'noise' or 'control', got {source!r}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"flow_matching: prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.source = source
        self.path: AffinePath = as_component("paths", path)
        self.prediction = prediction
        self.time_sampler: TimeSampler = as_component("time_samplers", time_sampler)
        self.solver: ODESolver = as_component("ode_solvers", solver)
        self.clamp_min = clamp_min
        self.guidance = float(guidance)
        self.capabilities = type(self).capabilities.replace(signed_prediction=prediction == "velocity", guidance=self.guidance != 1.0)

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
            if self.guidance != 1.0:
                out, out_null = guided_pair(field, x, tt)  # one batched call where the field offers it
                net_evals += 2
                out = out_null + self.guidance * (out - out_null)
            else:
                out = field(x, tt)
                net_evals += 1
            return self.to_velocity(out, x, tt)

        res = self.solver.solve(f, x0, 0.0, 1.0)
        x1 = res.x1
        if self.clamp_min is not None:
            x1 = x1.clamp_min(self.clamp_min)
        info = {**res.info, "ode_evals": res.nfe, "guidance": self.guidance}
        return SampleOutput(cells=x1, nfe=net_evals, info=info)
