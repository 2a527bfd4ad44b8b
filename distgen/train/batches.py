"""Training batches as a pure function of ``(seed, step, shard)``: exact resume and rank-invariance.

The global batch of a step is ``sets_per_batch`` cell sets, cut into ``n_shards`` equal shards
(ranks x accumulation micro-batches). ``distgen.data.SetSampler`` draws every set from a generator
seeded by ``(seed, epoch, global set index)`` and gives shard ``s`` of ``n`` a disjoint slice of
one global sequence; ``TableBatches`` maps step ``k`` to batch ``k % len`` of epoch ``k // len``.
So a resumed run sees exactly the batches it would have seen, and 2 ranks see the same global batch
as 1 process with 2 accumulation micro-batches. Nothing is stored but the step.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from distgen.data.matching import ControlMatcher
from distgen.data.sampler import SetSampler
from distgen.types import CellTable, SetBatch


def mix_seed(*keys: int) -> int:
    """A well-spread 63-bit seed from integer keys (numpy ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, dtype=np.uint64)[0] >> 1)


class BatchSource(Protocol):
    """What the trainer draws from: shard ``shard`` of ``n_shards`` of the global batch of ``step``."""

    sets_per_batch: int

    def batch(self, step: int, shard: int, n_shards: int) -> SetBatch: ...


class TableBatches:
    """``BatchSource`` over an in-memory ``CellTable`` (one ``SetSampler`` per shard layout).

    Parameters
    ----------
    table
        Training cells (perturbed and control).
    set_size
        Cells per set ``m``; a smaller group is used whole and padded (mask False).
    sets_per_batch
        Global sets per optimizer step.
    matcher
        Name of a registered control matcher (``distgen components --kind matchers``) or an instance.
    seed
        Base seed.
    **sampler_params
        More ``SetSampler`` arguments (``sampling``, ``sets_per_epoch``, ``matcher_params``, ``controls``).
    """

    def __init__(
        self,
        table: CellTable,
        set_size: int,
        sets_per_batch: int,
        matcher: str | ControlMatcher = "same_context",
        seed: int = 0,
        **sampler_params: Any,
    ) -> None:
        self.table, self.set_size, self.sets_per_batch, self.seed = table, set_size, sets_per_batch, seed
        self.matcher, self.sampler_params = matcher, sampler_params
        self._samplers: dict[tuple[int, int], SetSampler] = {}
        self.sampler(0, 1)  # fail early on bad data (no perturbed or no control cells)

    def sampler(self, shard: int = 0, n_shards: int = 1) -> SetSampler:
        if self.sets_per_batch % n_shards:
            raise ValueError(
                f"train.sets_per_batch={self.sets_per_batch} does not split into {n_shards} equal shards "
                "(world size x grad_accum); make it a multiple"
            )
        key = (shard, n_shards)
        if key not in self._samplers:
            self._samplers[key] = SetSampler(
                self.table, self.set_size, self.sets_per_batch // n_shards, self.matcher, self.seed, shard, n_shards, **self.sampler_params
            )
        return self._samplers[key]

    def batch(self, step: int, shard: int = 0, n_shards: int = 1) -> SetBatch:
        s = self.sampler(shard, n_shards)
        epoch, index = divmod(step, len(s))
        s.set_epoch(epoch)
        return s.batch(index)
