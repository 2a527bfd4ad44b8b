"""A fast reader of a prediction/truth ``.h5ad`` pair for ``distgen evaluate --profile`` (h5py only, no AnnData).

``distgen.data.layout.read_pair`` reads through anndata, whose import (with pandas and zarr) costs
~0.6 s of CPU, a fifth of a one-shot ``distgen evaluate --profile`` run; this module reads the
same files with h5py (as ``layout.written_kinds`` already does) for the common, well-formed case:
anndata's on-disk encoding (``X`` dense or CSR/CSC; ``obs`` columns categorical or string arrays;
``var``'s index; ``uns["distgen"]["scale"]``). It reproduces ``read_pair``'s choices (perturbation
column and control label guessed in the same order, the same canonical conditions, the truth's
condition order) and returns None for anything else: another encoding, a missing column or control
label, duplicated genes, missing labels, different recorded scales. The caller then takes
``read_pair``, which reads what anndata reads and raises its errors with their fixes.
``tests/evaluation/test_h5pair.py`` checks that both readers give the same cells.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from distgen.evaluation.label_notes import combination_notes
from distgen.types import COMBO, Cells
from distgen.types.layout import (
    CELLTYPE_COL,
    CONTROL_LABELS,
    DELIMITER_KEY,
    DOSE_COLUMNS,
    MISSING_STRINGS,
    PERT_COLS,
    PERTURBATION_TYPE_KEY,
    TRUTH_KEY,
    LayoutInfo,
    MismatchedPair,
    blank_names,
    canonical_condition,
    check_pair,
    control_words,
    form_twins,
    pooled_contexts_note,
    spacing_twins,
    sparse_position_problem,
)


class _Unsupported(Exception):
    """Something the fast reader does not handle: the caller falls back to anndata."""


def _attr(node: Any, key: str) -> str | None:
    value = node.attrs.get(key)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _strings(ds: Any) -> np.ndarray:
    """A string dataset, or anndata's ``nullable-string-array`` (pandas' string dtype, the text default of
    pandas 3) without missing values, as an object array of ``str``."""
    if not hasattr(ds, "dtype"):
        if _attr(ds, "encoding-type") == "nullable-string-array" and "values" in ds and "mask" in ds:
            if np.asarray(ds["mask"][()]).any():
                raise _Unsupported("missing labels")
            return _strings(ds["values"])
        raise _Unsupported("not a string array")
    if ds.dtype.kind not in ("O", "S", "U"):
        raise _Unsupported("not a string array")
    return np.asarray(ds.asstr()[()], dtype=object)


def _column(group: Any, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(values as str, categories in order or None, codes or None)`` of a dataframe column.

    A missing label (a NaN code, a masked or "no value" string: ``MISSING_STRINGS``) is left to the
    anndata reader, which refuses it naming the column, the count and a few cells.
    """
    node = group[name]
    kind = _attr(node, "encoding-type")
    if kind == "categorical":
        cats = _strings(node["categories"])
        codes = np.asarray(node["codes"][()]).astype(np.int64)
        if codes.size and int(codes.min()) < 0:
            raise _Unsupported("missing labels")
        _refuse_missing(cats[np.unique(codes)].tolist())
        return cats[codes], cats, codes
    if kind in ("string-array", "nullable-string-array"):
        values = _strings(node)
        _refuse_missing(set(values.tolist()))
        return values, None, None
    raise _Unsupported(f"column encoding {kind!r}")


def _refuse_missing(labels: Any) -> None:
    if any(str(v).strip().lower() in MISSING_STRINGS for v in labels):
        raise _Unsupported("missing labels")


def _index(group: Any) -> np.ndarray:
    name = _attr(group, "_index")
    if name is None or _attr(group, "encoding-type") != "dataframe":
        raise _Unsupported("not an anndata dataframe")
    return _strings(group[name])


def _columns(group: Any) -> list[str]:
    order = group.attrs.get("column-order", [])
    return [c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(order).ravel().tolist()]


def _x_dtype(node: Any) -> Any:
    """The dtype of an ``X`` node's values (dense: the array's; sparse: its ``data``'s); None for another encoding."""
    if hasattr(node, "dtype"):
        return node.dtype
    return node["data"].dtype if "data" in node else None


def _matrix(node: Any) -> np.ndarray:
    """``X`` as a dense C-ordered float32 array."""
    kind = _attr(node, "encoding-type")
    if kind == "array" and hasattr(node, "dtype"):
        if node.dtype.kind not in ("f", "i", "u", "b"):
            raise _Unsupported("non-numeric X")
        return np.ascontiguousarray(node[()], dtype=np.float32)
    if kind in ("csr_matrix", "csc_matrix"):
        n_rows, n_cols = (int(v) for v in node.attrs["shape"])
        data = node["data"][()]
        indices = node["indices"][()]
        if data.dtype.kind not in ("f", "i", "u", "b") or data.shape != indices.shape:
            raise _Unsupported("malformed sparse X")
        key = _positions(kind, n_rows, n_cols, indices, node["indptr"][()])
        out = np.zeros(n_rows * n_cols, dtype=np.float32)
        out[key] = data  # cast as np.asarray(data, dtype=float32) casts
        return out.reshape(n_rows, n_cols)
    raise _Unsupported(f"X encoding {kind!r}")


def _positions(kind: str, n_rows: int, n_cols: int, indices: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """The row-major positions (``row * n_cols + column``) of a CSR/CSC matrix's stored entries, in stored order.

    Raises ``_Unsupported`` for what scipy refuses (a negative shape, a pointer of another length, not starting at 0,
    decreasing or not ending at the entries' count, a position outside the matrix) and for unsorted or duplicate
    entries. int32 where every position of the matrix fits (anndata writes int32 indices): the temporaries below take
    half the bytes of int64 ones, which dominate reading a truth of many cells; int64 otherwise."""
    n_major, n_minor = (n_rows, n_cols) if kind == "csr_matrix" else (n_cols, n_rows)
    indptr = _integers(indptr).astype(np.int64)
    counts = np.diff(indptr)
    if (n_rows < 0 or n_cols < 0 or indptr.shape != (n_major + 1,) or indptr[0] != 0 or indptr[-1] != indices.size
            or (counts.size and int(counts.min()) < 0)):
        raise _Unsupported("malformed sparse X")
    indices = _integers(indices)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n_minor):  # on the stored values: before any cast
        raise _Unsupported("sparse X with out-of-range indices")
    itype: type[np.signedinteger[Any]] = np.int32 if max(n_rows * n_cols, n_rows, n_cols) <= np.iinfo(np.int32).max else np.int64
    indices = indices.astype(itype, copy=False)
    key = np.repeat(np.arange(n_major, dtype=itype) * n_minor, counts)  # major * n_minor + minor
    key += indices
    if key.size > 1 and not bool((key[1:] > key[:-1]).all()):
        raise _Unsupported("non-canonical sparse X (unsorted or duplicate entries)")
    if kind == "csc_matrix":  # key -> the row-major position of (row = minor, column = major)
        key = indices * n_cols + (key - indices) // n_minor
    return key


def _integers(positions: np.ndarray) -> np.ndarray:
    """Stored sparse positions as they are when they are integers; raises ``_Unsupported`` otherwise (floats, whole or not,
    bool and other types: ``sparse_position_problem``, which the anndata reader refuses with)."""
    problem = sparse_position_problem(positions)
    if problem is not None:
        raise _Unsupported(f"sparse X whose positions {problem}")
    return positions


def _scale(f: Any, key: str = "scale") -> str | None:
    node = f.get(f"uns/distgen/{key}")
    if node is None:
        return None
    value = node[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _provenance(f: Any) -> dict[str, Any]:
    """``layout.recorded_provenance`` from h5py: the scalars under ``uns/distgen/provenance`` (``{}`` without the record)."""
    node = f.get("uns/distgen/provenance")
    if node is None or not hasattr(node, "keys"):
        return {}
    out: dict[str, Any] = {}
    for key in node:
        value = node[key][()]
        out[str(key)] = value.decode() if isinstance(value, bytes) else value.item() if isinstance(value, np.generic) else value
    return out


def _log_base(f: Any) -> float | None:
    """``layout.recorded_log_base`` from h5py: ``uns/log1p/base`` (``math.e`` when the record holds no base), or None."""
    import math

    node = f.get("uns/log1p")
    if node is None or not hasattr(node, "keys"):
        return None
    base = node.get("base")
    if base is None:
        return math.e
    try:
        return float(base[()])
    except (TypeError, ValueError):
        return None


def _natsorted(values: set[str]) -> list[str]:
    from natsort import natsorted

    return list(natsorted(values))


def _earlier_labels(present: dict[str, set[Any]]) -> bool:
    """Whether some label is a dose label written by an earlier distgen (``dexa@0.30000001192092896``, now ``dexa@0.3``)."""
    dosed = [str(v) for vs in present.values() for v in vs if "@" in str(v)]
    if not dosed:
        return False
    from distgen.types.doses import current_label  # only for labels with doses: the fast path stays light

    return any(current_label(v) != v for v in dosed)


def read_pair_fast(pred: Any, real: Any, pert_col: str | None = None, control: str | None = None,
                   celltype_col: str | None = None, guess_celltype: bool = True,
                   keep_float64: bool = False) -> tuple[Cells, Cells, LayoutInfo] | None:
    """``(pred, real, info)`` as ``layout.read_pair(pred, real, pert_col, control, celltype_col, guess_celltype=...)``
    gives them, or None (use it): a ``celltype_col`` missing from a file is left to it, which names the columns.

    The cells carry no names (``Cells.names`` is None): decoding one string per cell costs more than
    the rest of the file, and scoring does not read them. ``keep_float64``: a file with a float64 ``X`` is left to
    ``layout.read_pair`` (None), which reads it in float64."""
    if not all(isinstance(s, str | os.PathLike) and os.path.isfile(s) for s in (pred, real)):
        return None
    try:
        import h5py

        with h5py.File(real, "r") as fr, h5py.File(pred, "r") as fp:
            files = {"real": fr, "pred": fp}
            if any(_attr(f, "encoding-type") != "anndata" for f in files.values()):
                return None
            check_pair(_scale(fp, TRUTH_KEY), _scale(fr, TRUTH_KEY), pred, real)
            cols = {k: _columns(f["obs"]) for k, f in files.items()}
            if any(c in DOSE_COLUMNS for cs in cols.values() for c in cs):  # read_pair splits the doses (layout.split_doses)
                return None
            if pert_col is None:
                found = [c for c in PERT_COLS if all(c in cs for cs in cols.values())]
                if len(found) != 1:  # none, or several: anndata's reader refuses them when their labels differ
                    return None
                pert_col = found[0]
            if any(pert_col not in cs for cs in cols.values()):
                return None
            labels = {k: _column(f["obs"], pert_col) for k, f in files.items()}
            present = {k: set(v[0].tolist()) for k, v in labels.items()}
            if _earlier_labels(present):
                return None  # labels of an earlier distgen (dexa@0.30000001192092896): read_pair writes them as now (layout.current_dose_labels)
            given = control
            if control is None:
                hits = [c for c in CONTROL_LABELS if c in present["real"]]
                if len(hits) != 1:  # none, or several (anndata's reader refuses both, naming them)
                    return None
                control = hits[0]
            if any(control not in p for p in present.values()):
                return None
            words = control_words(given is not None or any(_scale(f, "control") == control for f in files.values()))  # layout.control_named
            celltype = celltype_col
            if celltype is None and guess_celltype and all(CELLTYPE_COL in cs for cs in cols.values()):
                celltype = CELLTYPE_COL
            if celltype is not None and (celltype == pert_col or any(celltype not in cs for cs in cols.values())):
                return None  # anndata's reader names what is wrong
            notes = [] if celltype is not None else pooled_contexts_note(cols["real"], lambda c: _values(fr["obs"], c))
            scales = {k: s for k, f in files.items() if (s := _scale(f)) is not None}
            delimiters = tuple(sorted({d for f in files.values() if (d := _scale(f, DELIMITER_KEY)) is not None and d != COMBO}))
            if any(spacing_twins(p, delimiters) or form_twins(p) for p in present.values()):  # the anndata reader refuses them, with counts and the fix
                return None
            kinds = {k: s for k, f in files.items() if (s := _scale(f, "kind")) is not None}
            bases = {k: b for k, f in files.items() if (b := _log_base(f)) is not None}
            provenance = _provenance(files["pred"])
            types = {k: t for k, f in files.items() if (t := _scale(f, PERTURBATION_TYPE_KEY)) is not None}
            if len(set(scales.values())) > 1:
                return None
            cats = labels["real"][1]
            order_labels = [str(c) for c in cats if c in present["real"]] if cats is not None else _natsorted(present["real"])
            order = tuple(dict.fromkeys(canonical_condition(v, control, delimiters, words) for v in order_labels))
            cells = {}
            sizes: dict[str, dict[str, int]] = {}  # cells per label of each file, for the notes on combination labels
            names = {k: [str(g) for g in _index(f["var"])] for k, f in files.items()}
            if set(names["pred"]) != set(names["real"]):  # different genes: the anndata reader says what differs and why
                return None
            if keep_float64 and any(_x_dtype(f["X"]) == np.float64 for f in files.values()):
                return None  # read as float64 by layout.read_pair (a profile scoring in the file's dtype)
            for k, f in files.items():
                genes = names[k]
                if len(set(genes)) != len(genes) or blank_names(genes):  # the anndata reader refuses them, naming the fix
                    return None
                x = _matrix(f["X"])
                if x.shape != (len(labels[k][0]), len(genes)):
                    return None
                values, cats, codes = labels[k]
                if cats is not None and codes is not None:  # one canonical label per category
                    conds = np.array([canonical_condition(c, control, delimiters, words) for c in cats.tolist()], dtype=object)[codes]
                else:
                    cache: dict[str, str] = {}
                    conds = np.array([cache[v] if v in cache else cache.setdefault(v, canonical_condition(v, control, delimiters, words))
                                      for v in values.tolist()], dtype=object)
                contexts = _column(f["obs"], celltype)[0] if celltype is not None else None
                if contexts is not None and form_twins(set(np.asarray(contexts).tolist())):
                    return None  # the anndata reader refuses them, naming them
                cells[k] = Cells(x, conds, genes, contexts, None, control, None)  # cell names: not needed to score
                if cats is not None and codes is not None:  # counted per category (anndata writes labels so), not per cell's text
                    per = np.bincount(np.asarray(codes)[np.asarray(codes) >= 0], minlength=len(cats))
                    sizes[k] = {str(c): int(n) for c, n in zip(cats.tolist(), per.tolist()) if n}
                else:
                    sizes[k] = {str(v): int(n) for v, n in zip(*np.unique(np.asarray(values).astype(str), return_counts=True))}
            notes += combination_notes(sizes, names["real"], control, delimiters, words, pert_col)
    except MismatchedPair:
        raise
    except (_Unsupported, OSError, KeyError, ValueError, TypeError):
        return None
    return cells["pred"], cells["real"], LayoutInfo(pert_col, control, celltype, notes, order, scales, kinds, bases, provenance, types)


def _values(group: Any, name: str) -> list[str] | None:
    """A column's values as ``str``, or None for one this reader does not decode (``pooled_contexts_note`` names it)."""
    try:
        return _column(group, name)[0].tolist()
    except (_Unsupported, OSError, KeyError, ValueError, TypeError):
        return None
