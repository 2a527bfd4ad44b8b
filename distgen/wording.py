"""Counts and lists of labels in text people read: ``counted(n, noun)`` (``1 condition``, ``2 conditions``),
``listing(labels)`` (``a, "b, c", d``: a label that holds the separator is quoted) and ``first_of(labels, 3)``
(``a, b, c (and 2 more)``, or ``(a, b, c, and 2 more)`` inside parentheses: the first few of a longer list).

Every message distgen prints or writes with a count (CLI lines, errors, notes, summary.md, the report) takes
its noun from here, so a single condition is never "1 conditions". English plurals of the nouns distgen
counts are the noun plus ``s``; give ``plural`` for any other (``counted(n, "entry", "entries")``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

_T = TypeVar("_T")


def counted(n: int | float | str | None, noun: str, plural: str | None = None, spec: str = "") -> str:
    """``"{n} {noun}"`` with the noun singular for exactly one and plural otherwise (``0 cells``, ``1 cell``, ``2.5 cells``).

    ``spec`` formats the number (``","``: ``12,000 cells``). A count that is not a number (``None``, ``"?"``, from a
    file that lacks it) is shown as it is, with the plural.
    """
    one = isinstance(n, int | float) and not isinstance(n, bool) and n == 1
    shown = format(n, spec) if spec and isinstance(n, int | float) else str(n)
    return f"{shown} {noun if one else (plural or noun + 's')}"


def listing(labels: Iterable[object], sep: str = ", ") -> str:
    """``labels`` joined by ``sep``, each readable back as one label: a label holding the separator's mark (a comma, for
    ``", "``), a double quote, a line break, leading or trailing spaces, or nothing at all, or written ``...`` (the mark
    of a cut list), is quoted as a JSON string (``"a, b"``); any other label is written as it is.

    So contexts ``a, b`` and ``c`` read ``"a, b", c``, never ``a, b, c``. For Markdown pass the result through
    ``distgen.markdown.inline``, for HTML through ``html.escape``.
    """
    mark = sep.strip() or sep
    out = []
    for label in labels:
        s = str(label)
        plain = s and s == s.strip() and mark not in s and '"' not in s and s.isprintable() and s != "..."
        out.append(s if plain else json.dumps(s, ensure_ascii=False))
    return sep.join(out)


def quoted(label: object, sep: str = ", ") -> str:
    """One label as ``listing`` writes it in a list joined by ``sep``: quoted as a JSON string when it holds the separator's
    mark, a double quote, a line break or outer spaces, is empty or is ``...``; as it is otherwise. ``first_of``'s ``render``
    for a list that ``listing`` would write."""
    return listing([label], sep)


def first_of(items: Sequence[_T], shown: int, sep: str = ", ", render: Callable[[_T], str] = str, total: int | None = None,
             noun: str = "", enclosed: bool = False) -> str:
    """The first ``shown`` of ``items``, each written by ``render``, joined by ``sep``, and ``" (and N more)"`` when the
    list holds N more (``first_of("abcde", 3)`` -> ``"a, b, c (and 2 more)"``). ``total`` is the length of the whole list
    when ``items`` holds only its first ones; ``noun`` names what is left out, counted (``"(and 1 more group)"``,
    ``"(and 2 more groups)"``).

    ``enclosed`` is for a list the message already writes inside parentheses: the rest is counted without a second
    pair, after a comma (a semicolon when ``sep`` is one), so ``(a, b, c, and 2 more)``, never ``(a, b, c (and 2 more))``.

    Every message that names the first few of a list (labels, runs, settings, tensors, columns) counts the rest this way;
    ``render`` keeps how each label is written there (``repr``, ``ascii``, ``quoted``, ``md.inline``).
    """
    n = len(items) if total is None else total
    said = sep.join(render(x) for x in items[:shown])
    if n <= shown:
        return said
    rest = f"and {counted(n - shown, 'more ' + noun) if noun else f'{n - shown} more'}"
    if enclosed:
        return f"{said}{';' if sep.strip() == ';' else ','} {rest}"
    return f"{said} ({rest})"


def folded(name: object) -> str:
    """``name`` with case and separators (``-``, ``_``, spaces) left out: ``Cross_DiT``, ``cross-dit`` and ``crossdit``
    fold alike. Used only to suggest a name (``near``), never to accept one."""
    return re.sub(r"[-_\s]+", "", str(name).casefold())


def near(name: object, choices: Iterable[object], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The names among ``choices`` a user who typed ``name`` most likely meant, best first, at most ``n``: those equal
    to it up to case and separators (``RANDOM`` -> ``random``, ``scdfm_small`` -> ``scdfm-small``) first, then
    ``difflib``'s close matches (``cutoff`` as there) of the name as typed and of its folded form.

    Every "Did you mean" of distgen takes its names from here, so a name differing only in case or separator gets a
    suggestion in every registry, config key and option. The suggestion goes in the error message; the wrong spelling
    is never accepted.
    """
    text = str(name)
    names = [str(c) for c in dict.fromkeys(choices) if str(c) != text]
    by_fold: dict[str, list[str]] = {}
    for c in names:
        by_fold.setdefault(folded(c), []).append(c)
    found = list(by_fold.get(folded(text), []))
    found += difflib.get_close_matches(text, names, n=n, cutoff=cutoff)
    for f in difflib.get_close_matches(folded(text), list(by_fold), n=n, cutoff=cutoff):
        found += by_fold[f]
    return list(dict.fromkeys(found))[:n]


def did_you_mean(names: object, choices: Iterable[object]) -> str:
    """``" Did you mean 'x'?"`` for the name (or each of a list of names) a user typed wrong, from ``near``; ``""`` when
    none is near. Appended to an error message that already says the name is unknown and lists the choices."""
    choices = list(choices)
    typed = [names] if isinstance(names, str) or not isinstance(names, Iterable) else list(names)
    meant = list(dict.fromkeys(m for t in typed for m in near(t, choices)))
    return f" Did you mean {', '.join(map(repr, meant))}?" if meant else ""


__all__ = ["counted", "did_you_mean", "first_of", "folded", "listing", "near", "quoted"]


#: What a row of a run scored per context counts: a (condition, context) pair, not a perturbation.
ROW_NOUN = "(condition, context) row"


def row_noun(contexts: Iterable[object] | None, noun: str = "perturbation") -> str:
    """The noun of a count of a run's rows: ``noun`` with one context (a row is a condition), ``ROW_NOUN`` with several
    (``contexts``: ``summary["contexts"]``), where "4 perturbations" would count 2 conditions in 2 contexts twice."""
    return ROW_NOUN if len(list(contexts or ())) > 1 else noun
