"""Load user-supplied perturbation embedding tables (GenePT, ESM2, fingerprints...) as name -> vector.

Accepted sources: a CSV/TSV or parquet file with one row per perturbation (names in the first
column, the index, or ``key_column``; every other column numeric), or a mapping name -> vector.
AnnData stays at the edge: ``distgen.data`` turns ``adata.uns[key]`` / ``adata.varm[key]`` into
such a mapping (``table_from_matrix``) before it reaches a conditioner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distgen.conditioners import table_record
from distgen.wording import counted, first_of

EmbeddingTable = dict[str, np.ndarray]


def table_from_matrix(names: Sequence[str], matrix: Any) -> EmbeddingTable:
    """``names [A]`` and a ``[A, F]`` matrix (numpy, torch, or a DataFrame's values) -> name -> vector."""
    arr = np.asarray(matrix, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(names):
        raise ValueError(f"embedding table: expected a [{len(names)}, F] matrix for {counted(len(names), 'name')}, got shape {arr.shape}")
    return {str(n): arr[i] for i, n in enumerate(names)}


def _numeric(dtype: Any) -> bool:
    """Whether a DataFrame column's dtype holds numbers: numpy's or pandas' own (nullable ``Int64``, ``Float64``). Text in
    pandas' string dtype (what ``read_csv`` gives under pandas 3) is not, and ``np.issubdtype`` refuses to look at it."""
    return getattr(dtype, "kind", "O") in "iufc"


def _from_frame(df: Any, key_column: str | None, where: str) -> EmbeddingTable:
    if key_column is not None:
        if key_column not in df.columns:
            raise ValueError(f"{where}: key_column {key_column!r} is not a column; columns: {list(df.columns)[:10]}")
        df = df.set_index(key_column)
    elif df.shape[1] and not _numeric(df.dtypes.iloc[0]):
        df = df.set_index(df.columns[0])
    bad = [c for c in df.columns if not _numeric(df[c].dtype)]
    if bad:
        raise ValueError(f"{where}: non-numeric column(s) {first_of(bad, 5, render=repr)}; name the key column with key_column")
    if df.shape[1] == 0:
        raise ValueError(f"{where}: no vector columns")
    return table_from_matrix([str(i) for i in df.index], df.to_numpy())


def load_embedding_table(source: str | Path | Mapping[str, Any], key_column: str | None = None,
                         what: str = "embedding table", kept_in_state: bool = False) -> EmbeddingTable:
    """Read an embedding table from a file path or a mapping; all vectors must have one length.

    ``what`` names the parameter in errors (``"embedding_table: table"``). ``kept_in_state``: the caller keeps every
    vector it uses in its state dict (buffers), so while a trained run's model is built (``table_record.recorded``) a
    file the run recorded need not be there: without it, its keys come with zero vectors, which the checkpoint's buffers
    replace; with it, the file is read so that loading can say when its vectors are not the checkpoint's
    (``table_record.LoadingTables.check``). A caller that does not say so (a plugin deriving something else from the
    vectors) reads the file always. A file that does not exist is a ``ConfigError`` saying what needs it.
    """
    if isinstance(source, Mapping):
        table = {str(k): np.asarray(v, dtype=np.float32).reshape(-1) for k, v in source.items()}
        return _checked(table, "embedding table mapping")
    path = Path(source)
    record = table_record.recorded_table(str(source), key_column) if kept_in_state else None
    if record is not None:
        return table_record.loading_table(record, path, lambda: _read_file(path, key_column))
    if not path.exists():
        raise table_record.missing_file(f"{what} {str(path)!r}")
    before = table_record.stamp(path)  # training: its sha256 is recorded when the file did not change while read
    table = _read_file(path, key_column)
    table_record.note(str(source), key_column, table, kept_in_state, before)
    return table


def _read_file(path: Path, key_column: str | None) -> EmbeddingTable:
    """The table in file ``path`` (``.csv``/``.tsv``/``.parquet``), checked (``_checked``)."""
    import pandas as pd

    where = f"embedding table {str(path)!r}"
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet"):
        df = pd.read_parquet(path)
    elif suffix.endswith((".csv", ".csv.gz")):
        df = pd.read_csv(path)
    elif suffix.endswith((".tsv", ".tsv.gz", ".txt")):
        df = pd.read_csv(path, sep="\t")
    else:
        raise ValueError(f"{where}: unsupported file type; use .csv, .tsv or .parquet (or pass a mapping name -> vector)")
    return _checked(_from_frame(df, key_column, where), where)


def _checked(table: EmbeddingTable, where: str) -> EmbeddingTable:
    """``table`` when it has rows, all of one length and finite; else a ``ValueError`` naming ``where``."""
    if not table:
        raise ValueError(f"{where} is empty")
    widths = {v.shape[0] for v in table.values()}
    if len(widths) != 1:
        raise ValueError(f"{where}: vectors have different lengths: {first_of(sorted(widths), 5)}")
    nonfinite = [k for k, v in table.items() if not np.isfinite(v).all()]
    if nonfinite:
        raise ValueError(f"{where}: non-finite values for {first_of(nonfinite, 5, render=repr)}")
    return table


__all__ = ["EmbeddingTable", "load_embedding_table", "table_from_matrix"]
