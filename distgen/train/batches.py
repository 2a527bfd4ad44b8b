"""What the trainer draws from: a ``BatchSource``, and the seed mixing that makes runs exact.

The global batch of a step is ``sets_per_batch`` cell sets, cut into ``n_shards`` equal shards
(ranks x accumulation micro-batches). A source is a pure function of ``(step, shard, n_shards)``
(``distgen.data.batches.TableBatches`` in memory, ``distgen.data.streaming.StreamBatches`` from
disk), so a resumed run sees exactly the batches it would have seen, and 2 ranks see the same
global batch as 1 process with 2 accumulation micro-batches. Nothing is stored but the step.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from distgen.types import SetBatch


def mix_seed(*keys: int) -> int:
    """A well-spread 63-bit seed from integer keys (numpy ``SeedSequence``)."""
    # the shift happens on a Python int: numpy 1.x promotes ``uint64 >> int`` to float64 and refuses the shift
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(2, dtype=np.uint64)[0]) >> 1


class BatchSource(Protocol):
    """What the trainer draws from: shard ``shard`` of ``n_shards`` of the global batch of ``step``."""

    sets_per_batch: int

    def batch(self, step: int, shard: int, n_shards: int) -> SetBatch: ...
