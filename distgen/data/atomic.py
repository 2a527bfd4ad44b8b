"""A temp file beside an output, for writes that are published by ``os.replace`` (never read half-written).

``tempfile.mkstemp`` creates its file with mode ``0600`` whatever the umask, and ``os.replace`` keeps
that mode: a prediction or split written this way could be read by its owner only, so on a shared
cluster a colleague (or a job under a service account) could not read ``pred.h5ad`` or predict from the
run (``split.json``). ``temp_beside`` gives the temp file the mode a plain ``open(path, "w")`` would
(``0666`` less the umask), and a hidden name (``.pred.h5ad.x8k2.tmp``) that no ``*.h5ad`` pattern
picks up when a killed write leaves it behind.
"""

from __future__ import annotations

import os
import tempfile


def default_mode() -> int:
    """The mode a new file gets from ``open``: ``0o666`` less the process umask."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def temp_beside(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(open descriptor, path) of a new hidden temp file in ``path``'s folder, with ``default_mode``; the caller writes,
    closes and ``os.replace``-s it onto ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.fchmod(fd, default_mode())
    return fd, tmp
