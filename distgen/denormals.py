"""Denormal floats on the CPU: whether this thread flushes them, and a block that keeps them.

distgen flushes denormals to zero for training and evaluation (``torch.set_flush_denormal(True)``):
attention and kernel sums over expression data produce them, and arithmetic on them is many times
slower. One library kernel does the opposite: numpy's float64 sort, on an AVX-512 CPU, runs ~13x
slower with flushing on when most values are zeros (1,267 rows x 454 values, 70% zeros: 41 ms vs
3.1 ms; random values, float32 and integers are unaffected; numpy 2.4, AMD EPYC). Expression
matrices are mostly zeros, so the rank tests sort exactly such arrays. ``ieee_denormals()`` lifts
the flushing for such a call and restores it afterwards.

There is no getter for the mode, so ``flushing()`` asks the hardware: the smallest denormal times
one is zero only when denormals are flushed (as inputs or as results). Even a float literal such as
``5e-324`` reads as 0.0 in a module compiled while flushing is on, so the probe builds its denormal
from bits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

#: the smallest positive denormal double, 5e-324, made from its bits: parsing the literal (or any arithmetic)
#: while denormals are flushed would give 0.0
_TINY = np.array([1], dtype=np.uint64).view(np.float64)[0]
_ONE = np.float64(1.0)


def flushing() -> bool:
    """Whether this thread flushes denormal floats to zero (e.g. after ``torch.set_flush_denormal(True)``)."""
    return bool(_TINY * _ONE == 0.0)


@contextlib.contextmanager
def ieee_denormals() -> Iterator[None]:
    """Inside the block denormal floats are kept (IEEE 754); a flushing mode in effect before is restored after it."""
    flushed = flushing()
    if flushed:
        torch.set_flush_denormal(False)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(True)
