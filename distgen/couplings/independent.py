"""Independent coupling: source and target samples are paired as drawn."""

from __future__ import annotations

from torch import Tensor

from distgen.couplings.base import Coupling


class IndependentCoupling(Coupling):
    """Pairs ``x0[b, i]`` with ``x1[b, i]`` as drawn (the product coupling; scDFM's choice)."""

    def pair(self, x0: Tensor, x1: Tensor, mask: Tensor) -> Tensor:
        return x0
