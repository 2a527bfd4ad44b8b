"""Reading ``.h5ad`` files so that a bad file is named, with what it is instead, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distgen.errors import InputFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Offsets where HDF5 may place its superblock (a user block can precede it).
_HDF5_OFFSETS = (0, 512, 1024, 2048)


def sniff(path: Path) -> tuple[str, str]:
    """``(what the file looks like, what to do)`` from its first bytes, for error messages."""
    rewrite = "write it again with adata.write_h5ad(path)"
    try:
        with path.open("rb") as fh:
            head = fh.read(2056)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})", "check its permissions"
    if not head:
        return "an empty file", rewrite
    if any(head[o : o + 8] == HDF5_SIGNATURE for o in _HDF5_OFFSETS):
        return "an HDF5 file, but truncated, damaged or not written by anndata", f"copy it again or {rewrite}"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive", "unzip it first (a .zarr store is a folder, not a zip)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (never loaded: unpickling can run code)", f"load it where you trust it and {rewrite}"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")):
        return "a compressed file", "decompress it first"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an HDF5 file", rewrite
    return "a text file", "read a table with anndata.read_csv and save it with adata.write_h5ad"


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path`` if it is an existing file; else an ``InputFileError`` naming it and ``what`` it is for."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{what} {str(p)!r} does not exist; check the path")
    if p.is_dir():
        raise InputFileError(f"{what} {str(p)!r} is a folder; give the path of an .h5ad file")
    return p


def read_h5ad(path: str | Path, what: str = "data file") -> Any:
    """``anndata.read_h5ad(path)``; a missing, folder or unreadable file is an ``InputFileError`` that says why.

    ``what`` names the file's role in the message (``"--pred"``, ``"data.dataset"``...).
    """
    import anndata as ad

    p = check_input_file(path, what)
    try:
        return ad.read_h5ad(p)
    except MemoryError:
        raise
    except Exception as exc:  # h5py/anndata raise OSError, KeyError, TypeError... for damaged files
        kind, fix = sniff(p)
        detail = f" ({str(exc).splitlines()[0][:160]})" if kind.startswith("an HDF5") and str(exc) else ""
        raise InputFileError(f"{what} {str(p)!r} is not a readable .h5ad file: it is {kind}{detail}; {fix}") from None
