"""ODE solvers: integrate ``dx/dt = f(t, x)`` over ``[t0, t1]`` with torchdiffeq, counting evaluations.

A solver is a small object holding its own settings: a fixed-step solver its number of ``steps``
on a uniform grid (``grid`` is the one place to change for another time grid), an adaptive
solver its tolerances and a hard budget of function evaluations, so tolerances that cannot be met
end in a ``SolverBudgetError`` that says what was asked and what was spent, instead of a run that
never finishes. Flow matching samples with one; so does diffusion's probability-flow ODE sampler.

Every solver evaluates ``f`` only at times in ``[t0, t1]``: fixed-step stages lie inside their step,
and adaptive solvers land their last step exactly on ``t1`` (torchdiffeq's ``step_t``; by default
torchdiffeq steps past ``t1`` and interpolates back). ``solve_short`` integrates toward ``t1``
without evaluating ``f`` there, for a field that is singular at ``t1`` (flow matching's endpoint
prediction at the data end): the caller takes the last step.

A registered kind (``ode_solvers``). Adding a torchdiffeq method is a subclass naming it and one
line in the table below; a plugin declares an entry point in ``distgen.ode_solvers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchdiffeq import odeint

from distgen import wording
from distgen.capabilities import SolverCapabilities
from distgen.registry import Registry

VectorField = Callable[[Tensor, Tensor], Tensor]


class SolverBudgetError(RuntimeError):
    """An adaptive solver exceeded its evaluation budget or its step size underflowed."""


class _BudgetExceeded(Exception):
    pass


@dataclass
class ODEResult:
    """The state at ``t1``, the number of function evaluations and solver details."""

    x1: Tensor
    nfe: int
    info: dict[str, Any] = field(default_factory=dict)


class ODESolver(ABC):
    """``solve(f, x0, t0, t1) -> ODEResult``: the state at ``t1`` of ``dx/dt = f(t, x)``, ``x(t0) = x0``.

    ``f(t scalar tensor, x like x0) -> like x0``. ``t1`` may be below ``t0`` (integration backwards).
    """

    capabilities: SolverCapabilities = SolverCapabilities()

    #: ``solve_short`` stops this fraction of ``[t0, t1]`` before ``t1`` (a fixed-step solver: one step).
    short_gap: ClassVar[float] = 1e-3

    @abstractmethod
    def solve(self, f: VectorField, x0: Tensor, t0: float = 0.0, t1: float = 1.0) -> ODEResult:
        """Integrate from ``t0`` to ``t1``."""

    def solve_short(self, f: VectorField, x0: Tensor, t0: float = 0.0, t1: float = 1.0) -> tuple[ODEResult, float]:
        """``(result, t_stop)``: the state at ``t_stop``, short of ``t1``, without ever evaluating ``f`` at ``t1``.

        For a field singular at ``t1``; the caller takes the step from ``t_stop`` to ``t1`` itself.
        Here ``t_stop = t1 - short_gap (t1 - t0)``; a fixed-step solver stops at its last grid point
        before ``t1`` instead (its grid unchanged: one step fewer).
        """
        t_stop = t1 - self.short_gap * (t1 - t0)
        return self.solve(f, x0, t0, t_stop), t_stop


class FixedStepSolver(ODESolver):
    """A torchdiffeq fixed-step method on a uniform grid of ``steps`` steps (``steps + 1`` time points).

    Parameters
    ----------
    steps
        Solver steps between ``t0`` and ``t1`` (network evaluations: ``steps`` x the method's stages).
    """

    method: ClassVar[str] = ""

    def __init__(self, steps: int = 20) -> None:
        if steps < 1:
            raise ValueError(f"{self.method} solver: steps must be >= 1, got {steps}")
        self.steps = int(steps)

    def grid(self, t0: float, t1: float, like: Tensor) -> Tensor:
        """``[steps + 1]`` times from ``t0`` to ``t1`` (uniform)."""
        return torch.linspace(t0, t1, self.steps + 1, device=like.device, dtype=like.dtype)

    def solve(self, f: VectorField, x0: Tensor, t0: float = 0.0, t1: float = 1.0) -> ODEResult:
        return self._on_grid(f, x0, self.grid(t0, t1, x0))

    def solve_short(self, f: VectorField, x0: Tensor, t0: float = 0.0, t1: float = 1.0) -> tuple[ODEResult, float]:
        """The first ``steps - 1`` steps of ``solve``'s grid: ``t_stop`` is its last point before ``t1``."""
        grid = self.grid(t0, t1, x0)[:-1]
        return self._on_grid(f, x0, grid), float(grid[-1])

    def _on_grid(self, f: VectorField, x0: Tensor, grid: Tensor) -> ODEResult:
        nfe = 0

        def counted(t: Tensor, x: Tensor) -> Tensor:
            nonlocal nfe
            nfe += 1
            return f(t, x)

        x1 = odeint(counted, x0, grid, method=self.method)[-1] if len(grid) > 1 else x0
        return ODEResult(x1, nfe, {"solver": self.method, "steps": self.steps})


class Euler(FixedStepSolver):
    """Explicit Euler (one evaluation per step)."""

    method = "euler"


class Midpoint(FixedStepSolver):
    """Explicit midpoint rule (two evaluations per step)."""

    method = "midpoint"


class RK4(FixedStepSolver):
    """Classical fourth-order Runge-Kutta, torchdiffeq's 3/8 rule (four evaluations per step; scDFM)."""

    method = "rk4"


class AdaptiveSolver(ODESolver):
    """A torchdiffeq adaptive method with error control and a hard evaluation budget.

    Parameters
    ----------
    rtol, atol
        Relative and absolute tolerances.
    max_nfe
        Budget of function evaluations; exceeding it raises ``SolverBudgetError``.
    """

    method: ClassVar[str] = ""
    capabilities = SolverCapabilities(adaptive=True)

    def __init__(self, rtol: float = 1e-4, atol: float = 1e-4, max_nfe: int = 2000) -> None:
        if rtol <= 0 or atol <= 0:
            raise ValueError(f"{self.method} solver: rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        if max_nfe < 1:
            raise ValueError(f"{self.method} solver: max_nfe must be >= 1, got {max_nfe}")
        self.rtol, self.atol, self.max_nfe = float(rtol), float(atol), int(max_nfe)

    def solve(self, f: VectorField, x0: Tensor, t0: float = 0.0, t1: float = 1.0) -> ODEResult:
        nfe = 0

        lo, hi = min(t0, t1), max(t0, t1)

        def counted(t: Tensor, x: Tensor) -> Tensor:
            nonlocal nfe
            nfe += 1
            if nfe > self.max_nfe:
                raise _BudgetExceeded
            return f(t.clamp(lo, hi), x)  # only torchdiffeq's first-step-size probe can fall outside

        grid = torch.tensor([t0, t1], device=x0.device, dtype=x0.dtype)
        what = f"adaptive solver {self.method!r} with rtol={self.rtol}, atol={self.atol}"
        hint = "loosen rtol/atol, raise max_nfe, or use a fixed-step solver (e.g. solver: {name: rk4, steps: 20})"
        try:  # step_t: the last step lands on t1 instead of passing it (f is never evaluated beyond t1)
            x1 = odeint(counted, x0, grid, method=self.method, rtol=self.rtol, atol=self.atol, options={"step_t": grid[1:]})[-1]
        except _BudgetExceeded:
            raise SolverBudgetError(f"{what} did not reach t={t1} within max_nfe={self.max_nfe} function evaluations; {hint}") from None
        except AssertionError as exc:  # torchdiffeq signals step underflow / step limits with assertions
            raise SolverBudgetError(f"{what} failed after {wording.counted(nfe, 'evaluation')} ({exc}); {hint}") from None
        if not torch.isfinite(x1).all():
            raise SolverBudgetError(f"solver {self.method!r} produced non-finite values after {wording.counted(nfe, 'evaluation')}; {hint}")
        return ODEResult(x1, nfe, {"solver": self.method, "rtol": self.rtol, "atol": self.atol})


class Dopri5(AdaptiveSolver):
    """Dormand-Prince 5(4), adaptive."""

    method = "dopri5"


class Bosh3(AdaptiveSolver):
    """Bogacki-Shampine 3(2), adaptive."""

    method = "bosh3"


class AdaptiveHeun(AdaptiveSolver):
    """Heun-Euler 2(1), adaptive."""

    method = "adaptive_heun"


#: The ODE-solver registry (entry points ``distgen.ode_solvers``).
ode_solvers: Registry[ODESolver] = Registry(
    "ode_solvers",
    ODESolver,
    {
        "adaptive_heun": "distgen.dynamics.ode_solvers:AdaptiveHeun",
        "bosh3": "distgen.dynamics.ode_solvers:Bosh3",
        "dopri5": "distgen.dynamics.ode_solvers:Dopri5",
        "euler": "distgen.dynamics.ode_solvers:Euler",
        "midpoint": "distgen.dynamics.ode_solvers:Midpoint",
        "rk4": "distgen.dynamics.ode_solvers:RK4",
    },
)

__all__ = [
    "AdaptiveSolver",
    "FixedStepSolver",
    "ODEResult",
    "ODESolver",
    "SolverBudgetError",
    "ode_solvers",
]
