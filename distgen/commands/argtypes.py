"""Argument types shared by several commands (no ``register``: not a command)."""

from __future__ import annotations

import argparse


def max_cells_arg(text: str) -> int | str:
    """``--max-cells``: a positive integer, or ``all`` (every real cell of each held-out group)."""
    if text.strip().lower() == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {n}")
    return n


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (``--seed``: numpy refuses a negative seed deep inside, as an internal error)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {n}")
    return n


def positive_int(text: str) -> int:
    """An integer >= 1 (``--ceiling-splits``)."""
    n = nonnegative_int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {n}")
    return n
