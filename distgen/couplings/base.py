"""Coupling interface: how source and target samples are paired within each set."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from distgen.capabilities import CouplingCapabilities
from distgen.registry import Registry


class Coupling(ABC):
    """``pair(x0 [B, m, G], x1 [B, m, G], mask [B, m]) -> x0 reordered [B, m, G]``.

    Returns the source samples permuted within each set so that ``x0[b, i]`` is paired with
    ``x1[b, i]``. Only real cells (``mask`` True) take part; padded positions stay in place.
    """

    capabilities: CouplingCapabilities = CouplingCapabilities()

    @abstractmethod
    def pair(self, x0: Tensor, x1: Tensor, mask: Tensor) -> Tensor:
        """Source samples reordered to pair with ``x1``."""


#: The couplings registry: built-ins here, plugins from entry points ``distgen.couplings``.
couplings: Registry[Coupling] = Registry(
    "couplings",
    Coupling,
    {
        "exact_ot": "distgen.couplings.exact_ot:ExactOTCoupling",
        "independent": "distgen.couplings.independent:IndependentCoupling",
        "sinkhorn": "distgen.couplings.sinkhorn:SinkhornCoupling",
    },
)
