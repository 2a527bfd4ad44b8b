"""Reading the expression matrix out of an AnnData, checking it, and detecting its scale."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

#: Largest value still plausible for log1p-normalised expression.
LOG_MAX = 20.0
#: ``PerturbationSchema.expression`` values that read ``adata.raw`` (scanpy keeps the unscaled log values there
#: before ``sc.pp.scale``); its genes are ``adata.raw.var_names``, which may be more than ``adata.var_names``.
RAW_SOURCES = ("raw", "raw/X")


def _values(x: Any) -> np.ndarray:
    """The stored values of a dense or sparse matrix (sparse: the non-zeros only)."""
    return np.asarray(x.data if sp.issparse(x) else x).ravel()


def read_expression(adata: Any, source: str) -> tuple[Any, list[str], str]:
    """``(matrix [N, G], gene names, kind)`` for ``source`` = ``"X"``, ``"raw"``, a layer or ``"obsm/<key>"``.

    ``kind`` is ``"genes"`` or ``"embedding"``. The matrix is returned as stored (dense or sparse).
    """
    if source == "X":
        if adata.X is None:
            raise ValueError("adata.X is None; set PerturbationSchema.expression to a layer ('layers/counts') or 'obsm/<key>'")
        return adata.X, [str(g) for g in adata.var_names], "genes"
    if source in RAW_SOURCES:
        if adata.raw is None:
            raise KeyError(f"expression={source!r}: the AnnData has no .raw; layers: {sorted(adata.layers.keys())}")
        return adata.raw.X, [str(g) for g in adata.raw.var_names], "genes"
    if source.startswith("obsm/"):
        key = source[5:]
        if key not in adata.obsm:
            raise KeyError(f"expression={source!r}: obsm has no key {key!r}; available: {sorted(adata.obsm.keys())}")
        m = adata.obsm[key]
        m = m.to_numpy() if hasattr(m, "to_numpy") else m
        return m, [f"{key}_{i}" for i in range(m.shape[1])], "embedding"
    layer = source[7:] if source.startswith("layers/") else source
    if layer not in adata.layers:
        raise KeyError(
            f"expression={source!r}: not 'X', 'raw', a layer or 'obsm/<key>'; layers: {sorted(adata.layers.keys())}, "
            f"obsm: {sorted(adata.obsm.keys())}{', and adata.raw (expression: raw)' if adata.raw is not None else ''}"
        )
    return adata.layers[layer], [str(g) for g in adata.var_names], "genes"


def expression_var(adata: Any, source: str) -> Any:
    """The ``var`` frame that goes with ``read_expression(adata, source)``'s genes (``adata.raw.var`` for ``raw``)."""
    return adata.raw.var if source in RAW_SOURCES else adata.var


def check_values(x: Any, source: str, allow_negative: bool = False, has_raw: bool = False) -> None:
    """Raise on NaN/inf (and on negative values unless ``allow_negative``); ``has_raw``: the AnnData has a ``.raw`` to suggest."""
    v = _values(x)
    if v.size and not np.isfinite(v).all():
        n = int((~np.isfinite(v)).sum())
        raise ValueError(f"expression {source!r} has {n} NaN/inf values; remove or impute them before loading (e.g. np.nan_to_num)")
    if not allow_negative and v.size and float(v.min()) < 0:
        raise ValueError(
            f"expression {source!r} has negative values (min {float(v.min()):.3g}); distgen expects counts or log1p-normalised "
            "values. Scaled/centred data (sc.pp.scale) cannot be used: load the unscaled values instead"
            + (" (this AnnData has a .raw, where scanpy keeps them before scaling: expression: raw)" if has_raw and source not in RAW_SOURCES
               else " (a layer: PerturbationSchema.expression)")
        )


def detect_scale(x: Any, max_values: int = 2_000_000) -> str:
    """``"counts"`` (integer-valued), ``"log"`` (fractional, max < 20) or ``"normalized"`` (fractional, larger)."""
    v = _values(x)
    if v.size > max_values:
        v = v[np.linspace(0, v.size - 1, max_values).astype(np.int64)]
    if v.size == 0:
        return "log"
    frac = np.abs(v - np.round(v))
    if float(frac.max()) < 1e-6:
        return "counts"
    return "log" if float(v.max()) < LOG_MAX else "normalized"


def looks_exponentiated(x: Any, rtol: float = 1e-3) -> bool:
    """Whether fractional ``x`` [N, G] looks normalised but not log-transformed: every cell sums to the same total.

    ``sc.pp.normalize_total`` gives every cell the same sum; ``log1p`` of it (or any real expression)
    does not. Only data that kept every gene after normalising can be recognised this way.
    """
    if x.shape[0] < 2:
        return False
    sums = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    mean = float(sums.mean())
    return mean > 0 and float(np.abs(sums - mean).max()) <= rtol * mean


def resolve_scale(x: Any, declared: str, source: str, uns: dict[str, Any]) -> str:
    """Check the declared scale against the values; return ``"counts"`` or ``"log"``.

    Refuses combinations that would silently log twice or treat counts as log values.
    """
    found = detect_scale(x)
    if found == "log" and declared != "counts" and looks_exponentiated(x):
        total = float(np.asarray(x.sum(axis=1)).ravel()[0])
        warnings.warn(
            f"expression {source!r} looks normalised but not log-transformed: every cell sums to {total:.4g} "
            "(sc.pp.normalize_total without sc.pp.log1p). It is read as log-normalised; if it is not, apply sc.pp.log1p "
            "(or load the raw counts layer) first", UserWarning, stacklevel=2,
        )
    if found == "normalized" and declared == "counts":
        return "counts"  # declared fractional counts (ambient-corrected, e.g. SoupX): normalised and logged like counts
    if found == "normalized":
        raise ValueError(
            f"expression {source!r} is fractional with values >= {LOG_MAX}: normalised but not log-transformed. "
            "Apply sc.pp.log1p yourself or load the raw counts layer (PerturbationSchema.expression); if these are "
            "fractional counts (e.g. ambient-corrected by SoupX or CellBender), declare them: PerturbationSchema.scale='counts'"
        )
    if declared == "counts" and found != "counts":
        raise ValueError(
            f"PerturbationSchema.scale='counts' but expression {source!r} holds non-integer values that look log-normalised; "
            "refusing to log them a second time. Use scale='log' (or 'auto'), or point expression at the counts layer"
        )
    if declared == "log" and found == "counts":
        vmax = float(_values(x).max()) if _values(x).size else 0.0
        if vmax > LOG_MAX:
            raise ValueError(
                f"PerturbationSchema.scale='log' but expression {source!r} holds integers up to {vmax:.0f} (raw counts); "
                "use scale='counts' (or 'auto') so they are normalised and log-transformed once"
            )
        return "log"
    if declared == "auto" and found == "counts" and "log1p" in uns and source == "X":
        # scanpy's flag describes X, and log1p of a count is an integer only when the count is 0
        vmax = float(_values(x).max()) if _values(x).size else 0.0
        if vmax == 0.0:
            return "log"
        warnings.warn(
            f"adata.uns['log1p'] says X was log-transformed, but X holds integers up to {vmax:.0f}: read as raw counts (normalised "
            "and log-transformed once). The flag is left over from an earlier X (e.g. X = layers['counts'] after sc.pp.log1p); "
            "set PerturbationSchema.scale explicitly to silence this", UserWarning, stacklevel=2,
        )
    return declared if declared != "auto" else found


def to_dense_float32(x: Any) -> np.ndarray:
    """``[N, G]`` dense C-contiguous float32 copy."""
    arr = x.toarray() if sp.issparse(x) else np.asarray(x)
    return np.ascontiguousarray(arr, dtype=np.float32)
