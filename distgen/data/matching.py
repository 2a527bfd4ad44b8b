"""Control matching strategies: which control cells are paired with a perturbed set."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor

from distgen.capabilities import MatcherCapabilities
from distgen.errors import InputDataError
from distgen.registry import Registry


class ControlMatcher(ABC):
    """``match(context, batch, pool_context, pool_batch, n, generator, target, pool_x) -> [n]`` indices.

    The control pool is described by ``pool_context`` / ``pool_batch`` ``[M]`` (and its expression
    ``pool_x`` ``[M, G]`` for matchers that look at it, ``capabilities.needs_expression``).
    ``target`` ``[n, G]`` holds the perturbed cells of the set being matched. Implementations return
    ``n`` long indices into the pool, drawn with replacement when the pool is small, and use only
    ``generator`` for randomness (deterministic under a seed).
    """

    capabilities: MatcherCapabilities = MatcherCapabilities()

    @abstractmethod
    def match(
        self,
        context: int,
        batch: int,
        pool_context: Tensor,
        pool_batch: Tensor,
        n: int,
        generator: torch.Generator,
        target: Tensor | None = None,
        pool_x: Tensor | None = None,
    ) -> Tensor:
        """``[n]`` long indices into the control pool."""




def draw(candidates: Tensor, n: int, generator: torch.Generator, what: str = "", replacement: bool = False) -> Tensor:
    """``n`` uniform picks from ``candidates``: without replacement while enough, then with
    (``replacement=True``: each pick independent, with replacement, whatever the pool size)."""
    if candidates.numel() == 0:
        raise InputDataError(f"no control cells available{what}; check the control label and the context/batch columns, or use matcher='random'")
    if candidates.numel() >= n and not replacement:
        return candidates[torch.randperm(candidates.numel(), generator=generator)[:n]]
    return candidates[torch.randint(candidates.numel(), (n,), generator=generator)]


def _need_x(name: str, target: Tensor | None, pool_x: Tensor | None) -> tuple[Tensor, Tensor]:
    if target is None or pool_x is None:
        raise ValueError(f"matcher {name!r} compares expression: pass target=[n, G] and pool_x=[M, G]")
    return target, pool_x


class UniformMatcher(ControlMatcher):
    """Base of the matchers that draw uniformly from a pool of candidates.

    Parameters
    ----------
    replacement
        False (default): a set's controls are distinct while the pool holds enough cells. True: every
        perturbed cell gets an independent draw, so a set may repeat a control (PerturbDiff's
        ``mapping_cells``).
    """

    def __init__(self, replacement: bool = False) -> None:
        self.replacement = bool(replacement)


class RandomMatcher(UniformMatcher):
    """Any control cell, uniformly."""

    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None) -> Tensor:
        return draw(torch.arange(pool_context.numel()), n, generator, replacement=self.replacement)


class SameContextMatcher(UniformMatcher):
    """Control cells of the same context (cell type / line), uniformly."""

    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None) -> Tensor:
        return draw(torch.nonzero(pool_context == context).flatten(), n, generator, f" in context {context}", self.replacement)


class SameBatchMatcher(UniformMatcher):
    """Control cells of the same context and batch (donor, plate, GEM group), uniformly."""

    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None) -> Tensor:
        ok = (pool_context == context) & (pool_batch == batch)
        return draw(torch.nonzero(ok).flatten(), n, generator, f" in context {context} and batch {batch}", self.replacement)


class NearestMatcher(ControlMatcher):
    """For each target cell, its nearest same-context control cell (Euclidean); ties broken at random.

    Parameters
    ----------
    k
        Pick uniformly among the ``k`` nearest controls (``k=1``: the nearest), so that a control
        set keeps some diversity.
    """

    capabilities = MatcherCapabilities(needs_expression=True)

    def __init__(self, k: int = 1) -> None:
        if k < 1:
            raise ValueError(f"nearest matcher: k must be >= 1, got {k}")
        self.k = k

    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None) -> Tensor:
        tgt, px = _need_x("nearest", target, pool_x)
        cand = torch.nonzero(pool_context == context).flatten()
        if cand.numel() == 0:
            draw(cand, n, generator, f" in context {context}")
        d = torch.cdist(tgt[:n].float(), px[cand].float())  # [n, M_c]
        k = min(self.k, cand.numel())
        nearest = d.topk(k, dim=1, largest=False).indices  # [n, k]
        pick = torch.randint(k, (nearest.shape[0], 1), generator=generator)
        return cand[nearest.gather(1, pick).squeeze(1)]


class OTMatcher(ControlMatcher):
    """Controls drawn from the exact optimal-transport plan (POT ``ot.emd``) between the target set
    and the same-context control cells, under squared Euclidean cost: each target cell gets a
    control sampled from its row of the plan."""

    capabilities = MatcherCapabilities(needs_expression=True)

    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None) -> Tensor:
        import ot

        tgt, px = _need_x("ot", target, pool_x)
        cand = torch.nonzero(pool_context == context).flatten()
        if cand.numel() == 0:
            draw(cand, n, generator, f" in context {context}")
        cost = torch.cdist(tgt[:n].float(), px[cand].float()).pow(2).double().numpy()
        na, nb = cost.shape
        plan = ot.emd(np.full(na, 1.0 / na), np.full(nb, 1.0 / nb), cost)  # numpy backend: no autograd overhead
        rows = torch.from_numpy(plan).float().clamp_min(0) + 1e-12
        return cand[torch.multinomial(rows, 1, generator=generator).squeeze(1)]


#: The matchers registry: built-ins here, plugins from entry points ``distgen.matchers``.
matchers: Registry[ControlMatcher] = Registry(
    "matchers",
    ControlMatcher,
    {
        "nearest": "distgen.data.matching:NearestMatcher",
        "ot": "distgen.data.matching:OTMatcher",
        "random": "distgen.data.matching:RandomMatcher",
        "same_batch": "distgen.data.matching:SameBatchMatcher",
        "same_context": "distgen.data.matching:SameContextMatcher",
    },
)
