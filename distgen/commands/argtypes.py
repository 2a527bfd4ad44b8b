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
