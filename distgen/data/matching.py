"""Control matching strategies: which control cells are paired with a perturbed set."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.registry import make_registry


class ControlMatcher(ABC):
    """``match(target_labels, candidates, n, generator) -> [n] indices`` into the control pool.

    ``pool`` describes the control cells (their context and batch ids, and expression for matchers
    that look at it); implementations choose ``n`` control cells for one perturbed set.
    """

    capabilities: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def match(self, context: int, batch: int, pool_context: Tensor, pool_batch: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """``[n]`` long indices into the control pool (drawn with replacement when needed)."""


matchers = make_registry("matchers", ControlMatcher)


def _draw(candidates: Tensor, n: int, generator: torch.Generator) -> Tensor:
    if candidates.numel() == 0:
        raise ValueError("no control cells available for this set; check the control label and context/batch columns")
    pick = torch.randint(candidates.numel(), (n,), generator=generator)
    return candidates[pick]


@matchers.register("random")
class RandomMatcher(ControlMatcher):
    """Any control cell, uniformly, with replacement."""

    def match(self, context: int, batch: int, pool_context: Tensor, pool_batch: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return _draw(torch.arange(pool_context.numel()), n, generator)


@matchers.register("same_context")
class SameContextMatcher(ControlMatcher):
    """Control cells of the same context (cell type / line), uniformly with replacement."""

    def match(self, context: int, batch: int, pool_context: Tensor, pool_batch: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return _draw(torch.nonzero(pool_context == context).flatten(), n, generator)
