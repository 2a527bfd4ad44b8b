"""The one reader of the small JSON files distgen writes (a run folder's records and summaries): the document, or why not
naming the file; each caller chooses to raise that (with its own fix) or to pass over the file.

Until helper 205 four readers did this with their own rules (``experiment._read_json``: None on any failure;
``experiment._finished_json``: the reason; ``report.files.read_json``: raised, with a fix); the checkpoint reader ``train.state_io.read_json`` (exceptions, so its
callers word a missing file apart from a damaged one) joined with helper 218 as ``load_json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distgen.errors import clip_message


def decode_json(text: str | bytes) -> Any:
    """The JSON value of ``text`` (any type); bytes are decoded as UTF-8 only, a byte-order mark refused. Raises
    ``ValueError`` (``json.JSONDecodeError`` or ``UnicodeDecodeError``) with the decoder's detail for damaged text."""
    # UTF-8 only, as the readers before (json.loads would also take UTF-16/32 bytes and skip a BOM: review, h213)
    return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)


def load_json(path: str | Path) -> Any:
    """The JSON value of file ``path``; raises ``OSError`` (``FileNotFoundError`` when missing) or ``ValueError`` as
    ``decode_json``, so that a caller can word "missing" apart from "corrupt" (the checkpoint readers)."""
    return decode_json(Path(path).read_bytes())


def parse_json_object(text: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(document, None)`` of JSON ``text`` holding an object, or ``(None, why)``: ``'not valid JSON (DETAIL)'`` (damaged
    text: cut short, edited, not UTF-8; bytes are decoded as UTF-8, a byte-order mark refused) or ``'a JSON TYPE, not an
    object'``."""
    try:
        doc = decode_json(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return None, f"not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return None, f"a JSON {type(doc).__name__}, not an object"
    return doc, None


def read_json(path: str | Path, clip: int = 200) -> tuple[dict[str, Any] | None, str | None]:
    """``(document, None)`` of the JSON object file ``path``, or ``(None, why)`` naming it: ``'PATH cannot be read (DETAIL)'``
    (missing, not readable, not valid JSON; DETAIL clipped to ``clip`` characters) or ``'PATH cannot be read (it holds no
    JSON object)'``."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return None, f"{path} cannot be read ({clip_message(str(exc), clip)})"
    doc, why = parse_json_object(raw)
    if why is None:
        return doc, None
    if why.startswith("not valid JSON"):
        return None, f"{path} cannot be read ({clip_message(why[len('not valid JSON ('):-1], clip)})"
    return None, f"{path} cannot be read (it holds no JSON object)"
