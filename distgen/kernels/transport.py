"""Optimal-transport distances through POT: exact W2 (network simplex) and the Sinkhorn divergence.

POT is imported lazily. Inputs are single sets ``x [n, D]``, ``y [k, D]`` (uniform weights), torch in,
torch out (POT's torch backend keeps autograd for the Sinkhorn divergence and for W2 through the
optimal plan). ``num_itermax`` of the exact solver defaults to ``max(1e6, 50 n k)``: POT's default
(1e5) stops early for n in the thousands and then returns a non-optimal (too large) cost, which we
turn into an error rather than a silent wrong number.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch
from torch import Tensor

from distgen.kernels.pairwise import sq_dists


def _ot() -> ModuleType:
    """``import ot`` without letting POT import JAX / TensorFlow / CuPy backends we never use.

    POT probes every installed array library at import (seconds each); we only hand it torch
    tensors. A user who sets the ``POT_BACKEND_DISABLE_*`` variables keeps their choice.
    """
    for key in ("POT_BACKEND_DISABLE_JAX", "POT_BACKEND_DISABLE_TENSORFLOW", "POT_BACKEND_DISABLE_CUPY"):
        os.environ.setdefault(key, "1")
    import ot

    return ot


def _check(x: Tensor, y: Tensor) -> None:
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be sets [n, D] and [k, D] with the same D, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError("optimal transport needs at least one cell on each side")


def wasserstein2(x: Tensor, y: Tensor, num_itermax: int | None = None) -> Tensor:
    """Exact 2-Wasserstein distance ``W2 = sqrt(min_P <P, |x - y|^2>)`` between uniform empirical measures."""
    ot = _ot()
    _check(x, y)
    n, k = x.shape[0], y.shape[0]
    cost = sq_dists(x, y)
    a = torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    b = torch.full((k,), 1.0 / k, dtype=x.dtype, device=x.device)
    itermax = int(num_itermax or max(1_000_000, 50 * n * k))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w2sq = ot.emd2(a, b, cost, numItermax=itermax)
    for w in caught:
        if "numItermax" in str(w.message) or "not converge" in str(w.message).lower():
            raise RuntimeError(f"wasserstein2: the exact OT solver stopped at num_itermax={itermax} before optimality "
                               f"(n={n}, k={k}); raise num_itermax")
    return torch.as_tensor(w2sq).clamp_min(0).sqrt()


def sinkhorn_cost(x: Tensor, y: Tensor, reg: float, num_itermax: int = 2000) -> Tensor:
    """Entropic OT cost ``<P_eps, C>`` (squared Euclidean cost, log-domain Sinkhorn)."""
    ot = _ot()
    n, k = x.shape[0], y.shape[0]
    a = torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    b = torch.full((k,), 1.0 / k, dtype=x.dtype, device=x.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is checked by the caller's tolerance choice
        return torch.as_tensor(ot.sinkhorn2(a, b, sq_dists(x, y), reg, method="sinkhorn_log", numItermax=num_itermax, stopThr=1e-7))


def sinkhorn_divergence(x: Tensor, y: Tensor, epsilon: float = 0.05, reg: float | None = None, num_itermax: int = 2000) -> Tensor:
    """Debiased Sinkhorn divergence ``S = OT_e(x, y) - (OT_e(x, x) + OT_e(y, y)) / 2`` (Genevay et al. 2018).

    ``reg`` is the absolute entropic regularisation; by default ``epsilon x`` the mean squared
    distance between ``x`` and ``y`` (scale-free). The same ``reg`` is used for all three terms.
    """
    _check(x, y)
    if reg is None:
        with torch.no_grad():
            reg = float(epsilon * sq_dists(x, y).mean().clamp_min(1e-12))
    if reg <= 0:
        raise ValueError(f"sinkhorn_divergence: reg must be > 0, got {reg}")
    return sinkhorn_cost(x, y, reg, num_itermax) - 0.5 * (sinkhorn_cost(x, x, reg, num_itermax) + sinkhorn_cost(y, y, reg, num_itermax))
