"""Principal axes of cells for figures, the same for the same cells: the PCA of every embedding plot.

``torch.pca_lowrank`` starts from a random matrix drawn from torch's global generator, so an unseeded call drew
another basis, and another sign of each axis, on every run: the evaluation's ``embedding_overlay.png`` differed between
two runs of the same files (the points mirrored or rotated). Here a small table gets an exact SVD, a large one
``pca_lowrank`` from a fixed seed (the global generator untouched), and each axis's sign is fixed by its largest loading.
"""

from __future__ import annotations

import torch

#: Largest ``n * G * min(n, G)`` (about the flops of an exact SVD of an ``[n, G]`` table) solved exactly; beyond, the
#: seeded randomized PCA (``[4000, 2000]`` cells: ~1.6e10, seconds of CPU, against well under one for the randomized one).
EXACT_WORK = 2e8


def principal_axes(centred: torch.Tensor, k: int, seed: int = 0, q: int | None = None, niter: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s [k], v [G, k])``: singular values and the top ``k`` principal axes of the rows of ``centred`` ``[n, G]`` (already
    centred), the same for the same input.

    Exact (``torch.linalg.svd``) when ``n * G * min(n, G) <= EXACT_WORK``, else ``torch.pca_lowrank`` with ``q`` columns
    (default ``k + 4``) and ``niter`` power iterations, its random start drawn from ``seed`` in a forked generator. Each
    axis is oriented so that its loading of largest magnitude is positive (the first such loading on ties).
    """
    n, g = centred.shape
    k = min(k, n, g)
    if n * g * min(n, g) <= EXACT_WORK:
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        s, v = s[:k], vh[:k].T
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, s, v = torch.pca_lowrank(centred, q=min(q if q is not None else k + 4, n, g), center=False, niter=niter)
        s, v = s[:k], v[:, :k]
    return s, v * orientation(v)


def orientation(v: torch.Tensor) -> torch.Tensor:
    """``[k]`` signs (``+1``/``-1``) that make each column's loading of largest magnitude positive."""
    if v.numel() == 0:
        return torch.ones(v.shape[1], dtype=v.dtype)
    top = v.abs().argmax(0)
    sign = torch.sign(v.gather(0, top[None])[0])
    return torch.where(sign == 0, torch.ones_like(sign), sign)
