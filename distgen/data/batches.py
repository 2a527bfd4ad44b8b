"""``TableBatches``: the trainer's batch source over an in-memory ``CellTable``.

``SetSampler`` draws every set from a generator seeded by ``(seed, epoch, global set index)`` and
gives shard ``s`` of ``n`` a disjoint slice of one global sequence; ``TableBatches`` maps step ``k``
to batch ``k % len`` of epoch ``k // len``. It is a pure function of ``(seed, step, shard)``, which
is what makes the trainer's runs exact under resume and across ranks (``distgen.train.batches``).
"""

from __future__ import annotations

from typing import Any

from distgen.data.matching import ControlMatcher
from distgen.data.sampler import SetSampler
from distgen.types import CellTable, SetBatch


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

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: step ``k`` is batch ``k % steps_per_epoch`` of epoch ``k // steps_per_epoch``."""
        return len(self.sampler(0, 1))

    def batch(self, step: int, shard: int = 0, n_shards: int = 1) -> SetBatch:
        s = self.sampler(shard, n_shards)
        epoch, index = divmod(step, len(s))
        s.set_epoch(epoch)
        return s.batch(index)
