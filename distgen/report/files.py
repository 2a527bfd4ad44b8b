"""Reading an evaluation or sweep folder's files for a report: a damaged file is refused naming it and the fix.

``python -m distgen.report FOLDER`` rewrites a page from files a user may have edited, truncated or replaced: a
``summary.json`` that is not JSON, a ``metrics.csv`` cut short or of another tool. Each reader here says which file and
what is wrong (``ValueError``; exit 1 with one line, as an unreadable input), where the page's code failed with
``max() arg is an empty sequence``, a bare ``'perturbation'`` or a traceback.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distgen.jsonfile import JsonProblem, parse_json_object
from distgen.wording import first_of

#: What a damaged file's message ends with: how to get the folder back.
FIX = "write the folder again (distgen evaluate ... --out FOLDER --overwrite, or distgen sweep), or restore the file"


def read_json(path: str | Path, fix: str = FIX) -> dict[str, Any]:
    """A JSON object file (``summary.json``); ``ValueError`` naming the file when it is not valid JSON or not an object,
    with ``fix`` (how to get the file back)."""
    path = Path(path)
    raw = parse_json_object(path.read_bytes())  # OSError is the caller's (a missing file is its own message)
    if not isinstance(raw, JsonProblem):
        return raw
    if raw.kind == "invalid":
        raise ValueError(f"{path} is not valid JSON ({raw.detail}): the file is damaged; {fix}")
    raise ValueError(f"{path} holds a JSON {raw.detail}, not the object distgen writes: {fix}")


def read_rows(path: str | Path, required: Sequence[str] = (), nonempty: bool = True) -> list[dict[str, str]]:
    """The rows of a CSV file as text; ``ValueError`` naming the file when it is not text, lacks a ``required`` column,
    holds a row cut short (a truncated file) or, with ``nonempty``, no row at all."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path} is not a CSV table ({exc}): the file is damaged; {FIX}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing} (its header: [{first_of(header, 8, render=repr)}]): "
                         f"it is not the table distgen writes; {FIX}")
    short = next((i for i, r in enumerate(rows) if None in r.values() or None in r), None)
    if short is not None:  # DictReader fills a short row with None (and puts extra fields under the key None)
        raise ValueError(f"{path}: row {short + 2} has {'fewer' if None in rows[short].values() else 'more'} fields than the header "
                         f"({len(header)}): the file is cut short or damaged; {FIX}")
    if nonempty and not rows:
        raise ValueError(f"{path} holds no row (a header only, or nothing): the evaluation scored nothing or the file was cut; {FIX}")
    return rows


def check_summary(summary: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``summary`` with the types the page reads checked (``ValueError`` naming the key): names as strings, ``contexts`` a
    list; a hand-edited ``"contexts": 5`` failed with a traceback."""
    for key in ("pred", "real", "pert_col", "control", "celltype_col", "preset", "profile"):
        v = summary.get(key)
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{path}: {key!r} is {v!r}, not a string as distgen writes it: {FIX}")
    for key in ("contexts", "notes", "variants", "comparisons", "failed"):
        v = summary.get(key)
        if v is not None and not isinstance(v, list):
            raise ValueError(f"{path}: {key!r} is {v!r}, not a list as distgen writes it: {FIX}")
    return summary
