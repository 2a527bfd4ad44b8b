"""A cheap fingerprint of an on-disk AnnData's content, recorded when a streamed run trains and checked when it predicts.

A split checks the file's cell names and labels (``data_hash``); the file stamp (``disk.file_stamp``) only tells a file
from one replaced while a ``DiskCells`` has it open. A file rewritten between training and ``predict_to_disk`` with the same
names and labels but other values was predicted without a word. ``content_fingerprint`` hashes what is cheap to read:
the names and labels (``DiskLabels.cells_hash``), the matrix's shape, and the non-zero values (column and value, as the
run reads them: float32) of a fixed sample of rows, chosen by a seeded hash of the cells' names. It depends on the values,
not on how they are stored: the same matrix dense or CSR, float32 or float64 (values equal in float32), compressed or
not, with or without stored zeros, has one fingerprint (a CSC matrix is not streamed). Like the split's ``data_hash``, it
is tied to the row order (the names and labels are hashed in file order): a copy with its rows shuffled is another file.
A value changed outside the sampled rows is not seen: it is a sample, not a hash of the whole matrix (which would read
every row; docs/reliability.md gives the costs).

Fingerprints of the first form (``FORM`` 1: 16 hex digits, no prefix; the matrix's dtype and stored-value count hashed
too, so a dense copy or a float64 copy of a file had another) are still checked as they were written
(``check_fingerprint``): a run recorded with them predicts from the same file as before.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from distgen.data.disk import DiskCells
from distgen.data.disk_split import DiskLabels
from distgen.errors import InputDataError

__all__ = ["FORM", "SAMPLE_ROWS", "check_fingerprint", "content_fingerprint"]

#: Rows whose stored values the fingerprint hashes (all of a smaller file).
SAMPLE_ROWS = 512
_KEY = "distgen-rows-001"  # pandas' hash_array key: 16 characters, fixed so that every run samples the same cells
#: The form of the fingerprints written now: ``"2:"`` and 16 hex digits (form 1 had no prefix).
FORM = 2


def content_fingerprint(cells: DiskCells, rows: int = SAMPLE_ROWS, form: int = FORM) -> str:
    """``[N, G]`` file of ``cells`` -> ``"2:"`` and a 16-hex-digit fingerprint of its names, labels, shape and the non-zero
    values (all genes, before any normalisation, as float32) of ``rows`` cells picked by a seeded hash of their names.
    ``form=1``: the first form (also the dtype and the stored-value count; the stored values, explicit zeros included)."""
    if form not in (1, 2):
        raise ValueError(f"content_fingerprint form must be 1 or 2, got {form!r}")
    labels = DiskLabels(cells)
    names = np.asarray(labels._names, dtype=object)
    elem = cells._elem()
    h = hashlib.sha256()
    shape = tuple(int(s) for s in (elem.attrs.get("shape") if cells.sparse else elem.shape))
    if form == 1:
        nnz = int(elem["indices"].shape[0]) if cells.sparse else -1
        dtype = str((elem["data"] if cells.sparse else elem).dtype)
        h.update(f"{labels.cells_hash}|{shape}|{dtype}|{nnz}".encode())
    else:
        h.update(f"{labels.cells_hash}|{shape}".encode())
    k = min(int(rows), names.size)
    if k:
        key = pd.util.hash_array(names, hash_key=_KEY)
        pick = np.argpartition(key, k - 1)[:k] if k < names.size else np.arange(names.size)
        pick = pick[np.lexsort((names[pick].astype(str), key[pick]))]  # the order of the keys, not of the file's rows
        srt = np.sort(pick)
        x = cells._stored(srt)[np.searchsorted(srt, pick)]
        x.sort_indices()
        if form == 2:
            x.eliminate_zeros()  # a stored zero is a zero of the matrix (a dense file stores none in its rows read)
        for i, row in enumerate(pick):
            start, stop = x.indptr[i], x.indptr[i + 1]
            h.update(str(names[row]).encode() + b"\x1f")
            h.update(np.ascontiguousarray(x.indices[start:stop], dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(x.data[start:stop], dtype=np.float32).tobytes() + b"\x1e")
    digest = h.hexdigest()[:16]
    return digest if form == 1 else f"{form}:{digest}"


def check_fingerprint(cells: DiskCells, recorded: str, doing: str = "predict") -> None:
    """``InputDataError`` when ``cells``' file no longer has the fingerprint ``recorded`` when the run trained on it."""
    prefix = str(recorded).partition(":")[0] if ":" in str(recorded) else "1"  # the first form is checked as it was written
    if prefix not in ("1", str(FORM)):
        raise InputDataError(f"the recorded content fingerprint {recorded!r} is of a form this distgen does not know (it knows "
                             f"forms 1 and {FORM}): it was written by a newer distgen; predict with that version")
    form = int(prefix)
    found = content_fingerprint(cells, form=form)
    if found != recorded:
        raise InputDataError(
            f"{cells.path} is not the file the run trained on: its content fingerprint is {found}, the run recorded {recorded} "
            "(the names and labels, the matrix's shape, and the values of a sample of its rows; "
            "distgen.data.disk_fingerprint): it was rewritten or replaced since training, possibly with the same cell names "
            f"and labels; {doing} from the training file, or pass the fingerprint of this file only if it is meant to be "
            "another file")
