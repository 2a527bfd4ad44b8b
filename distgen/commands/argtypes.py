"""Argument types shared by several commands (no ``register``: not a command)."""

from __future__ import annotations

import argparse


def _int_at_least(text: str, low: int, expected: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {n}")
    return n


def max_cells_arg(text: str) -> int | str:
    """``--max-cells``: a positive integer, or ``all`` (every real cell of each held-out group)."""
    if text.strip().lower() == "all":
        return "all"
    return _int_at_least(text, 1, "a positive integer or 'all'")


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (``--seed``: numpy refuses a negative seed deep inside, as an internal error)."""
    return _int_at_least(text, 0, "an integer >= 0")


#: Seeds are recorded in the files a command writes (``uns["distgen"]["provenance"]``, HDF5 int64) and hashed modulo 2**64.
SEED_LOW, SEED_HIGH = -(2**63), 2**63 - 1


def seed_arg(text: str) -> int:
    """``distgen predict --seed``: an integer that fits int64. ``--seed 99999999999999999999999`` predicted every group,
    then stopped with an internal error writing the provenance (HDF5 has no integer that large)."""
    n = _int_at_least(text, SEED_LOW, f"an integer from {SEED_LOW} to {SEED_HIGH}")
    if n > SEED_HIGH:
        raise argparse.ArgumentTypeError(f"expected an integer from {SEED_LOW} to {SEED_HIGH}, got {n}")
    return n


def positive_int(text: str) -> int:
    """An integer >= 1 (``--ceiling-splits``)."""
    return _int_at_least(text, 1, "an integer >= 1")
