"""What a trained run keeps of the embedding-table files its model read: ``embedding_tables.json`` in the run folder.

A table conditioner (``embedding_table``, ``covariate`` with ``perturbation="table"`` or a ``context_table``) reads its
file at construction and keeps the rows it uses as buffers, so a checkpoint holds every vector the model uses. To build
the model again around those weights (``distgen predict RUN``, ``distgen.load_run``) it still needs the table's width
and which names have a row (``can_embed``, the pre-flight); that is all this record holds, per file: the path as the
config gives it, ``key_column``, the width and the keys in file order (about the size of the key column, e.g. a few
hundred kB for a genome-wide gene table; no vectors).

Training collects the records while it builds the model (``collecting``) and writes them (``save``); loading a run
builds its model under ``recorded`` (``read``), where ``load_embedding_table(..., kept_in_state=True)`` of a recorded file
returns its keys with zero vectors instead of reading the file (the checkpoint's buffers replace them), so a run predicts
the same arrays whether or not the table file is still where training read it. A caller that does not keep the vectors
in its state (``kept_in_state`` false, the default: a plugin) reads the file as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distgen.atomic import atomic_write_text, read_record
from distgen.config import ConfigError

__all__ = ["TABLES_FILE", "TableRecord", "collecting", "read", "recorded", "save"]

TABLES_FILE = "embedding_tables.json"
FORMAT = "distgen embedding tables"
#: Bumped when a field changes meaning; a reader refuses a newer version than its own.
VERSION = 1


@dataclass(frozen=True)
class TableRecord:
    """One table file a model read: its path (as the config gives it), ``key_column``, vector width and keys."""

    source: str
    key_column: str | None
    width: int
    keys: tuple[str, ...]

    def stand_in(self) -> dict[str, np.ndarray]:
        """The table as a conditioner built around checkpoint weights needs it: every key, zero vectors of the width."""
        zero = np.zeros(self.width, dtype=np.float32)
        return {k: zero for k in self.keys}


@dataclass
class _Collect:
    found: dict[tuple[str, str | None], TableRecord]


@dataclass(frozen=True)
class _Recorded:
    tables: dict[tuple[str, str | None], TableRecord]
    run_dir: Path


_ACTIVE: contextvars.ContextVar[_Collect | _Recorded | None] = contextvars.ContextVar("distgen_tables", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[TableRecord]]:
    """Within, every table file ``load_embedding_table`` reads is recorded; the list holds them on exit (training)."""
    state = _Collect({})
    out: list[TableRecord] = []
    token = _ACTIVE.set(state)
    try:
        yield out
    finally:
        _ACTIVE.reset(token)
        out.extend(state.found.values())


@contextlib.contextmanager
def recorded(tables: Sequence[TableRecord] | None, run_dir: str | Path) -> Iterator[None]:
    """Within, a table file of ``tables`` is not read (``TableRecord.stand_in``); ``tables`` None: the run holds no record
    (trained before runs kept one), so a missing file is an error naming ``run_dir``."""
    token = _ACTIVE.set(_Recorded({(t.source, t.key_column): t for t in tables or ()}, Path(run_dir)))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def stand_in(source: str, key_column: str | None) -> dict[str, np.ndarray] | None:
    """The recorded stand-in for a table file while a run is loaded (``recorded``), else None (read the file)."""
    state = _ACTIVE.get()
    if isinstance(state, _Recorded):
        rec = state.tables.get((source, key_column))
        return None if rec is None else rec.stand_in()
    return None


def missing_file(where: str) -> ConfigError:
    """The error for a table file that is not there: what a trained run does without it, or what training needs."""
    state = _ACTIVE.get()
    if isinstance(state, _Recorded):
        return ConfigError(
            f"{where} does not exist, and the run {state.run_dir} keeps no record of it ({TABLES_FILE}: runs trained "
            "before distgen kept one), so loading it reads the table again to rebuild its model. Put the table file back at "
            "that path (the vectors themselves come from the checkpoint)")
    return ConfigError(
        f"{where} does not exist; training reads the perturbation vectors from this file (a trained run keeps them in "
        "its checkpoint and needs it no more): give the path of the table (.csv, .tsv or .parquet, one row per name)")


def note(source: str, key_column: str | None, table: dict[str, np.ndarray]) -> None:
    """Record a table file just read, when collecting (training)."""
    state = _ACTIVE.get()
    if isinstance(state, _Collect):
        width = int(next(iter(table.values())).shape[0])
        state.found[(source, key_column)] = TableRecord(source, key_column, width, tuple(table))


def save(folder: str | Path, tables: Sequence[TableRecord]) -> None:
    """Write ``TABLES_FILE`` into ``folder`` (nothing when the model read no table file)."""
    if not tables:
        return
    doc = {"format": FORMAT, "version": VERSION,
           "about": "the embedding-table files the model read at training: width and keys, no vectors (those are in the checkpoint)",
           "tables": [{"source": t.source, "key_column": t.key_column, "width": t.width, "keys": list(t.keys)} for t in tables]}
    atomic_write_text(Path(folder) / TABLES_FILE, json.dumps(doc))


def read(folder: str | Path) -> list[TableRecord] | None:
    """The table records of the run in ``folder``; None when it has no ``TABLES_FILE``."""
    doc = read_record(Path(folder) / TABLES_FILE, FORMAT, VERSION, "embedding-table record",
                      "restore it from the run's copy")
    if doc is None:
        return None
    return [TableRecord(str(t["source"]), None if t.get("key_column") is None else str(t["key_column"]), int(t["width"]),
                        tuple(str(k) for k in t["keys"])) for t in doc["tables"]]
