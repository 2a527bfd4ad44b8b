"""The one reader of the small JSON files distgen writes (a run folder's records and summaries): the document, or why not
naming the file; each caller chooses to raise that (with its own fix) or to pass over the file.

Its readers: ``read_json`` (``(None, why)`` naming the file: the run folder's records, ``pipeline.run_folder``),
``parse_json_object`` (the document or a ``JsonProblem``: what is wrong, for a caller that words it, ``report.files.read_json``) and
``load_json`` (exceptions, so that the checkpoint reader ``train.state_io.read_json`` words a missing file apart from a
damaged one). Text is read as UTF-8 only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from distgen.errors import clip_message


def decode_json(text: str | bytes) -> Any:
    """The JSON value of ``text`` (any type); bytes are decoded as UTF-8 only, a byte-order mark refused. Raises
    ``ValueError`` (``json.JSONDecodeError`` or ``UnicodeDecodeError``) with the decoder's detail for damaged text."""
    # UTF-8 only: json.loads would also take UTF-16/32 bytes and skip a BOM, reading a file an editor re-encoded
    return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)


def load_json(path: str | Path) -> Any:
    """The JSON value of file ``path``; raises ``OSError`` (``FileNotFoundError`` when missing) or ``ValueError`` as
    ``decode_json``, so that a caller can word "missing" apart from "corrupt" (the checkpoint readers)."""
    return decode_json(Path(path).read_bytes())


@dataclass(frozen=True, slots=True)
class JsonProblem:
    """Why a JSON text holds no object: its ``kind`` and the ``detail`` a message carries. Not a tuple: a caller that
    unpacks the result as the old ``(document, why)`` pair fails rather than reading the kind as the document."""

    #: ``"invalid"``: not valid JSON (cut short, edited, not UTF-8); ``"not_object"``: valid JSON of another type.
    kind: Literal["invalid", "not_object"]
    #: The decoder's message (``"invalid"``), or the Python type name of the value held (``"not_object"``: ``list``).
    detail: str


def parse_json_object(text: str | bytes) -> dict[str, Any] | JsonProblem:
    """The document of JSON ``text`` holding an object, or the ``JsonProblem``: ``"invalid"`` with the decoder's
    detail (damaged text: cut short, edited, not UTF-8; bytes are decoded as UTF-8, a byte-order mark refused) or
    ``"not_object"`` with the type of the value held."""
    try:
        doc = decode_json(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return JsonProblem("invalid", str(exc))
    if not isinstance(doc, dict):
        return JsonProblem("not_object", type(doc).__name__)
    return doc


def read_json(path: str | Path, clip: int = 200) -> tuple[dict[str, Any] | None, str | None]:
    """``(document, None)`` of the JSON object file ``path``, or ``(None, why)`` naming it: ``'PATH cannot be read (DETAIL)'``
    (missing, not readable, not valid JSON; DETAIL clipped to ``clip`` characters) or ``'PATH cannot be read (it holds no
    JSON object)'``."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return None, f"{path} cannot be read ({clip_message(str(exc), clip)})"
    doc = parse_json_object(raw)
    if not isinstance(doc, JsonProblem):
        return doc, None
    if doc.kind == "invalid":
        return None, f"{path} cannot be read ({clip_message(doc.detail, clip)})"
    return None, f"{path} cannot be read (it holds no JSON object)"
