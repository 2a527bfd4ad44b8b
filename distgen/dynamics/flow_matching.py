"""Conditional flow matching on an affine probability path, sampled by an ODE solver.

The parts are small registered objects given as nested config nodes: the path (``paths``), the
time sampler (``time_samplers``), the ODE solver (``ode_solvers``); the coupling
(``distgen.couplings``) is passed to ``loss``. A bare name stands for the part with its defaults
(``solver: euler`` is ``solver: {name: euler}``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from distgen.capabilities import DynamicsCapabilities
from distgen.config import Node, as_component
from distgen.couplings.base import Coupling
from distgen.dynamics.base import Dynamics, Field, check_guidance, guided_pair, masked_mse
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
        that space and sampling converts endpoints to velocities, stopping one solver step short of
        ``t = 1`` and landing on the endpoint (see ``sample``: the conversion is singular at ``t = 1``).
    time_sampler
        A ``time_samplers`` node: ``uniform`` or ``logit_normal`` (with ``loc``, ``scale``).
    solver
        An ``ode_solvers`` node: fixed-step ``euler``, ``midpoint``, ``rk4`` (with ``steps``) or
        adaptive ``dopri5``, ``bosh3``, ``adaptive_heun`` (with ``rtol``, ``atol``, ``max_nfe``).
    clamp_min
        Clamp generated values below this (scDFM clamps at 0); None to disable.
    guidance
        Classifier-free guidance weight ``w``: ``v = v_null + w (v_cond - v_null)``; 1 disables it, ``> 1``
        strengthens the condition; 0 (the unconditional model: one prediction for every perturbation)
        and below are refused (``distgen.dynamics.base.check_guidance``).
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
        self.guidance = check_guidance("flow_matching", guidance)
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
        return LossOutput(loss=fm, parts={"flow_matching": fm.detach()}, extras={"x1_hat": x1_hat, "t": t})

    # ------------------------------------------------------------------ sampling
    def sample(self, field: Field, x0: Tensor, mask: Tensor) -> SampleOutput:
        """Integrate ``dx/dt = u(x, t)`` from ``x0`` at ``t = 0`` to the data end ``t = 1``.

        With ``prediction="endpoint"`` the solver stops short of ``t = 1`` (``ODESolver.solve_short``:
        a fixed-step solver at its last grid point ``1 - 1/steps``, an adaptive one at ``1 - 1e-3``)
        and the last step holds the network's endpoint fixed (``AffinePath.jump``):

            x(1) = a(1) x1_hat + s(1) (x - a(t) x1_hat) / s(t),   = x1_hat where s(1) = 0

        Why: the velocity of an endpoint is ``u = (s' x + (s a' - s' a) x1_hat) / s``; on a path with
        ``s(1) = 0`` (``condot`` with ``sigma_min = 0``: ``u = (x1_hat - x) / (1 - t)``; ``cosine``) this
        is ``0/0`` at ``t = 1``. The exact field has a limit there, ``a'(1) x + s'(1) E[x0 | x_1 = x]``,
        but an endpoint network does not output ``E[x0 | x_1]``: the quotient would be the network's
        endpoint error divided by ``s -> 0`` (a solver stage at ``t = 1``, as rk4's last, moved cells
        ~100x past the data). Near ``t = 1`` the field also relaxes ``x`` toward ``x1_hat`` at rate
        ``1/(1 - t)``; stopping one grid step short keeps an explicit step stable. On ``condot`` the
        last step is the Euler step (euler's result is unchanged); it lands on ``x1_hat``, inside the
        data when the network's estimates are. Network calls: the solver's up to ``t_stop``, plus one
        (rk4 with ``steps`` ``N``: ``4 (N - 1) + 1``).
        """
        b, m, _ = x0.shape
        net_evals = 0

        def net(x: Tensor, tt: Tensor) -> Tensor:
            nonlocal net_evals
            if self.guidance != 1.0:
                out, out_null = guided_pair(field, x, tt)  # one batched call where the field offers it
                net_evals += 2
                return out_null + self.guidance * (out - out_null)
            net_evals += 1
            return field(x, tt)

        def f(t: Tensor, x: Tensor) -> Tensor:
            tt = t.to(x.dtype).expand(b, m)
            return self.to_velocity(net(x, tt), x, tt)

        if self.prediction == "endpoint":
            res, t_stop = self.solver.solve_short(f, x0, 0.0, 1.0)
            t_s = x0.new_full((b, m), t_stop)
            x1 = self.path.jump(res.x1, net(res.x1, t_s), t_s, torch.ones_like(t_s))
            info = {**res.info, "t_stop": t_stop, "last_step": "endpoint held fixed"}
        else:
            res = self.solver.solve(f, x0, 0.0, 1.0)
            x1, info = res.x1, dict(res.info)
        if self.clamp_min is not None:
            x1 = x1.clamp_min(self.clamp_min)
        info = {**info, "ode_evals": res.nfe, "guidance": self.guidance}
        return SampleOutput(cells=x1, nfe=net_evals, info=info)
