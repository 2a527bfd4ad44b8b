"""The mean embedding: a population -> its mean expression profile."""

from __future__ import annotations

from torch import Tensor

from distgen.encoders.base import Encoder, masked_mean


class MeanEmbedding(Encoder):
    """Mean expression of the set (the kernel mean embedding of the linear kernel).

    Its ``distance`` is the squared distance between means, i.e. the MMD^2 with the linear kernel;
    it has no parameters and sees only first moments.
    """

    def __init__(self, n_genes: int) -> None:
        super().__init__()
        if n_genes < 1:
            raise ValueError(f"mean encoder: n_genes must be >= 1, got {n_genes}")
        self.dim = n_genes

    def forward(self, cells: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(cells, mask)
