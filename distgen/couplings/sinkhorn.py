"""Entropic (Sinkhorn) minibatch OT coupling via POT, rounded to a pairing by sampling."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from distgen.couplings.base import Coupling
from distgen.couplings.ot_common import reorder_within_sets


def sample_permutation(plan: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation drawn from a transport plan ``[n, n]``, sequentially without replacement.

    Targets are visited in random order; each takes a still-unused source with probability
    proportional to its plan row. As the entropic regularisation goes to 0 the plan becomes a
    permutation and so does the draw.
    """
    n = plan.shape[0]
    perm = np.empty(n, dtype=np.int64)
    free = np.ones(n, dtype=bool)
    for i in rng.permutation(n):
        p = np.where(free, np.clip(plan[i], 0.0, None), 0.0)
        total = p.sum()
        p = p / total if total > 0 and np.isfinite(total) else free / free.sum()
        j = rng.choice(n, p=p)
        perm[i] = j
        free[j] = False
    return perm


class SinkhornCoupling(Coupling):
    """Pairs cells by a draw from the entropic OT plan (POT's stabilised Sinkhorn) of each set.

    The cost is the squared distance divided by its maximum, so ``reg`` is relative to the cost
    scale. Unlike sampling pairs with replacement from the plan, the draw is a permutation: every
    source sample is used exactly once. Stochastic (uses the torch random state).

    Parameters
    ----------
    reg
        Entropic regularisation (relative to the largest cost); small is close to exact OT.
    num_itermax, stop_threshold
        Sinkhorn iteration cap and convergence threshold.
    """

    def __init__(self, reg: float = 0.05, num_itermax: int = 1000, stop_threshold: float = 1e-9) -> None:
        if reg <= 0:
            raise ValueError(f"sinkhorn: reg must be > 0, got {reg}")
        self.reg = reg
        self.num_itermax = num_itermax
        self.stop_threshold = stop_threshold

    def plan(self, cost: np.ndarray) -> np.ndarray:
        """``[n, n]`` entropic OT plan with uniform marginals."""
        import ot  # POT is slow to import; only when used

        n = cost.shape[0]
        w = np.full(n, 1.0 / n)
        scaled = cost / max(float(cost.max()), 1e-12)
        return ot.sinkhorn(w, w, scaled, self.reg, method="sinkhorn_stabilized", numItermax=self.num_itermax, stopThr=self.stop_threshold)

    def pair(self, x0: Tensor, x1: Tensor, mask: Tensor) -> Tensor:
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        return reorder_within_sets(x0, x1, mask, lambda cost: sample_permutation(self.plan(cost), rng))
