"""Exact minibatch optimal-transport coupling (POT's network simplex, ``ot.emd``)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from distgen.couplings.base import Coupling
from distgen.couplings.ot_common import reorder_within_sets


class ExactOTCoupling(Coupling):
    """Pairs source and target cells of each set by the exact OT plan for the squared distance.

    With uniform weights on ``n`` source and ``n`` target cells the optimal plan is a permutation
    (a vertex of the Birkhoff polytope), so the coupling is a reordering of the source samples
    (OT-CFM, Tong et al. 2024). Cost ``O(n^3)`` per set; fine for sets of tens to hundreds.

    Parameters
    ----------
    num_itermax
        Iteration cap of the network simplex (POT's ``numItermax``); raise it for sets in the thousands.
    """

    def __init__(self, num_itermax: int = 100_000) -> None:
        if num_itermax < 1:
            raise ValueError(f"exact_ot: num_itermax must be >= 1, got {num_itermax}")
        self.num_itermax = num_itermax

    def _assign(self, cost: np.ndarray) -> np.ndarray:
        import ot  # POT is slow to import; only when used

        n = cost.shape[0]
        w = np.full(n, 1.0 / n)
        plan = ot.emd(w, w, cost, numItermax=self.num_itermax)
        return plan.argmax(axis=1)

    def pair(self, x0: Tensor, x1: Tensor, mask: Tensor) -> Tensor:
        return reorder_within_sets(x0, x1, mask, self._assign)
