"""What a trained run keeps of the embedding-table files its model read: ``embedding_tables.json`` in the run folder.

A table conditioner (``embedding_table``, ``covariate`` with ``perturbation="table"`` or a ``context_table``) reads its
file at construction and keeps the rows it uses as buffers, so a checkpoint holds every vector the model uses. To build
the model again around those weights (``distgen predict RUN``, ``distgen.load_run``) it still needs the table's width
and which names have a row (``can_embed``, the pre-flight); that is all this record holds, per file: the path as the
config gives it, ``key_column``, the width, the keys in file order (about the size of the key column, e.g. a few
hundred kB for a genome-wide gene table; no vectors) and the file's sha256.

Training collects the records while it builds the model (``collecting``) and writes them (``save``); loading a run
builds its model under ``recorded`` (``read``), where ``load_embedding_table(..., kept_in_state=True)`` of a recorded file
that is gone returns its keys with zero vectors (the checkpoint's buffers replace them), so a run predicts the same
arrays whether or not the table file is still where training read it. The checkpoint's vectors are the truth: where the
file is there, it is read, and ``LoadingTables.check`` warns, naming the file and the checkpoint, when its vectors
(after the conditioner's own standardisation) are not the checkpoint's, or it holds other names or cannot be read; the run
predicts with the checkpoint's either way. A file whose bytes are those training read (its sha256, recorded then) is not
parsed again: its vectors are the ones the checkpoint's buffers were made from (parsing a genome-wide CSV takes seconds,
hashing it a fraction of one); any other content, a record without the hash (written before it was kept) or a run
without a record, is parsed and compared as above. A conditioner names the buffers it filled from a table file in
``table_sources`` (buffer name -> ``(path, key_column)``). A caller that does not keep the vectors in its state
(``kept_in_state`` false, the default: a plugin) reads the file as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen.atomic import atomic_write_text, read_record
from distgen.config import ConfigError
from distgen.errors import warn

__all__ = ["TABLES_FILE", "LoadingTables", "TableRecord", "collecting", "read", "recorded", "save"]

TABLES_FILE = "embedding_tables.json"
FORMAT = "distgen embedding tables"
#: Bumped when a field changes meaning; a reader refuses a newer version than its own.
VERSION = 1


@dataclass(frozen=True)
class TableRecord:
    """One table file a model read: its path (as the config gives it), ``key_column``, vector width, keys and ``sha256`` (of
    the file's bytes as read; None in records written before it was kept, or when the file changed while it was read)."""

    source: str
    key_column: str | None
    width: int
    keys: tuple[str, ...]
    sha256: str | None = None

    def stand_in(self) -> dict[str, np.ndarray]:
        """The table as a conditioner built around checkpoint weights needs it: every key, zero vectors of the width."""
        zero = np.zeros(self.width, dtype=np.float32)
        return {k: zero for k in self.keys}


@dataclass
class _Collect:
    found: dict[tuple[str, str | None], TableRecord]


Key = tuple[str, str | None]  # (path as the config gives it, key_column)


@dataclass
class LoadingTables:
    """The table files of a run whose model is being built around checkpoint weights (``recorded``): ``tables`` the run's
    records (None: it holds none), and what building read of the files that are there, for ``check``."""

    tables: dict[Key, TableRecord] | None
    run_dir: Path
    read_files: set[Key] = field(default_factory=set)  # read, with the recorded keys and width: vectors compared in check
    findings: dict[Key, str] = field(default_factory=dict)  # there, but not used: why (other names, unreadable)
    read_tables: dict[Key, dict[str, np.ndarray]] = field(default_factory=dict)  # what was read, by file
    unchanged: set[Key] = field(default_factory=set)  # the bytes training read (the recorded sha256): not parsed, not compared

    def check(self, model: Any, state: Mapping[str, torch.Tensor], checkpoint: str | Path) -> None:
        """Warn, naming the file and ``checkpoint``, of each table file read while ``model`` was built whose vectors are not
        ``state``'s (the checkpoint's buffers, which the run uses), and of each file there but not read (``findings``)."""
        said: set[Key] = set()
        for key, why in self.findings.items():
            said.add(key)
            warn(f"embedding table {key[0]!r} {why}; the run {str(self.run_dir)!r} predicts with the vectors its checkpoint "
                 f"{str(checkpoint)!r} holds (those it was trained with) and the names its {TABLES_FILE} records, not the file's. "
                 "Put the training's table back at that path to silence this, or train again to use the new one")
        for prefix, module in model.named_modules():
            for buffer, key in (getattr(module, "table_sources", None) or {}).items():
                if key not in self.read_files or key in said:
                    continue
                mine, name = module.get_buffer(buffer), f"{prefix}.{buffer}" if prefix else buffer
                theirs = state.get(name)
                if theirs is None or torch.equal(mine, theirs.to(mine.device, mine.dtype)):
                    continue  # (a checkpoint without the buffer is refused by the caller)
                said.add(key)
                warn(f"embedding table {key[0]!r} does not hold the vectors the run {str(self.run_dir)!r} was trained with: "
                     f"{_difference(mine, theirs)} of {name} differ from those its checkpoint {str(checkpoint)!r} holds. The "
                     "run predicts with the checkpoint's; the file was edited or replaced since training. Put the training's "
                     "table back at that path to silence this, or train again to use the new vectors")


def _difference(mine: torch.Tensor, theirs: torch.Tensor) -> str:
    """How ``mine`` (from the file) and ``theirs`` (the checkpoint's) differ, in words."""
    if mine.shape != theirs.shape:
        return f"the shape ({tuple(mine.shape)} from the file, {tuple(theirs.shape)} in the checkpoint)"
    a, b = mine.detach().cpu().double(), theirs.detach().cpu().double()
    rows = (a != b).reshape(a.shape[0], -1).any(1) if a.ndim else (a != b).reshape(1)
    return f"{int(rows.sum())} of {rows.numel()} rows (largest difference {float((a - b).abs().max()):.3g})"


_ACTIVE: contextvars.ContextVar[_Collect | LoadingTables | None] = contextvars.ContextVar("distgen_tables", default=None)


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
def recorded(tables: Sequence[TableRecord] | None, run_dir: str | Path) -> Iterator[LoadingTables]:
    """Within, a table file of ``tables`` need not be there (``TableRecord.stand_in``); ``tables`` None: the run holds no
    record (trained before runs kept one), so a missing file is an error naming ``run_dir``. Yields the ``LoadingTables``
    whose ``check`` compares what was read of the files with the checkpoint's buffers (call it before loading them)."""
    state = LoadingTables(None if tables is None else {(t.source, t.key_column): t for t in tables}, Path(run_dir))
    token = _ACTIVE.set(state)
    try:
        yield state
    finally:
        _ACTIVE.reset(token)


def recorded_table(source: str, key_column: str | None) -> TableRecord | None:
    """The run's record of a table file while its model is built (``recorded``), else None (read the file)."""
    state = _ACTIVE.get()
    if isinstance(state, LoadingTables) and state.tables is not None:
        return state.tables.get((source, key_column))
    return None


def loading_table(record: TableRecord, path: Path, read_file: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The table a conditioner is built with while its run loads (``recorded``): the file's when it is there and holds the
    names and width the run recorded (its vectors are compared with the checkpoint's by ``LoadingTables.check``), else the
    stand-in (``TableRecord.stand_in``; why, when the file is there, kept for ``check`` to say)."""
    state = _ACTIVE.get()
    key = (record.source, record.key_column)
    if not isinstance(state, LoadingTables) or not path.exists() or key in state.findings or key in state.unchanged:
        return record.stand_in()
    if key in state.read_files:  # a conditioner asking again (covariate: rows, then names): read once
        return state.read_tables[key]
    if record.sha256 is not None:
        try:
            same = file_sha256(path) == record.sha256
        except OSError:
            same = False  # read_file says why
        if same:  # training's bytes: the checkpoint's buffers were made from these very vectors
            state.unchanged.add(key)
            return record.stand_in()
    try:
        table = read_file()
    except (ValueError, OSError, ImportError) as exc:
        state.findings[key] = f"is there but cannot be read ({str(exc)[:200]})"
        return record.stand_in()
    width = int(next(iter(table.values())).shape[0])
    if tuple(table) != record.keys or width != record.width:
        gone, new = sorted(set(record.keys) - set(table))[:3], sorted(set(table) - set(record.keys))[:3]
        state.findings[key] = (f"holds other rows than at training ({len(table)} names of width {width} now, {len(record.keys)} of "
                               f"width {record.width} then" + (f"; gone: {gone}" if gone else "") + (f"; new: {new}" if new else "")
                               + ("; the same names in another order" if not gone and not new and width == record.width else "") + ")")
        return record.stand_in()
    state.read_files.add(key)
    state.read_tables[key] = table
    return table


def missing_file(where: str) -> ConfigError:
    """The error for a table file that is not there: what a trained run does without it, or what training needs."""
    state = _ACTIVE.get()
    if isinstance(state, LoadingTables):
        return ConfigError(
            f"{where} does not exist, and the run {state.run_dir} keeps no record of it ({TABLES_FILE}: runs trained "
            "before distgen kept one), so loading it reads the table again to rebuild its model. Put the table file back at "
            "that path (the vectors themselves come from the checkpoint)")
    return ConfigError(
        f"{where} does not exist; training reads the perturbation vectors from this file (a trained run keeps them in "
        "its checkpoint and needs it no more): give the path of the table (.csv, .tsv or .parquet, one row per name)")


def file_sha256(path: str | Path) -> str:
    """The sha256 of the bytes of ``path`` (read in blocks)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def stamp(path: str | Path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of ``path`` when collecting (training), to tell whether it changed while it was read; else None."""
    if not isinstance(_ACTIVE.get(), _Collect):
        return None
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def note(source: str, key_column: str | None, table: dict[str, np.ndarray], kept_in_state: bool = False,
         before: tuple[int, int] | None = None) -> None:
    """Record a table file just read, when collecting (training), with its sha256 when its ``stamp`` taken ``before`` it was
    read is still its own (else none: loading then parses it); while a run without a record loads, a file read for
    buffers (``kept_in_state``) is compared with the checkpoint's by ``LoadingTables.check``."""
    state = _ACTIVE.get()
    if isinstance(state, LoadingTables) and kept_in_state:
        state.read_files.add((source, key_column))
    elif isinstance(state, _Collect):
        width = int(next(iter(table.values())).shape[0])
        digest = None
        if before is not None:
            digest = file_sha256(source)
            if stamp(source) != before:  # written to while it was read (or hashed): its bytes may not be the table's
                digest = None
        state.found[(source, key_column)] = TableRecord(source, key_column, width, tuple(table), digest)


def save(folder: str | Path, tables: Sequence[TableRecord]) -> None:
    """Write ``TABLES_FILE`` into ``folder`` (nothing when the model read no table file)."""
    if not tables:
        return
    doc = {"format": FORMAT, "version": VERSION,
           "about": "the embedding-table files the model read at training: width and keys, no vectors (those are in the checkpoint)",
           "tables": [{"source": t.source, "key_column": t.key_column, "width": t.width, "keys": list(t.keys), "sha256": t.sha256}
                      for t in tables]}
    atomic_write_text(Path(folder) / TABLES_FILE, json.dumps(doc))


def read(folder: str | Path) -> list[TableRecord] | None:
    """The table records of the run in ``folder``; None when it has no ``TABLES_FILE``."""
    doc = read_record(Path(folder) / TABLES_FILE, FORMAT, VERSION, "embedding-table record",
                      "restore it from the run's copy")
    if doc is None:
        return None
    return [TableRecord(str(t["source"]), None if t.get("key_column") is None else str(t["key_column"]), int(t["width"]),
                        tuple(str(k) for k in t["keys"]), None if t.get("sha256") is None else str(t["sha256"])) for t in doc["tables"]]
