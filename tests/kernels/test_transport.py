"""The entropic OT value and the Sinkhorn divergence against a plain numpy solver; the symmetric (debiasing) terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from distgen.kernels.transport import entropic_ot, sinkhorn_divergence


def numpy_entropic_ot(x: np.ndarray, y: np.ndarray, eps: float, iters: int = 5000) -> float:
    """Dual value <a, f> + <b, g> of entropic OT (squared Euclidean cost, uniform weights): plain alternating
    log-domain Sinkhorn to machine precision, then the symmetric evaluation of the potentials."""
    c = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    la, lb = np.full(len(x), -np.log(len(x))), np.full(len(y), -np.log(len(y)))
    f, g = np.zeros(len(x)), np.zeros(len(y))
    for _ in range(iters):
        f_new = -eps * logsumexp(lb[None, :] + (g[None, :] - c) / eps, axis=1)
        g_new = -eps * logsumexp(la[None, :] + (f_new[None, :] - c.T) / eps, axis=1)
        done = max(np.abs(f_new - f).max(), np.abs(g_new - g).max()) < 1e-13 * eps
        f, g = f_new, g_new
        if done:
            break
    return float(f.mean() + g.mean())


def sets(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (17, 4)), rng.normal(0.7, 1.3, (23, 4))


def test_entropic_ot_equals_a_plain_numpy_solver_for_cross_and_self_terms():
    x, y = sets()
    eps = 2.0  # alternating updates (the reference) converge fast at this scale
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert float(entropic_ot(tx, ty, eps)) == pytest.approx(numpy_entropic_ot(x, y, eps), rel=1e-6)
    assert float(entropic_ot(tx, tx, eps)) == pytest.approx(numpy_entropic_ot(x, x, eps), rel=1e-6)  # one potential


def test_the_symmetric_path_equals_the_general_one():
    x, _ = sets(1)
    tx = torch.from_numpy(x)
    # the same set as another object takes the two-potential iteration
    assert float(entropic_ot(tx, tx, 0.3)) == pytest.approx(float(entropic_ot(tx, tx.clone(), 0.3)), rel=1e-12)


def test_divergence_debiased_and_differentiable():
    x, y = sets(2)
    tx, ty = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(y)
    s = sinkhorn_divergence(tx, ty, reg=2.0)
    want = numpy_entropic_ot(x, y, 2.0) - 0.5 * (numpy_entropic_ot(x, x, 2.0) + numpy_entropic_ot(y, y, 2.0))
    assert s.item() == pytest.approx(want, rel=1e-5)
    s.backward()
    assert tx.grad is not None and bool(torch.isfinite(tx.grad).all()) and float(tx.grad.abs().sum()) > 0
    assert abs(float(sinkhorn_divergence(ty, ty.clone(), reg=2.0))) < 1e-9  # a set against itself


def _once_here() -> None:
    import warnings

    warnings.warn("said once here", UserWarning, stacklevel=1)


def test_wasserstein2_keeps_pythons_once_per_place_warning_record():
    """A ``warnings.catch_warnings`` around each ``ot.emd2`` reset the record: a warning shown once per place was shown
    again after every W2 (the evaluation scores W2 per perturbation)."""
    import warnings

    from distgen.kernels.transport import wasserstein2

    x, y = (torch.tensor(v, dtype=torch.float64) for v in sets())
    wasserstein2(x, y)  # POT imported (an import may set filters: once, not per call)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        _once_here()
        w = wasserstein2(x, y)
        _once_here()
    assert sum("said once here" in str(s.message) for s in seen) == 1
    import ot

    exact = ot.emd2(np.full(17, 1 / 17), np.full(23, 1 / 23), ((x[:, None] - y[None]) ** 2).sum(-1).numpy())
    assert float(w) == pytest.approx(float(np.sqrt(exact)), rel=1e-12)


def test_wasserstein2_refuses_a_solver_stopped_before_optimality():
    from distgen.kernels.transport import wasserstein2

    x, y = (torch.tensor(v, dtype=torch.float64) for v in sets())
    with pytest.warns(UserWarning, match="numItermax"), pytest.raises(RuntimeError, match="num_itermax=3 before optimality"):
        wasserstein2(x, y, num_itermax=3)
