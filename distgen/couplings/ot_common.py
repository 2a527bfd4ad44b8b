"""Shared helpers of the optimal-transport couplings: per-set cost matrices and reordering."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def sq_euclidean_cost(x1: Tensor, x0: Tensor) -> np.ndarray:
    """``[n, G], [n, G] -> [n, n]`` float64 squared distances ``|x1_i - x0_j|^2`` (no gradient)."""
    with torch.no_grad():
        a, b = x1.detach().double().cpu(), x0.detach().double().cpu()
        return torch.cdist(a, b).pow(2).numpy()


def reorder_within_sets(x0: Tensor, x1: Tensor, mask: Tensor, assign: Callable[[np.ndarray], np.ndarray]) -> Tensor:
    """``x0`` permuted within each set so ``out[b, i]`` pairs with ``x1[b, i]`` (real cells only).

    ``assign(cost [n, n]) -> perm [n]`` gives, for target ``i``, the index of its source sample.
    Padded positions (``mask`` False) are left in place.
    """
    out = x0.clone()
    for b in range(x0.shape[0]):
        idx = torch.nonzero(mask[b]).flatten()
        if idx.numel() < 2:
            continue
        perm = assign(sq_euclidean_cost(x1[b, idx], x0[b, idx]))
        if sorted(perm.tolist()) != list(range(idx.numel())):
            raise RuntimeError(f"coupling produced an invalid assignment for set {b}: {perm.tolist()}")
        out[b, idx] = x0[b, idx[torch.as_tensor(perm, dtype=torch.long, device=idx.device)]]
    return out
