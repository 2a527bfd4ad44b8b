"""``counted(n, noun)``: a count and its noun for text people read (``1 condition``, ``2 conditions``).

Every message distgen prints or writes with a count (CLI lines, errors, notes, summary.md, the report) takes
its noun from here, so a single condition is never "1 conditions". English plurals of the nouns distgen
counts are the noun plus ``s``; give ``plural`` for any other (``counted(n, "entry", "entries")``).
"""

from __future__ import annotations


def counted(n: int | float | str | None, noun: str, plural: str | None = None, spec: str = "") -> str:
    """``"{n} {noun}"`` with the noun singular for exactly one and plural otherwise (``0 cells``, ``1 cell``, ``2.5 cells``).

    ``spec`` formats the number (``","``: ``12,000 cells``). A count that is not a number (``None``, ``"?"``, from a
    file that lacks it) is shown as it is, with the plural.
    """
    one = isinstance(n, int | float) and not isinstance(n, bool) and n == 1
    shown = format(n, spec) if spec and isinstance(n, int | float) else str(n)
    return f"{shown} {noun if one else (plural or noun + 's')}"


__all__ = ["counted"]
