"""Kernel mean embedding: a population -> its mean in a reproducing-kernel Hilbert space.

Two views of the same object:

* ``distance(P, Q)`` is exact: ``||mu_P - mu_Q||^2_H = MMD^2_k(P, Q)`` by the kernel trick
  (``distgen.kernels.distances.mmd2``). With the energy kernel ``k(x, y) = -||x - y||`` this is the
  energy distance, PerturbDiff's distribution loss; with a multi-scale RBF it is scDFM's MMD.
* ``forward(P)`` is an explicit finite-dimensional approximation ``phi_bar(P) = mean_j phi(x_j)``
  with ``<phi(x), phi(y)> ~= k(x, y)``, so a population becomes a vector ``[B, D]`` that can
  condition a network or be compared across many populations at once. Random Fourier features
  are used for the (shift-invariant) RBF kernel, Nystroem landmark features otherwise; a
  conditionally positive-definite kernel (energy) is first centred at a reference point, which
  leaves every MMD unchanged and makes it positive definite.

The feature map depends on the data scale (RBF median heuristic, Nystroem landmarks), so it is
calibrated once, on the first batch seen or by ``calibrate``, and then frozen (stored in buffers,
saved with the weights).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.config import Node, as_component
from distgen.encoders.base import Encoder, masked_mean
from distgen.kernels.base import Kernel
from distgen.kernels.distances import mmd2
from distgen.kernels.rbf import RBFKernel, median_sq_dist

FEATURE_MAPS = ("auto", "rff", "nystroem")
#: Dimension of the explicit embedding when ``features`` is left out.
DEFAULT_FEATURES = 256
#: The parameters each use of a kernel mean embedding never reads (``KernelMeanEmbedding.unused_params``).
_UNUSED = {
    "distance": (("features", "feature_map", "seed"), "it shapes only the explicit embedding (forward), but a distribution loss "
                 "uses the exact MMD (distance) and never computes it"),
    "embedding": (("unbiased",), "it chooses the MMD estimator of distance, but a population encoder only computes the explicit "
                  "embedding (forward)"),
}


def _real_cells(cells: Tensor, mask: Tensor) -> Tensor:
    """``[B, m, G], [B, m] -> [N, G]`` the real cells of all sets, pooled."""
    return cells[mask.bool()]


def nystroem_map(kernel: Kernel, landmarks: Tensor, centre: Tensor | None, jitter: float | None = None) -> Tensor:
    """``landmarks [r, G]`` -> whitening matrix ``[r, r]`` of the Nystroem feature map.

    ``phi(x) = (k~(x, L)) W`` with ``W = K~_LL^{-1/2}`` (pseudo-inverse square root), where
    ``k~`` is ``k`` centred at ``centre`` when given (for conditionally p.d. kernels). Eigenvalues
    below ``jitter x`` the largest are dropped (default: round-off level of ``landmarks.dtype``).
    """
    gram = _centred_gram(kernel, landmarks, landmarks, landmarks, centre)
    evals, evecs = torch.linalg.eigh(gram.double())
    if jitter is None:  # relative eigenvalue cut-off: round-off level of the input precision
        jitter = landmarks.shape[0] * torch.finfo(landmarks.dtype).eps
    keep = evals > jitter * evals.max().clamp_min(1e-30)
    inv_sqrt = torch.where(keep, evals.clamp_min(1e-30).rsqrt(), torch.zeros_like(evals))
    return ((evecs * inv_sqrt) @ evecs.T).to(gram.dtype)


def _centred_gram(kernel: Kernel, x: Tensor, y: Tensor, ref: Tensor, centre: Tensor | None) -> Tensor:
    """``k(x, y) - k(x, c) - k(c, y) + k(c, c)`` (plain ``k`` when ``centre`` is None); ``[n, k]``."""
    k = kernel.gram(x, y, ref=ref)
    if centre is None:
        return k
    c = centre[None]
    kxc = kernel.gram(x, c, ref=ref)  # [n, 1]
    kcy = kernel.gram(c, y, ref=ref)  # [1, k]
    kcc = kernel.gram(c, c, ref=ref)  # [1, 1]
    return k - kxc - kcy + kcc


class KernelMeanEmbedding(Encoder):
    """Kernel mean embedding; ``distance`` = exact MMD^2, ``forward`` = explicit features ``[B, D]``.

    Parameters
    ----------
    n_genes
        Injected at assembly.
    kernel
        A kernel node, e.g. ``{name: energy}`` (PerturbDiff) or ``{name: rbf, scales: [0.5, 1, 2, 4]}``
        (scDFM), a bare name or a ``Kernel``. Default: the energy kernel, written as such in a run's
        resolved ``config.yaml`` (it read ``kernel: null``, which named no kernel).
    unbiased
        ``distance`` uses the unbiased U-statistic (needs >= 2 real cells per set) instead of the
        biased V-statistic (PerturbDiff's geomloss energy loss is the biased one, times 1/2).
        Left out: true. Read by ``distance`` only, so a population encoder refuses it.
    features
        Dimension ``D`` of the explicit embedding (random features or landmarks). Left out: 256.
    feature_map
        ``"auto"`` (random Fourier features for the RBF kernel, Nystroem otherwise), ``"rff"`` or
        ``"nystroem"``. Left out: ``"auto"``.
    seed
        Seed of the random frequencies and of the landmark choice. Left out: 0.

    ``features``, ``feature_map`` and ``seed`` shape the explicit embedding (``forward``) only; a
    distribution loss uses the exact ``distance``, so there they are refused (``unused_params``).
    """

    example_params: ClassVar[dict[str, Any]] = {"kernel": {"name": "rbf"}, "features": 32}
    # buffers (declared for type checkers)
    omega: Tensor
    phase: Tensor
    calibrated: Tensor
    scale: Tensor
    landmarks: Tensor
    whiten: Tensor
    centre: Tensor

    def __init__(
        self,
        n_genes: int,
        kernel: Kernel | Node | None = "energy",
        unbiased: bool | None = None,
        features: int | None = None,
        feature_map: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        given = {"unbiased": unbiased, "features": features, "feature_map": feature_map, "seed": seed}
        self._given = frozenset(k for k, v in given.items() if v is not None)
        unbiased = True if unbiased is None else unbiased
        features = DEFAULT_FEATURES if features is None else features
        feature_map = "auto" if feature_map is None else feature_map
        seed = 0 if seed is None else seed
        built: Kernel = as_component("kernels", "energy" if kernel is None else kernel)  # None: a run saved when the default was null
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"kme: feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}")
        if features < 1:
            raise ValueError(f"kme: features must be >= 1, got {features}")
        if n_genes < 1:
            raise ValueError(f"kme: n_genes must be >= 1, got {n_genes}")
        if feature_map == "rff" and not isinstance(built, RBFKernel):
            raise ValueError(
                f"kme: feature_map='rff' needs a shift-invariant RBF kernel, got {type(built).__name__}; use 'nystroem' or 'auto'"
            )
        self.kernel = built
        self.unbiased = unbiased
        self.n_genes = n_genes
        self.dim = features
        self.seed = seed
        self.map = "rff" if (feature_map == "rff" or (feature_map == "auto" and isinstance(built, RBFKernel))) else "nystroem"
        self.centred = bool(built.capabilities.conditionally_pd)
        gen = torch.Generator().manual_seed(seed)
        if self.map == "rff":
            self.register_buffer("omega", torch.randn(n_genes, features, generator=gen))
            self.register_buffer("phase", torch.rand(features, generator=gen) * 2 * math.pi)
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self.register_buffer("scale", torch.zeros(features))  # RFF: 1/sigma per feature
        self.register_buffer("landmarks", torch.zeros(features if self.map == "nystroem" else 0, n_genes))
        self.register_buffer("whiten", torch.zeros(features if self.map == "nystroem" else 0, features if self.map == "nystroem" else 0))
        self.register_buffer("centre", torch.zeros(n_genes))

    def min_set_size(self, use: str) -> tuple[int, str]:
        if use == "distance" and self.unbiased:
            return 2, ("the unbiased MMD (kme, unbiased: true) leaves out each cell's pair with itself, so one cell has no "
                       "within-set pair; its unbiased: false (the biased estimate) is defined from one cell")
        return 1, ""

    def unused_params(self, use: str) -> dict[str, str]:
        names, why = _UNUSED.get(use, ((), ""))
        return {n: why for n in names if n in self._given}

    # ------------------------------------------------------------------ exact distance
    def distance(self, p: Tensor, p_mask: Tensor, q: Tensor, q_mask: Tensor) -> Tensor:
        """``[B]`` exact MMD^2 between populations ``p [B, m, G]`` and ``q [B, n, G]`` (kernel trick)."""
        if self.unbiased:
            # each distinct mask once (the generator's loss passes the target mask as both): read when it is a host
            # tensor; on a device asserted asynchronously (torch._assert_async): the step does not wait for the device
            for name, msk in (("p", p_mask),) if q_mask is p_mask else (("p", p_mask), ("q", q_mask)):
                n_real = msk.sum(-1)
                message = f"kme.distance: the unbiased MMD needs >= 2 real cells per set, but a set of {name} has"
                if msk.device.type != "cpu":
                    torch._assert_async((n_real >= 2).all(), f"{message} fewer; use bigger sets or set unbiased: false")
                elif bool((n_real < 2).any()):
                    raise ValueError(f"{message} {int(n_real.min())}; use bigger sets or set unbiased: false")
        return mmd2(p, q, self.kernel, x_mask=p_mask, y_mask=q_mask, unbiased=self.unbiased)

    # ------------------------------------------------------------------ explicit features
    @torch.no_grad()
    def calibrate(self, cells: Tensor, mask: Tensor) -> None:
        """Fix the data-dependent part of the feature map from ``cells [B, m, G]`` (real cells only)."""
        real = _real_cells(cells, mask).detach().to(self.centre.dtype)
        if real.shape[0] < 2:
            raise ValueError(f"kme.calibrate: needs >= 2 real cells, got {real.shape[0]}")
        gen = torch.Generator().manual_seed(self.seed + 1)
        if self.map == "rff":
            self._calibrate_rff(real, gen)
        else:
            idx = torch.randint(real.shape[0], (self.dim,), generator=gen).to(real.device)
            if real.shape[0] >= self.dim:
                idx = torch.randperm(real.shape[0], generator=gen)[: self.dim].to(real.device)
            lm = real[idx]
            centre = real.mean(0) if self.centred else None
            whiten = nystroem_map(self.kernel, lm, centre)
            self.landmarks.copy_(lm)
            self.whiten.copy_(whiten.to(self.whiten.dtype))
            if centre is not None:
                self.centre.copy_(centre)
        self.calibrated.fill_(True)

    def _calibrate_rff(self, real: Tensor, gen: torch.Generator) -> None:
        kernel = self.kernel
        assert isinstance(kernel, RBFKernel)
        if kernel.bandwidths is not None:
            s2 = torch.tensor(kernel.bandwidths, dtype=real.dtype, device=real.device)
        else:
            sub = real[torch.randperm(real.shape[0], generator=gen)[:512].to(real.device)]
            s2 = median_sq_dist(sub) * torch.tensor(kernel.scales, dtype=real.dtype, device=real.device)
        # the kernel is the mean over bandwidths: give each bandwidth an equal share of the features
        which = torch.arange(self.dim, device=real.device) % s2.numel()
        self.scale.copy_(s2[which].rsqrt())

    def forward(self, cells: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, G], [B, m] -> [B, D]`` mean of explicit kernel features over real cells."""
        if cells.shape[-1] != self.n_genes:
            raise ValueError(f"kme was built for {self.n_genes} genes, got {cells.shape[-1]}")
        if not bool(self.calibrated):
            self.calibrate(cells, mask)
        return masked_mean(self.features(cells), mask)

    def features(self, x: Tensor) -> Tensor:
        """``[..., G] -> [..., D]`` explicit feature map with ``phi(x) . phi(y) ~= k(x, y)``."""
        if self.map == "rff":
            proj = (x @ self.omega.to(x.dtype)) * self.scale.to(x.dtype) + self.phase.to(x.dtype)
            return torch.cos(proj) * math.sqrt(2.0 / self.dim)
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        centre = self.centre.to(x.dtype) if self.centred else None
        k = _centred_gram(self.kernel, flat, self.landmarks.to(x.dtype), self.landmarks.to(x.dtype), centre)
        return (k @ self.whiten.to(x.dtype)).reshape(*lead, self.dim)


__all__ = ["KernelMeanEmbedding", "nystroem_map"]
