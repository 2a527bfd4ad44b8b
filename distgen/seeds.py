"""Seeds derived from a run's seed and labels, so that a draw depends on what it is for and nothing else.

A prediction's noise for one (condition, context, batch) group, or the ceiling's half-split of one
perturbation, should be the same whichever other groups are processed beside it and in whatever order
the rows come. ``label_seed`` gives such a seed: a hash of the labels (BLAKE2b, stable across processes
and Python versions, unlike ``hash``) mixed with the seed by numpy's ``SeedSequence``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def label_seed(seed: int, labels: Sequence[str], stream: int = 0) -> int:
    """A 63-bit seed from ``seed``, the ``labels`` (in order) and a ``stream`` number keeping different uses apart."""
    key = int.from_bytes(hashlib.blake2b("\x1f".join(labels).encode(), digest_size=16).digest(), "little")
    state = np.random.SeedSequence([int(seed) % 2**64, key, int(stream)]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


__all__ = ["label_seed"]
