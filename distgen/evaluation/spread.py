"""Distribution-over-distributions metrics: compare the SPREAD of several populations per condition.

Given ``R`` generated populations for one condition (e.g. one per seed, donor or batch context) and
``S`` real replicate populations (donors, batches), a model can match each mean population yet
collapse the between-replicate variation. These metrics look one level up, at the populations as
points in the RKHS of a kernel (kernel mean embeddings; distances between them are MMDs):

* ``population_mmd2``: MMD^2 between the two SETS of populations, with the Gaussian kernel
  ``K(P, Q) = exp(-MMD^2(P, Q) / (2 s^2))`` on populations (``s^2`` = median of the real-real MMD^2s);
* ``spread_ratio``: mean pairwise MMD between generated populations / the same among real ones
  (1 = same spread, < 1 = too little between-replicate variation);
* ``replicate_coverage``: fraction of held-out real replicates that some generated population is
  closer to than the nearest other real replicate (a population-level coverage, cf. Naeem et al. 2020).
"""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.kernels.base import Kernel
from distgen.kernels.distances import mmd2


def pairwise_mmd2(a: Tensor, b: Tensor, kernel: Kernel, a_mask: Tensor | None = None, b_mask: Tensor | None = None,
                  ref: Tensor | None = None, ref_mask: Tensor | None = None) -> Tensor:
    """``[A, B]`` biased MMD^2 between populations ``a [A, n, D]`` and ``b [B, m, D]`` (masks optional).

    Kernel hyper-parameters come from one shared reference set ``ref [r, D]`` (default: all of ``b``
    pooled), so every entry is measured in the same RKHS.
    """
    na, nb = a.shape[0], b.shape[0]
    a_mask = torch.ones(a.shape[:2], dtype=torch.bool) if a_mask is None else a_mask
    b_mask = torch.ones(b.shape[:2], dtype=torch.bool) if b_mask is None else b_mask
    if ref is None:
        ref, ref_mask = b.reshape(1, -1, b.shape[-1]), b_mask.reshape(1, -1)
    elif ref.dim() == 2:
        ref, ref_mask = ref[None], None if ref_mask is None else ref_mask[None]
    x = a[:, None].expand(na, nb, *a.shape[1:]).reshape(na * nb, *a.shape[1:])
    y = b[None].expand(na, nb, *b.shape[1:]).reshape(na * nb, *b.shape[1:])
    xm = a_mask[:, None].expand(na, nb, a.shape[1]).reshape(na * nb, -1)
    ym = b_mask[None].expand(na, nb, b.shape[1]).reshape(na * nb, -1)
    return mmd2(x, y, kernel, xm, ym, unbiased=False, ref=ref, ref_mask=ref_mask).reshape(na, nb).clamp_min(0.0)


def _off_diag_mean(d: Tensor) -> Tensor:
    n = d.shape[0]
    return (d.sum() - d.diagonal().sum()) / max(n * (n - 1), 1)


def population_mmd2(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None = None, real_mask: Tensor | None = None) -> Tensor:
    """MMD^2 (unbiased) between the set of generated and the set of real populations; needs >= 2 of each."""
    if gen.shape[0] < 2 or real.shape[0] < 2:
        raise ValueError(f"population_mmd2 needs at least 2 generated and 2 real populations, got {gen.shape[0]} and {real.shape[0]}")
    ref = real.reshape(-1, real.shape[-1])
    ref_mask = None if real_mask is None else real_mask.reshape(-1)
    dgg = pairwise_mmd2(gen, gen, kernel, gen_mask, gen_mask, ref, ref_mask)
    drr = pairwise_mmd2(real, real, kernel, real_mask, real_mask, ref, ref_mask)
    dgr = pairwise_mmd2(gen, real, kernel, gen_mask, real_mask, ref, ref_mask)
    off = drr[~torch.eye(drr.shape[0], dtype=torch.bool)]
    s2 = off.median().clamp_min(1e-12)
    kgg, krr, kgr = (torch.exp(-d / (2 * s2)) for d in (dgg, drr, dgr))
    return _off_diag_mean(kgg) + _off_diag_mean(krr) - 2 * kgr.mean()


def spread_ratio(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None = None, real_mask: Tensor | None = None) -> Tensor:
    """Mean pairwise MMD between generated populations over that between real ones (1 = same spread)."""
    ref = real.reshape(-1, real.shape[-1])
    ref_mask = None if real_mask is None else real_mask.reshape(-1)
    g = _off_diag_mean(pairwise_mmd2(gen, gen, kernel, gen_mask, gen_mask, ref, ref_mask).sqrt())
    r = _off_diag_mean(pairwise_mmd2(real, real, kernel, real_mask, real_mask, ref, ref_mask).sqrt())
    return g / r.clamp_min(1e-12)


def replicate_coverage(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None = None, real_mask: Tensor | None = None) -> Tensor:
    """Fraction of real replicates whose nearest generated population is within their nearest real neighbour's MMD."""
    if real.shape[0] < 2:
        raise ValueError("replicate_coverage needs at least 2 real replicate populations")
    ref = real.reshape(-1, real.shape[-1])
    ref_mask = None if real_mask is None else real_mask.reshape(-1)
    drr = pairwise_mmd2(real, real, kernel, real_mask, real_mask, ref, ref_mask)
    radius = (drr + torch.diag(torch.full((drr.shape[0],), float("inf"), dtype=drr.dtype))).min(1).values
    dgr = pairwise_mmd2(gen, real, kernel, gen_mask, real_mask, ref, ref_mask)
    return (dgr.min(0).values <= radius).to(torch.float64).mean()
