"""The reduced gene space the model works in: PCA of population means, or the genes themselves."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Basis:
    """An affine map between genes ``[..., G]`` and standardised coordinates ``[..., K]``.

    ``z = ((x - center) @ components) / scale``; ``components [G, K]`` has orthonormal columns, so
    decoding ``center + (z * scale) @ components.T`` is the orthogonal projection onto its span.
    ``components=None`` is the identity (every gene a coordinate), applied without a dense ``[G, G]``
    matrix (which would take ``8 G^2`` bytes and ``G^2`` operations per cell).
    """

    center: Tensor
    components: Tensor | None
    scale: Tensor

    @property
    def dim(self) -> int:
        return int(self.scale.shape[0])

    def encode(self, x: Tensor) -> Tensor:
        """``[..., G]`` -> ``[..., K]`` standardised coordinates."""
        dev = x.to(self.center.dtype) - self.center
        return (dev if self.components is None else dev @ self.components) / self.scale

    def decode_shift(self, z: Tensor) -> Tensor:
        """``[..., K]`` coordinate differences -> ``[..., G]`` expression differences."""
        shift = z.to(self.scale.dtype) * self.scale
        return shift if self.components is None else shift @ self.components.T

    def decode(self, z: Tensor) -> Tensor:
        """``[..., K]`` coordinates -> ``[..., G]`` expression (in the span of the basis)."""
        return self.center + self.decode_shift(z)


def _floor(scale: Tensor) -> Tensor:
    return scale.clamp_min(1e-3 * float(scale.max()) + 1e-8)


def fit_basis(means: Tensor, count: Tensor, method: str, n_components: int) -> Basis:
    """A ``Basis`` from ``[Np, G]`` population means weighted by ``[Np]`` cell counts.

    Parameters
    ----------
    means, count
        Training population means and their sizes.
    method
        ``"pca"``: the top principal axes of the population means (the between-population
        variation the model explains), centred on the cell-weighted mean. ``"genes"``: every gene
        is a coordinate (the identity basis; use it for small gene panels).
    n_components
        ``K`` for ``"pca"`` (capped at ``Np - 1`` and ``G``).
    """
    means = means.to(torch.float64)
    n_pop, n_genes = means.shape
    center = (means * count[:, None]).sum(0) / count.sum()
    dev = means - center
    if method == "genes":
        scale = dev.pow(2).mean(0).sqrt()
        return Basis(center, None, _floor(scale))
    if method != "pca":
        raise ValueError(f"reduction={method!r} is not known; expected 'pca' or 'genes'")
    k = max(1, min(n_components, n_pop - 1, n_genes))
    dev_c = dev - dev.mean(0)
    vh = torch.linalg.svd(dev_c, full_matrices=False).Vh
    comps = vh[:k].T.contiguous()
    sign = torch.sign(comps[comps.abs().argmax(0), torch.arange(k)])  # deterministic orientation
    comps = comps * torch.where(sign == 0, torch.ones_like(sign), sign)
    scale = (dev @ comps).pow(2).mean(0).sqrt()
    return Basis(center, comps, _floor(scale))
