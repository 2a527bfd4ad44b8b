"""A cheap fingerprint of an on-disk AnnData's content, recorded when a streamed run trains and checked when it predicts.

A split checks the file's cell names and labels (``data_hash``); the file stamp (``disk.file_stamp``) only tells a file
from one replaced while a ``DiskCells`` has it open. A file rewritten between training and ``predict_to_disk`` with the same
names and labels but other values was predicted without a word. ``content_fingerprint`` hashes what is cheap to read:
the names and labels (``DiskLabels.cells_hash``), the matrix's shape, dtype and stored-value count, and the stored values of
a fixed sample of rows, chosen by a seeded hash of the cells' names. Like the split's ``data_hash``, it is tied to the row
order (the names and labels are hashed in file order): a copy with its rows shuffled is another file to it.
A value changed outside the sampled rows, which keeps the count of stored values, is not seen: it is a sample, not a hash
of the whole matrix (which would read every row; docs/reliability.md gives the costs).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from distgen.data.disk import DiskCells
from distgen.data.disk_split import DiskLabels
from distgen.errors import InputDataError

__all__ = ["SAMPLE_ROWS", "check_fingerprint", "content_fingerprint"]

#: Rows whose stored values the fingerprint hashes (all of a smaller file).
SAMPLE_ROWS = 512
_KEY = "distgen-rows-001"  # pandas' hash_array key: 16 characters, fixed so that every run samples the same cells


def content_fingerprint(cells: DiskCells, rows: int = SAMPLE_ROWS) -> str:
    """``[N, G]`` file of ``cells`` -> a 16-hex-digit fingerprint of its names, labels, shape, dtype, stored-value count and
    the stored values (all genes, before any normalisation) of ``rows`` cells picked by a seeded hash of their names."""
    labels = DiskLabels(cells)
    names = np.asarray(labels._names, dtype=object)
    elem = cells._elem()
    h = hashlib.sha256()
    nnz = int(elem["indices"].shape[0]) if cells.sparse else -1
    dtype = str((elem["data"] if cells.sparse else elem).dtype)
    shape = elem.attrs.get("shape") if cells.sparse else elem.shape
    h.update(f"{labels.cells_hash}|{tuple(int(s) for s in shape)}|{dtype}|{nnz}".encode())
    k = min(int(rows), names.size)
    if k:
        key = pd.util.hash_array(names, hash_key=_KEY)
        pick = np.argpartition(key, k - 1)[:k] if k < names.size else np.arange(names.size)
        pick = pick[np.lexsort((names[pick].astype(str), key[pick]))]  # the order of the keys, not of the file's rows
        srt = np.sort(pick)
        x = cells._stored(srt)[np.searchsorted(srt, pick)]
        x.sort_indices()
        for i, row in enumerate(pick):
            start, stop = x.indptr[i], x.indptr[i + 1]
            h.update(str(names[row]).encode() + b"\x1f")
            h.update(np.ascontiguousarray(x.indices[start:stop], dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(x.data[start:stop], dtype=np.float32).tobytes() + b"\x1e")
    return h.hexdigest()[:16]


def check_fingerprint(cells: DiskCells, recorded: str, doing: str = "predict") -> None:
    """``InputDataError`` when ``cells``' file no longer has the fingerprint ``recorded`` when the run trained on it."""
    found = content_fingerprint(cells)
    if found != recorded:
        raise InputDataError(
            f"{cells.path} is not the file the run trained on: its content fingerprint is {found}, the run recorded {recorded} "
            "(the names and labels, the matrix's shape and stored values, and a sample of its rows; "
            "distgen.data.disk_fingerprint): it was rewritten or replaced since training, possibly with the same cell names "
            f"and labels; {doing} from the training file, or pass the fingerprint of this file only if it is meant to be "
            "another file")
