"""Reading ``.h5ad`` files (and ``.zarr`` stores) so that a bad file is named, with what it is instead, never a traceback."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
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


#: Files at the top of a zarr store (v2: ``.zgroup``; v3: ``zarr.json``), as ``AnnData.write_zarr`` writes one.
ZARR_MARKERS = (".zgroup", "zarr.json")


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a folder holding a zarr group (an AnnData written by ``write_zarr``)."""
    return path.is_dir() and any((path / m).is_file() for m in ZARR_MARKERS)


def check_input_file(path: str | Path, what: str) -> Path:
    """``path`` as a ``Path`` if it is an existing file or zarr store; else an ``InputFileError`` naming it and ``what`` it is for."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{what} {str(p)!r} does not exist; check the path")
    if p.is_dir() and not is_zarr_store(p):
        raise InputFileError(f"{what} {str(p)!r} is a folder (and not a zarr store); give the path of an .h5ad file "
                             "or of a .zarr store written by AnnData.write_zarr")
    return p


def read_h5ad(path: str | Path, what: str = "data file") -> Any:
    """``anndata.read_h5ad(path)`` (``anndata.read_zarr`` for a zarr store); a missing, folder or unreadable file is an
    ``InputFileError`` that says why. Sparse positions stored as uint64 are read as int64 (``_signed``).

    ``what`` names the file's role in the message (``"--pred"``, ``"data.dataset"``...).
    """
    import anndata as ad

    p = check_input_file(path, what)
    if p.is_dir():
        try:
            return _signed(ad.read_zarr(p))
        except (MemoryError, Warning):  # Warning: one the warning filters made an error (python -W error), not a damaged store
            raise
        except Exception as exc:  # a damaged store: zarr and anndata raise KeyError, ValueError...
            raise InputFileError(f"{what} {str(p)!r} is a zarr store that anndata cannot read "
                                 f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}); write it again "
                                 "with adata.write_zarr(path) or adata.write_h5ad(path)") from None
    try:
        return _signed(ad.read_h5ad(p))
    except (MemoryError, Warning):  # Warning: one the warning filters made an error (python -W error), not a damaged file
        raise
    except Exception as exc:  # h5py/anndata raise OSError, KeyError, TypeError... for damaged files
        if type(exc).__name__ == "IORegistryError":  # an encoding this anndata does not know: a newer anndata wrote it
            from importlib.metadata import version

            raise InputFileError(f"{what} {str(p)!r} was written by a newer anndata than the installed "
                                 f"{version('anndata')}, which cannot read part of it ({str(exc).split('. You may')[0][:160]}); "
                                 "the file is not damaged: pip install -U anndata") from None
        kind, fix = sniff(p)
        detail = f" ({str(exc).splitlines()[0][:160]})" if kind.startswith("an HDF5") and str(exc) else ""
        raise InputFileError(f"{what} {str(p)!r} is not a readable .h5ad file: it is {kind}{detail}; {fix}") from None


def _signed(adata: Any) -> Any:
    """``adata`` with the uint64 sparse positions of its ``X``, layers and ``raw.X`` re-typed to int64
    (``expression.signed_positions``)."""
    from distgen.data.expression import signed_positions

    raw = adata.raw
    for x in (adata.X, *adata.layers.values(), *([raw.X] if raw is not None else [])):
        signed_positions(x)
    return adata


def in_memory(adata: Any) -> Any:
    """``adata`` itself, or for a backed AnnData (``anndata.read_h5ad(path, backed="r")``) an in-memory copy
    (its file is left as it is): distgen reads every cell's values, which a backed ``X`` serves only slice by slice."""
    if not getattr(adata, "isbacked", False):
        return adata
    return adata.to_memory()


def older_encoding(path: Path) -> bool:
    """Whether ``path`` is an ``.h5ad`` written before anndata 0.7 (``obs`` and ``var`` stored as tables, not groups):
    ``anndata.read_h5ad`` reads it whole, but not by rows as ``distgen.data.disk.DiskCells`` reads."""
    if path.is_dir() or path.suffix == ".zarr":
        return False
    import h5py

    try:
        with h5py.File(path, "r") as root:
            return "obs" in root and "var" in root and not (hasattr(root["obs"], "keys") and hasattr(root["var"], "keys"))
    except OSError:  # not HDF5: the reader that follows names what it is
        return False


def stored_name(expression: str) -> str:
    """The element of an ``.h5ad`` file that ``PerturbationSchema.expression`` reads (as ``DiskCells`` finds it): ``X``,
    ``raw/X`` or ``layers/<name>``."""
    from distgen.data.expression import RAW_SOURCES

    if expression == "X":
        return "X"
    if expression in RAW_SOURCES:
        return "raw/X"
    return expression if expression.startswith("layers/") else f"layers/{expression}"


def csc_matrices(path: Path, reads: str | None = None) -> list[str]:
    """The expression matrices of ``.h5ad`` ``path`` (``X``, ``raw/X``, ``layers/<name>``) stored as CSC (column-major, as R
    converters and ``adata.X.tocsc()`` write them), which ``distgen.data.disk.DiskCells`` cannot read by rows; ``reads``
    (a ``PerturbationSchema.expression``): only the matrix it names (the others are never read by rows)."""
    if path.is_dir() or path.suffix == ".zarr":
        return []
    import h5py

    found: list[str] = []
    try:
        with h5py.File(path, "r") as root:
            names = ["X", "raw/X"] + [f"layers/{k}" for k in (root["layers"].keys() if "layers" in root else ())]
            for name in names if reads is None else [stored_name(reads)]:
                elem = root.get(name)
                if elem is not None and elem.attrs.get("encoding-type", "") == "csc_matrix":
                    found.append(name)
    except OSError:  # not HDF5: the reader that follows names what it is
        return []
    return found


def _as_csr(adata: Any) -> None:
    """Every CSC expression matrix of ``adata`` (``X``, ``raw.X``, layers) converted to CSR in place."""
    import scipy.sparse as sp

    if sp.issparse(adata.X) and adata.X.format == "csc":
        adata.X = adata.X.tocsr()
    if adata.raw is not None and sp.issparse(adata.raw.X) and adata.raw.X.format == "csc":
        adata.raw = type(adata)(X=adata.raw.X.tocsr(), obs=adata.obs[[]], var=adata.raw.var)
    for key in list(adata.layers.keys()):
        if sp.issparse(adata.layers[key]) and adata.layers[key].format == "csc":
            adata.layers[key] = adata.layers[key].tocsr()


@contextlib.contextmanager
def readable_by_rows(path: Path, what: str, reads: str | None = None) -> Iterator[Path]:
    """``path``, or, for a file in anndata's older encoding (``older_encoding``) or with a CSC expression matrix
    (``csc_matrices``; with ``reads``, a ``PerturbationSchema.expression``: the matrix it names only), a temporary copy of it
    written again in the current encoding, as CSR (read whole once, as training reads a file), removed on exit; a note on
    stderr says so and how to write the file once for all. ``what`` names the file in the note (``"--data"``)."""
    older = older_encoding(path)
    csc = [] if older else csc_matrices(path, reads)
    if not older and not csc:
        yield path
        return
    import warnings

    with tempfile.TemporaryDirectory(prefix="distgen-") as tmp:
        copy = Path(tmp) / path.name
        with warnings.catch_warnings():  # anndata's FutureWarnings about moving legacy uns entries: the note below says what matters
            warnings.simplefilter("ignore", FutureWarning)
            adata = read_h5ad(path, what)
            _as_csr(adata)
            adata.write_h5ad(copy)
        if older:
            print(f"note: {what} {str(path)!r} is stored in an older anndata encoding (before anndata 0.7), which cannot be read by "
                  f"rows: it was read whole and written again in the current one at {str(copy)!r} for this command (removed after it). "
                  "To skip that step: anndata.read_h5ad(path).write_h5ad(new_path)", file=sys.stderr)
        else:
            fix = "; ".join("adata.X = adata.X.tocsr()" if m == "X" else "raw = adata.raw.to_adata(); raw.X = raw.X.tocsr(); adata.raw = raw"
                            if m == "raw/X" else f"adata.layers[{m[7:]!r}] = adata.layers[{m[7:]!r}].tocsr()" for m in csc)
            print(f"note: {what} {str(path)!r} stores {', '.join(csc)} as CSC (column-major), which cannot be read by rows: it was "
                  f"read whole and written again as CSR at {str(copy)!r} for this command (removed after it). To skip that step: "
                  f"adata = anndata.read_h5ad(path); {fix}; adata.write_h5ad(new_path)", file=sys.stderr)
        yield copy
