"""Pairwise (squared) Euclidean distances, their sums over all pairs, and the median heuristic, batched over sets."""

from __future__ import annotations

import torch
from torch import Tensor


def sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances ``[..., n, k]`` between rows of ``x [..., n, D]`` and ``y [..., k, D]``.

    Uses the expansion ``|x|^2 + |y|^2 - 2 x.y`` (one matmul) and clamps tiny negatives from
    round-off to zero. When ``y is x`` the squared norms are the diagonal of that matmul, so every
    point's distance to itself is exactly 0 (norms computed apart from the matmul round differently,
    and in float32 that leaves ``sqrt`` of the difference, ~1e-2 for 2,000 genes, on the diagonal).
    """
    g = x @ y.transpose(-1, -2)
    if y is x:
        n = torch.diagonal(g, dim1=-2, dim2=-1)
        return sq_dists_from_gram(g, n, n)
    return sq_dists_from_gram(g, sq_norms(x), sq_norms(y))


def sq_norms(x: Tensor) -> Tensor:
    """``[..., n]`` squared Euclidean norms of the rows of ``x [..., n, D]``."""
    return (x * x).sum(-1)


def sq_dists_from_gram(g: Tensor, x_sq: Tensor, y_sq: Tensor) -> Tensor:
    """``|x|^2 + |y|^2 - 2 x.y`` from ``g [..., n, k]`` and the squared norms ``[..., n]``, ``[..., k]``; >= 0."""
    return (x_sq[..., :, None] + y_sq[..., None, :] - 2.0 * g).clamp_min(0.0)


def safe_sqrt(d: Tensor, eps: float = 1e-12) -> Tensor:
    """``sqrt(d)`` with a zero (not NaN/inf) gradient where ``d <= eps``: distances from squared distances."""
    pos = d > eps
    return torch.where(pos, torch.sqrt(torch.where(pos, d, torch.ones_like(d))), torch.zeros_like(d))


def dists(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distances ``[..., n, k]``; autograd-safe at coincident points."""
    return safe_sqrt(sq_dists(x, y))


def euclidean_sum(x: Tensor, y: Tensor | None = None, block: int = 256, *, x_sq: Tensor | None = None,
                  y_sq: Tensor | None = None) -> Tensor:
    """Sum of the Euclidean distances between every row of ``x [n, D]`` and every row of ``y [m, D]`` (no autograd).

    ``y`` None: over all ``n^2`` ordered pairs of rows of ``x``, the zero diagonal included (each
    distance of ``i != j`` counted twice, as ``cdist(x, x).sum()``), from the blocks on and above the
    diagonal only: about half the products. Blocks of ``block`` rows go through one buffer
    (``|y|^2 - 2 x.y`` by ``addmm``, plus ``|x|^2``, clamped, ``sqrt``, summed in place), so memory is
    ``block x m`` whatever ``n``; the self-distances are set to exactly 0. Accumulates in ``x``'s dtype:
    pass float64 where it matters (as every expansion of ``|x - y|^2``, nearly identical rows keep a
    round-off of order ``sqrt(eps) |x|``: measured 1.5e-7 |x| in float64, 3e-3 |x| in float32, at 2,000 columns).

    ``x_sq``, ``y_sq``: ``sq_norms(x)``, ``sq_norms(y)`` when the caller has them (a set summed against several others,
    and against itself: an E-distance's control, each perturbation's cells); the same numbers, not computed again. Norms of
    another shape, dtype or device than their matrix are refused (``ValueError``).
    """
    if x.dim() != 2 or (y is not None and (y.dim() != 2 or y.shape[1] != x.shape[1])):
        raise ValueError(f"euclidean_sum needs [n, D] and [m, D] matrices, got {tuple(x.shape)} and "
                         f"{None if y is None else tuple(y.shape)}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    for given, of in ((x_sq, x), (y_sq, y)):
        if given is not None and (of is None or given.shape != of.shape[:1]):
            raise ValueError(f"euclidean_sum: squared norms of shape {tuple(given.shape)} given for "
                             f"{'no matrix' if of is None else f'a matrix of {of.shape[0]} rows'}")
        if given is not None and of is not None and (given.dtype != of.dtype or given.device != of.device):
            # refused, not summed as given: norms in a lower precision would move the sum without a word, and another dtype
            # or device of y_sq would raise addmm's bare RuntimeError
            raise ValueError(f"euclidean_sum: squared norms ({given.dtype} on {given.device}) given for a matrix of "
                             f"{of.dtype} on {of.device}: pass sq_norms of that matrix as it is (the same dtype and device)")
    with torch.no_grad():
        x_sq = sq_norms(x) if x_sq is None else x_sq
        if y is None:  # blocks (i, j >= i) of x against itself; those off the diagonal stand for (j, i) as well
            total = x.new_zeros(())
            buf = x.new_empty(min(block, x.shape[0]) ** 2)
            for i in range(0, x.shape[0], block):
                for j in range(i, x.shape[0], block):
                    d = _block_dists(x[i : i + block], x_sq[i : i + block], x[j : j + block], x_sq[j : j + block], buf)
                    if i == j:
                        total += d.fill_diagonal_(0.0).sum()
                    else:
                        total += 2.0 * d.sum()
            return total
        y_sq = sq_norms(y) if y_sq is None else y_sq
        buf = x.new_empty(min(block, x.shape[0]) * y.shape[0])
        total = x.new_zeros(())
        for i in range(0, x.shape[0], block):
            total += _block_dists(x[i : i + block], x_sq[i : i + block], y, y_sq, buf).sum()
        return total


def _block_dists(x: Tensor, x_sq: Tensor, y: Tensor, y_sq: Tensor, buf: Tensor) -> Tensor:
    """``[n, m]`` Euclidean distances of the rows of ``x`` and ``y`` (squared norms given), written into ``buf``."""
    out = buf[: x.shape[0] * y.shape[0]].view(x.shape[0], y.shape[0])
    torch.addmm(y_sq, x, y.T, alpha=-2.0, out=out)
    return out.add_(x_sq[:, None]).clamp_min_(0.0).sqrt_()


def frozen_scales(bound: Tensor | None, fixed: tuple[float, ...] | None, g: Tensor, what: str) -> Tensor:
    """``[..., S]`` scales of a radial kernel for ``from_gram(g [..., n, k], ...)``: the ones ``bind`` froze, else the
    fixed values (one row per set of ``g``); a median-scaled kernel that was never bound raises, naming ``what``."""
    if bound is not None:
        return bound
    if fixed is not None:
        return g.new_tensor(fixed).expand(*g.shape[:-2], len(fixed))
    raise ValueError(f"{what}.from_gram: the median-scaled bandwidths come from data; bind(ref) first")


def median_sq_dist(x: Tensor, mask: Tensor | None = None, max_points: int = 2048) -> Tensor:
    """Median of off-diagonal squared distances within each set: ``x [..., n, D] -> [...]``.

    Padded rows (``mask`` False) are excluded. Sets larger than ``max_points`` use an evenly
    strided subset of ``max_points`` rows (deterministic; the median is a robust statistic and
    this keeps memory at ``max_points^2``). Computed without gradient (a bandwidth, not a function
    of the parameters), clamped at 1e-12; a set with fewer than two valid rows gives 1.
    """
    with torch.no_grad():
        n = x.shape[-2]
        if n > max_points:
            idx = torch.linspace(0, n - 1, max_points, device=x.device).round().long()
            x = x[..., idx, :]
            mask = None if mask is None else mask[..., idx]
            n = max_points
        d = sq_dists(x, x)
        valid = ~torch.eye(n, dtype=torch.bool, device=x.device)
        if mask is not None:
            valid = valid & mask[..., :, None] & mask[..., None, :]
        valid = valid.expand(d.shape)
        d = torch.where(valid, d, torch.full_like(d, float("nan")))
        med = torch.nanmedian(d.flatten(-2), dim=-1).values
        return torch.nan_to_num(med, nan=1.0).clamp_min(1e-12)
