"""A temp file beside an output, for writes that are published by ``os.replace`` (never read half-written).

``tempfile.mkstemp`` creates its file with mode ``0600`` whatever the umask, and ``os.replace`` keeps
that mode: a prediction or split written this way could be read by its owner only, so on a shared
cluster a colleague (or a job under a service account) could not read ``pred.h5ad`` or predict from the
run (``split.json``). ``temp_beside`` gives the temp file the mode a plain ``open(path, "w")`` would
(``0666`` less the umask), and a hidden name (``.pred.h5ad.x8k2.tmp``) that no ``*.h5ad`` pattern
picks up when a killed write leaves it behind.

Libraries that create their own file do the same: safetensors' ``save_file`` (0.8) writes ``0600`` whatever the umask.
``atomic_path`` gives the file at its temp path ``default_mode`` before the rename, whoever wrote it, and
``share_mode`` does it for a file written in place (the files of a checkpoint folder, published as a folder).

``atomic_path`` and ``atomic_write_text`` are the one way distgen publishes a small output (an evaluation's
tables, summaries, plots and page, a checkpoint's pointer, a run's manifest): written to such a temp file,
fsynced, renamed onto the target. A kill leaves the previous file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def default_mode() -> int:
    """The mode a new file gets from ``open``: ``0o666`` less the process umask."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: equal once resolved (a symlink, ``..``, a relative path), or, both existing, one
    file under two names (a hard link; another case of the name on a case-insensitive file system, as macOS and Windows
    have by default, where ``Data.h5ad`` is ``data.h5ad`` and a write to one replaces the other)."""
    pa, pb = os.path.realpath(os.path.abspath(a)), os.path.realpath(os.path.abspath(b))
    if pa == pb:
        return True
    try:
        return os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist (yet)
        return False


def share_mode(path: str | os.PathLike[str]) -> None:
    """Give ``path`` ``default_mode``: for a file a library created with a mode of its own (``0600``)."""
    os.chmod(path, default_mode())


def temp_beside(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(open descriptor, path) of a new hidden temp file in ``path``'s folder, with ``default_mode``; the caller writes,
    closes and ``os.replace``-s it onto ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.chmod(tmp, default_mode())  # not os.fchmod: Windows has it from Python 3.13 only (every output failed there)
    return fd, tmp


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """A temp path beside ``path`` to write to (``temp_beside``); on a clean exit it is fsynced and renamed onto ``path``.

    An exception (or a signal) inside the block leaves ``path`` as it was and removes the temp file. Writers that want
    a file name (``savefig``, ``write_h5ad``) write to the yielded path; give them the format explicitly, as its
    suffix is ``.tmp``.
    """
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        yield tmp
        share_mode(tmp)  # the writer may have made the file anew, with a mode of its own
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str, newline: str | None = None, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` through ``atomic_path`` (never half-written); ``newline`` and ``encoding`` as ``open``'s
    (``newline=""`` for csv text). UTF-8 unless told otherwise, whatever the locale's encoding (distgen's text files are
    UTF-8 on every machine). A file name that the file system gave as bytes its encoding does not decode (Python's
    ``surrogateescape`` form: a UTF-8 name under an ASCII locale) is written as those bytes, not refused."""
    with atomic_path(path) as tmp, open(tmp, "w", newline=newline, encoding=encoding, errors="surrogateescape") as fh:
        fh.write(text)


def read_record(path: str | os.PathLike[str], format: str, version: int, what: str, fix: str) -> dict[str, Any] | None:
    """The versioned JSON record at ``path`` (written with ``atomic_write_text``: ``{"format": ..., "version": ...}``);
    None when there is none. A damaged file, another format or a newer version is a ``ConfigError`` naming ``what`` (e.g.
    "data record") and, for damage or a newer version, ``fix`` (what the user can do instead)."""
    import json

    from distgen.config import ConfigError

    path = os.fspath(path)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): the run's {what} is damaged; {fix}") from None
    if not isinstance(doc, dict) or doc.get("format") != format:
        raise ConfigError(f"{path} is not a distgen {what} (format {format!r})")
    found = doc.get("version")
    if not isinstance(found, int) or found > version:
        raise ConfigError(f"{path} has version {found!r} of the {what} format, newer than this distgen reads ({version}): "
                          f"upgrade distgen, or {fix}")
    return doc
