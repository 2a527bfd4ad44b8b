"""ODE integration from ``t = 0`` to ``t = 1`` with torchdiffeq, counting function evaluations.

Fixed-step solvers run on a uniform grid; adaptive solvers run under a hard budget of function
evaluations, so tolerances that cannot be met end in a ``SolverBudgetError`` that says what was
asked and what was spent, instead of a run that never finishes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torchdiffeq import odeint

FIXED_STEP = ("euler", "midpoint", "rk4")
ADAPTIVE = ("dopri5", "bosh3", "adaptive_heun")


class SolverBudgetError(RuntimeError):
    """An adaptive solver exceeded its evaluation budget or its step size underflowed."""


class _BudgetExceeded(Exception):
    pass


@dataclass
class ODEResult:
    """The state at ``t = 1``, the number of function evaluations and solver details."""

    x1: Tensor
    nfe: int
    info: dict[str, Any] = field(default_factory=dict)


def integrate(
    f: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    solver: str = "rk4",
    steps: int = 20,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    max_nfe: int = 2000,
) -> ODEResult:
    """Integrate ``dx/dt = f(t, x)`` from ``x0`` at ``t = 0`` to ``t = 1``.

    Parameters
    ----------
    f
        Vector field ``f(t scalar tensor, x like x0) -> like x0``.
    solver
        ``euler``, ``midpoint``, ``rk4`` (on ``steps`` grid points) or adaptive ``dopri5``,
        ``bosh3``, ``adaptive_heun`` (with ``rtol``/``atol``).
    max_nfe
        Budget of evaluations for adaptive solvers; exceeding it raises ``SolverBudgetError``.
    """
    nfe = 0

    def counted(t: Tensor, x: Tensor) -> Tensor:
        nonlocal nfe
        nfe += 1
        if solver in ADAPTIVE and nfe > max_nfe:
            raise _BudgetExceeded
        return f(t, x)

    if solver in FIXED_STEP:
        grid = torch.linspace(0.0, 1.0, steps, device=x0.device, dtype=x0.dtype)
        x1 = odeint(counted, x0, grid, method=solver)[-1]
        return ODEResult(x1, nfe, {"solver": solver, "steps": steps - 1})
    if solver not in ADAPTIVE:
        raise ValueError(f"unknown ODE solver {solver!r}; choose from {FIXED_STEP + ADAPTIVE}")
    grid = torch.tensor([0.0, 1.0], device=x0.device, dtype=x0.dtype)
    hint = "loosen rtol/atol, raise max_nfe, or use a fixed-step solver (e.g. solver=rk4)"
    try:
        x1 = odeint(counted, x0, grid, method=solver, rtol=rtol, atol=atol)[-1]
    except _BudgetExceeded:
        raise SolverBudgetError(
            f"adaptive solver {solver!r} with rtol={rtol}, atol={atol} did not reach t=1 within max_nfe={max_nfe} "
            f"function evaluations; {hint}"
        ) from None
    except AssertionError as exc:  # torchdiffeq signals step underflow / step limits with assertions
        raise SolverBudgetError(
            f"adaptive solver {solver!r} with rtol={rtol}, atol={atol} failed after {nfe} evaluations ({exc}); {hint}"
        ) from None
    if not torch.isfinite(x1).all():
        raise SolverBudgetError(f"solver {solver!r} produced non-finite values after {nfe} evaluations; {hint}")
    return ODEResult(x1, nfe, {"solver": solver, "rtol": rtol, "atol": atol})
