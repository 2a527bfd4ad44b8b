"""Reading the expression matrix out of an AnnData, checking it, and detecting its scale."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from distgen.errors import InputDataError, InputKeyError, warn
from distgen.logscale import extra_log1p, whole_ratio_cells
from distgen.types.layout import blank_message, blank_names, form_key, sparse_position_problem
from distgen.wording import counted, first_of

#: Largest value still plausible for log1p-normalised expression.
LOG_MAX = 20.0
#: ``PerturbationSchema.expression`` values that read ``adata.raw`` (scanpy keeps the unscaled log values there
#: before ``sc.pp.scale``); its genes are ``adata.raw.var_names``, which may be more than ``adata.var_names``.
RAW_SOURCES = ("raw", "raw/X")


def _values(x: Any) -> np.ndarray:
    """The stored values of a dense or sparse matrix (sparse: the non-zeros only)."""
    return np.asarray(x.data if sp.issparse(x) else x).ravel()


def as_sparse_matrix(x: Any) -> Any:
    """``x`` with a scipy sparse *array* (``csr_array``, ``csc_array``, ``coo_array``, ...; anndata keeps what it is given)
    as the sparse *matrix* of the same values (CSR, or CSC for a CSC array); anything else as it is. Row slices, ``.sum(1)``
    and scanpy's ``normalize_total`` give other shapes on the array kind (scanpy refused a ``csr_array`` of counts with
    "Data matrix has wrong shape (N, 1)")."""
    if not sp.issparse(x) or sp.isspmatrix(x):
        return x
    return sp.csc_matrix(x) if x.format == "csc" else sp.csr_matrix(x)


def read_expression(adata: Any, source: str) -> tuple[Any, list[str], str]:
    """``(matrix [N, G], gene names, kind)`` for ``source`` = ``"X"``, ``"raw"``, a layer or ``"obsm/<key>"``.

    ``kind`` is ``"genes"`` or ``"embedding"``. The matrix is returned as stored (dense or sparse; a scipy sparse array as
    the sparse matrix of its format, ``as_sparse_matrix``).
    """
    x, genes, kind = _stored_expression(adata, source)
    return as_sparse_matrix(x), genes, kind


def _stored_expression(adata: Any, source: str) -> tuple[Any, list[str], str]:
    if source == "X":
        if adata.X is None:
            layers = sorted(adata.layers.keys())
            raise InputDataError(
                "adata.X is None: set PerturbationSchema.expression (data.schema.expression) to a layer"
                + (f" ({', '.join(repr(k) for k in layers)})" if layers else "")
                + (", 'raw'" if adata.raw is not None else "") + " or 'obsm/<key>'"
            )
        return adata.X, [str(g) for g in adata.var_names], "genes"
    if source in RAW_SOURCES:
        if adata.raw is None:
            raise InputKeyError(f"expression={source!r}: the AnnData has no .raw; layers: {sorted(adata.layers.keys())}")
        return adata.raw.X, [str(g) for g in adata.raw.var_names], "genes"
    if source.startswith("obsm/"):
        key = source[5:]
        if key not in adata.obsm:
            raise InputKeyError(f"expression={source!r}: obsm has no key {key!r}; available: {sorted(adata.obsm.keys())}")
        m = adata.obsm[key]
        m = m.to_numpy() if hasattr(m, "to_numpy") else m
        return m, [f"{key}_{i}" for i in range(m.shape[1])], "embedding"
    layer = source[7:] if source.startswith("layers/") else source
    if layer not in adata.layers:
        raise InputKeyError(
            f"expression={source!r}: not 'X', 'raw', a layer or 'obsm/<key>'; layers: {sorted(adata.layers.keys())}, "
            f"obsm: {sorted(adata.obsm.keys())}{', and adata.raw (expression: raw)' if adata.raw is not None else ''}"
        )
    return adata.layers[layer], [str(g) for g in adata.var_names], "genes"


def expression_var(adata: Any, source: str) -> Any:
    """The ``var`` frame that goes with ``read_expression(adata, source)``'s genes (``adata.raw.var`` for ``raw``)."""
    return adata.raw.var if source in RAW_SOURCES else adata.var


def check_unique_genes(genes: Any, where: str = "the data") -> None:
    """Raise on empty or blank gene names (``blank_names``: a column nothing can name) and on duplicated ones (which
    copy of a duplicated gene to read would be a guess). Warn on names that are one gene written two ways
    (``gene_twin_messages``)."""
    names = pd.Index([str(g) for g in genes])
    blank = blank_names(names)
    if blank:
        raise InputDataError(blank_message(list(names), blank, where))
    if not names.is_unique:
        dup = names[names.duplicated()].unique().tolist()[:5]
        raise InputDataError(f"duplicated gene names {dup}; make them unique first (adata.var_names_make_unique())")
    for message in gene_twin_messages(names):
        warn(message)


def check_unique_cells(names: pd.Index, where: str = "the AnnData") -> None:
    """Raise on a cell name (``obs_names``) that occurs more than once: the split, the written files and the leakage checks
    identify cells by name (in memory and on disk alike)."""
    if not names.is_unique:
        twice = [str(n) for n in names[names.duplicated()].unique()]
        raise InputDataError(
            f"{where}: {counted(len(twice), 'cell name')} {'occurs' if len(twice) == 1 else 'occur'} more than once: "
            f"{first_of(twice, 5, render=repr)}; the split, the written "
            "files and the leakage checks identify cells by name. Make them unique first: adata.obs_names_make_unique(), or "
            "concatenate lanes with anndata.concat(..., index_unique='-')")


#: Ways one gene is written twice in one file: (what differs, a name spelled one way). Letter case is not one of them:
#: ``TP53`` and ``Tp53`` are different genes in a mixed-species panel.
_GENE_FORMS: tuple[tuple[str, Any], ...] = (
    ("their Unicode form or invisible characters (the same text in other code points: 'é' as one character or as 'e' "
     "plus an accent, a zero-width space)", form_key),
    ("an Ensembl version suffix (ENSG00000141510.1 and ENSG00000141510.2)", lambda g: re.sub(r"^(ENS[A-Z]*\d+)\.\d+$", r"\1", g)),
    ("surrounding spaces ('TP53' and 'TP53 ', from a table exported with padded cells)", str.strip),
)


def gene_twin_messages(genes: Any) -> list[str]:
    """One message per way (``_GENE_FORMS``) in which distinct ``genes`` name one gene: each is read as a gene of its own
    (a column, a token, a DE test), and every table shows them alike; ``[]`` when none."""
    out = []
    for what, key in _GENE_FORMS:
        groups: dict[str, list[str]] = {}
        for g in map(str, genes):
            groups.setdefault(key(g), []).append(g)
        twins = [g for g in groups.values() if len(g) > 1]
        if twins:
            said = first_of(twins, 3, "; ", lambda g: " and ".join(map(ascii, g)))
            out.append(f"gene names {said} differ only by {what}: each is read as a gene of its own. If they are one gene, keep one "
                       "column per gene (adata = adata[:, keep].copy()) or write the names one way before loading")
    return out


def check_sparse_format(x: Any, what: str) -> None:
    """Refuse a malformed sparse matrix (``InputDataError``): positions stored as floats, bool or another non-integer type
    (``sparse_position_problem``), indices outside the matrix, a decreasing ``indptr``, arrays of mismatched lengths; and
    positions stored as uint64, which scipy cannot densify (a file's are re-typed when read: ``signed_positions``).
    anndata builds it from the file without a full check, and ``toarray`` then silently puts values in other cells (or
    past the array: scipy does not bounds-check there); the values would be scored or trained on as read."""
    if not sp.issparse(x) or x.format not in ("csr", "csc"):
        return
    for name in ("indices", "indptr"):  # refused before scipy casts them (sparse_position_problem)
        problem = sparse_position_problem(getattr(x, name))
        if problem is not None:
            raise InputDataError(f"{what} is a malformed sparse {x.format.upper()} matrix (its {name} {problem}): {_REWRITE}")
    for name in ("indices", "indptr"):  # a file's were re-typed when read (signed_positions): an AnnData built in memory
        if getattr(x, name).dtype == np.uint64:
            raise InputDataError(f"{what} is a sparse {x.format.upper()} matrix whose {name} are stored as uint64 values, "
                                 f"which scipy cannot densify (\"unsupported data types in input\"): re-type them first "
                                 f"(matrix.{name} = matrix.{name}.astype('int64')), or give distgen the file's path")
    try:  # on a shallow copy: check_format may re-type or trim the index arrays of the caller's matrix
        type(x)((x.data, x.indices, x.indptr), shape=x.shape, copy=False).check_format(full_check=True)
    except ValueError as e:
        raise InputDataError(f"{what} is a malformed sparse {x.format.upper()} matrix ({e}): {_REWRITE}") from None


def signed_positions(x: Any) -> None:
    """Re-type in place to int64 the positions (``indices``, ``indptr``) of a CSR/CSC matrix ``x`` stored as uint64 (as
    BPCells' AnnData writer stored its ``indptr`` before 2024), when they all fit: scipy densifies no uint64 positions
    ("unsupported data types in input"), where the h5py reader of a pair (``distgen.evaluation.h5pair``) and the streaming
    one read them. For a matrix distgen has just read from a file; anything else is left to ``check_sparse_format``.

    Every uint64 array is re-typed, whatever its values (scipy refuses the type, not a value), as an int64 view of the
    same memory: values below 2^63 read the same in both types, so nothing is copied (a copy would take 8 bytes per
    stored value: 400 MB and 66 ms for 50 million)."""
    if not sp.issparse(x) or x.format not in ("csr", "csc"):
        return
    for name in ("indices", "indptr"):
        positions = getattr(x, name)
        if positions.dtype == np.uint64 and (not positions.size or int(positions.max()) <= np.iinfo(np.int64).max):
            setattr(x, name, positions.view(np.int64))


#: The fix of a malformed sparse matrix (``check_sparse_format``).
_REWRITE = ("the file is damaged or was written by hand; write it again from the original data (adata.X = "
            "scipy.sparse.csr_matrix(dense); adata.write_h5ad(path))")


def check_values(x: Any, source: str, allow_negative: bool = False, has_raw: bool = False) -> None:
    """Raise on a malformed sparse matrix, on NaN/inf (and on negative values unless ``allow_negative``); ``has_raw``: the
    AnnData has a ``.raw`` to suggest."""
    check_sparse_format(x, f"expression {source!r}")
    v = _values(x)
    if v.size and not np.isfinite(v).all():
        n = int((~np.isfinite(v)).sum())
        raise InputDataError(f"expression {source!r} has {n} NaN/inf values; remove or impute them before loading (e.g. np.nan_to_num)")
    top = float(np.abs(v).max()) if v.size else 0.0
    if top > float(np.finfo(np.float32).max):  # float64 values past float32's range: inf in distgen's table, then NaN
        raise InputDataError(
            f"expression {source!r} holds values up to {top:.3g}, beyond float32's range ({float(np.finfo(np.float32).max):.3g}) "
            "in which distgen holds cells (they would become inf, and every normalised value of their cells NaN); no "
            "expression reaches it: check how the matrix was made, or load the raw counts (PerturbationSchema.expression)")
    if not allow_negative and v.size and float(v.min()) < 0:
        raise InputDataError(
            f"expression {source!r} has negative values (min {float(v.min()):.3g}); distgen expects counts or log1p-normalised "
            "values. Scaled/centred data (sc.pp.scale) cannot be used: load the unscaled values instead"
            + (" (this AnnData has a .raw, where scanpy keeps them before scaling: expression: raw)" if has_raw and source not in RAW_SOURCES
               else " (a layer: PerturbationSchema.expression)")
        )


def check_normalisable(n_genes: int, source: str) -> None:
    """Refuse counts of a single gene for ``normalize_total``: a cell's counts over one gene sum to that count, so every
    cell with a count would become ``log1p(target_sum)`` and every other 0, whatever was measured (``InputDataError``)."""
    if n_genes == 1:
        raise InputDataError(
            f"expression {source!r} holds counts of 1 gene: normalize_total divides each cell by its total over the genes given, "
            "which for one gene is its own count, so every cell with a count would read log1p(target_sum) and the rest 0 (the "
            "count itself lost). Normalise over the whole transcriptome first and load the log values of this gene "
            "(sc.pp.normalize_total, sc.pp.log1p, then adata[:, [gene]]), or keep more genes"
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


#: Bases of ``log(1 + x)`` that ``log_base`` tells apart (natural first: what distgen expects).
LOG_BASES = ((float(np.e), "natural log1p"), (2.0, "log2(1 + x)"), (10.0, "log10(1 + x)"))


def _sample_rows(x: Any, max_rows: int) -> np.ndarray:
    idx = np.unique(np.linspace(0, x.shape[0] - 1, min(x.shape[0], max_rows)).astype(np.int64))
    rows = x[idx]
    return np.asarray(rows.toarray() if sp.issparse(rows) else rows, dtype=np.float64)


def _undo_log(base: float) -> Callable[[np.ndarray], np.ndarray]:
    """``v -> base ** v - 1``: what undoes ``log_base(1 + x)``."""
    return lambda v: np.power(base, v) - 1.0


def log_base(x: Any, max_rows: int = 200, min_cells: int = 10) -> tuple[float, str] | None:
    """``(base, name)`` of ``log_base(1 + c / s)`` values ``x`` [N, G] of counts ``c`` scaled per cell; None when unclear.

    In such data a cell's ``base ** x - 1`` are its counts divided by one number, so their ratios to the
    cell's smallest non-zero value (most often a count of 1; halves to quarters are allowed for a smallest
    count of 2 to 4) are whole numbers in the right base only.
    This holds after a gene selection too. A base is returned when at least 90% of the (at most
    ``max_rows``) cells looked at, with 5 or more non-zero values each, give whole ratios in it.
    """
    dense = _sample_rows(x, max_rows)
    if not dense.size or float(dense.max()) >= LOG_MAX:
        return None
    whole = [whole_ratio_cells(dense, _undo_log(base)) for base, _ in LOG_BASES]
    n = whole[0][1]
    if n < min_cells:
        return None
    best = int(np.argmax([w for w, _ in whole]))
    return LOG_BASES[best] if whole[best][0] >= 0.9 * n else None


def log1p_of_unnormalised_counts(x: Any, max_rows: int = 200, min_cells: int = 10) -> bool:
    """True when log1p values ``x`` [N, G] are ``log1p`` of raw counts: ``sc.pp.log1p`` without ``sc.pp.normalize_total``.

    Each cell's ``expm1(x)`` are then whole numbers (its counts, over a size factor of 1) and the cells' totals differ
    (their library sizes). Required of at least 90% of the (at most ``max_rows``) cells looked at with 5 or more
    non-zero values each; log1p of normalised counts gives whole numbers only for a cell whose total happened to be
    the target.
    """
    dense = _sample_rows(x, max_rows)
    if not dense.size or float(dense.max()) >= LOG_MAX:
        return False
    whole, totals = 0, []
    for row in dense:
        v = row[row > 0]
        if v.size < 5:
            continue
        u = np.expm1(v.astype(np.float64))
        totals.append(float(u.sum()))
        whole += float(np.mean(np.abs(u - np.round(u)) < 0.01)) > 0.95 and float(u.min()) > 0.5
    n = len(totals)
    if n < min_cells or whole < 0.9 * n:
        return False
    return float(np.std(totals)) > 1e-3 * float(np.mean(totals))


def normalised_total(x: Any, max_rows: int = 200, rtol: float = 1e-3) -> float | None:
    """The ``normalize_total`` target of log1p values ``x`` when every cell's ``expm1(x)`` sums to it, else None.

    Recognisable only when the data kept every gene after normalising (not after a gene selection).
    """
    dense = _sample_rows(x, max_rows)
    dense = dense[(dense > 0).any(axis=1)]
    if len(dense) < 2 or float(dense.max()) >= LOG_MAX:
        return None
    sums = np.expm1(dense).sum(axis=1)
    mean = float(sums.mean())
    return mean if mean > 0 and float(np.abs(sums - mean).max()) <= rtol * mean else None


#: Counts scaled per cell (``sc.pp.normalize_total``, counts over a size factor) are, in each cell, whole multiples
#: ``n * s`` of one step ``s`` (the cell's factor), its smallest non-zero value ``n_min * s`` with a count ``n_min`` of 1
#: to ``MAX_SMALLEST_COUNT``. ``scaled_counts`` looks for ``s`` as the cell's smallest value over ``n_min``, trying
#: ``n_min`` of 1 to 6 (a shallow cell's smallest counts) and the number of the cell's smallest gaps between distinct
#: values in its smallest value (two consecutive counts one step apart: a deep cell, a panel of highly expressed genes).
#: A deeper cell's values are too close together to tell multiples of one step from log values.
MAX_SMALLEST_COUNT = 1000
#: The grids of values stored as whole numbers or rounded to one to three decimals. Every value of such a cell is a
#: multiple of its grid step (and of that step over any ``k``) whatever the transform, log values included, so a step
#: on this grid is the rounding's, not the cell's (``_cell_scaled``).
ROUNDING_STEPS = (1.0, 0.1, 0.01, 0.001)
#: A float format's values between ``2**e`` and ``2**(e+1)`` are whole multiples of ``2**(e + 1 - bits)``: bfloat16's 8
#: significant bits bring that power of two within ``MAX_SMALLEST_COUNT`` steps of a cell's smallest value (log values
#: stored at bfloat16's precision, a model's output), so a power-of-two step is bfloat16's grid when every value of the
#: cell fits in 8 significant bits. Counts scaled by a power of two do not when they hold a count that needs more (an
#: odd count above 256); float16's 11 bits put its grid 1,024 to 2,047 steps in a cell's smallest value, past
#: ``MAX_SMALLEST_COUNT``.
BFLOAT16_BITS = 8
#: How close (relative) a cell's step must be to a grid step to be taken for it: the step is the cell's smallest value
#: over a whole count, and float32 stores that value within ``2**-24`` (6e-8) of the one it stands for.
GRID_RTOL = 1e-6
#: The significant bits of the float formats narrower than float32 whose precision a cell's values may be held at
#: (bfloat16, float16), narrowest first: a cell whose every value fits one is judged at that format's precision.
NARROW_FORMAT_BITS = (BFLOAT16_BITS, 11)
#: The most a count's distance to a whole number may be, from the storage's precision alone, for a cell to tell at a
#: candidate step: past it a value anywhere between two counts would read as one.
MAX_PRECISION_SLACK = 0.25
#: The fewest distinct values a cell judged at a narrower format's precision needs: a few values fit some step within that
#: slack by chance (two always do; three of shallow bfloat16 log values did in 39 of 200 cells, five in none).
MIN_VALUES_AT_NARROW_PRECISION = 5


def _on_rounding_grid(v: np.ndarray) -> bool:
    """Whether every value of ``v`` is a whole multiple of 0.01 (values stored whole or rounded to one or two decimals),
    judged when the smallest is under 100, where float32 resolves 0.01 finely enough.

    Values stored rounded meet two rules, which give other answers merged: a cell on this grid cannot tell (``None``),
    and a candidate step equal to one of ``ROUNDING_STEPS`` is passed over in a cell that can (``_rounding_step``). On the
    0.01 grid every divisor of the grid's step fits the values too (whole numbers are multiples of 1/2 to 1/6), so passing
    over the grid's own step alone reads whole numbers and counts times 0.5 or 0.25 as scaled counts; and a cell on the
    0.001 grid holds true steps (counts over 8: 0.125), so it must keep telling, while a dense cell of log values rounded
    to three decimals (two of them 0.001 apart) would otherwise read as counts scaled by 0.001."""
    steps = v / 0.01
    return float(v.min()) < 100 and bool(np.all(np.abs(steps - np.round(steps)) <= 1e-4 + 1e-6 * steps))


def _within_bits(v: np.ndarray, bits: int) -> bool:
    """Whether every value of ``v`` has at most ``bits`` significant bits (is exact in a float format of that precision)."""
    mantissa = np.frexp(v)[0] * 2.0**bits
    return bool(np.all(mantissa == np.round(mantissa)))


def _rounding_step(step: float) -> bool:
    """Whether ``step`` is one of ``ROUNDING_STEPS``, to ``GRID_RTOL``."""
    return any(abs(step / s - 1) <= GRID_RTOL for s in ROUNDING_STEPS)


def _power_of_two(step: float) -> bool:
    """Whether ``step`` is a power of two, to ``GRID_RTOL``."""
    return abs(step / 2.0 ** round(math.log2(step)) - 1) <= GRID_RTOL


def _cell_scaled(v: np.ndarray) -> bool | None:
    """Whether a cell's non-zero values ``v`` (float64) are counts scaled by one factor (the rule above ``MAX_SMALLEST_COUNT``);
    None when they cannot tell: fewer than two distinct values (one value is a multiple of itself whatever the transform),
    or values on the rounding grid of 0.01 (``_on_rounding_grid``). A candidate step on the grid the values are stored on is
    the storage's, not the cell's, and is passed over: one of ``ROUNDING_STEPS``, or a power of two when every value fits
    bfloat16's precision (``BFLOAT16_BITS``). Each value's count is judged at float32's precision, or, where every value
    fits a narrower format (``NARROW_FORMAT_BITS``: bfloat16, float16), at that format's (``_narrow_rtol``). The format is
    asked once per cell, and only of a cell with a power-of-two candidate or a count off float32's precision."""
    u = np.unique(v)
    if u.size < 2 or _on_rounding_grid(v):
        return None
    ratio = v / u[0]
    gap = float(np.diff(u).min())
    # the gap's count is tried with three values or more: two values fit the step their gap gives by construction when
    # that count is large (float32's tolerance below is then wider than their distance to the grid)
    counts = {*range(1, 7), round(float(u[0]) / gap)} if u.size >= 3 else set(range(1, 7))
    bits: int | None = 0  # the narrowest format every value fits (None: none of them), asked when first needed (0: not yet)
    for n in sorted(c for c in counts if 1 <= c <= MAX_SMALLEST_COUNT):
        step = float(u[0]) / n
        if _rounding_step(step):
            continue
        if _power_of_two(step):
            bits = _narrow_bits(u) if bits == 0 else bits
            if bits == BFLOAT16_BITS:
                continue
        off = np.abs(ratio * n - np.round(ratio * n))
        if np.all(off <= 1e-3 + GRID_RTOL * ratio * n):  # float32's precision
            return True
        if u.size < MIN_VALUES_AT_NARROW_PRECISION:
            continue
        bits = _narrow_bits(u) if bits == 0 else bits
        rel = _narrow_rtol(bits)
        if rel is not None and float(ratio.max()) * n * rel <= MAX_PRECISION_SLACK and np.all(off <= 1e-3 + rel * ratio * n):
            return True
    return False


def _narrow_bits(u: np.ndarray) -> int | None:
    """The significant bits of the narrowest format of ``NARROW_FORMAT_BITS`` that holds every value of ``u``; None: none."""
    return next((b for b in NARROW_FORMAT_BITS if _within_bits(u, b)), None)


def _narrow_rtol(bits: int | None) -> float | None:
    """How far (relative) a count ``ratio * n`` of values held at ``bits`` significant bits may be from a whole number:
    ``2 ** (1 - bits)``, each of the two values of a ratio being within ``2 ** -bits`` of the one it stands for (float16
    ``9.8e-4``, bfloat16 ``7.8e-3``); None for values held at float32's precision or finer."""
    return None if bits is None else 2.0 ** (1 - bits)


def scaled_counts(x: Any, max_rows: int = 200) -> bool:
    """Whether most of up to ``max_rows`` cells of ``x`` that can tell (``_cell_scaled``: finite non-zero values) hold
    counts scaled per cell: each non-zero value a whole multiple of the cell's own step, at most ``MAX_SMALLEST_COUNT``
    steps in its smallest value. Log values of counts (``log1p``, scater's ``log2`` of counts over size factors) are not;
    nor are whole numbers or values rounded to one or two decimals (no cell of them tells)."""
    verdicts = [_cell_scaled(row[np.isfinite(row) & (row > 0)]) for row in _sample_rows(x, max_rows)]
    told = [s for s in verdicts if s is not None]
    return bool(told) and sum(told) > len(told) / 2


def few_above_log_range(x: Any) -> str:
    """A hint for fractional ``x`` refused as normalised but not log-transformed when only a few of its stored non-zero values
    (under 1%) reach ``LOG_MAX``: then they may be log values of another transform than log1p of ``normalize_total`` (scater's
    ``logcounts`` are log2 of counts over size factors, which pass 20 in a cell with a tiny size factor), which
    ``sc.pp.log1p`` would log a second time. Empty otherwise."""
    v = _values(x)
    v = v[np.isfinite(v) & (v != 0)]
    n = int((v >= LOG_MAX).sum())
    if not v.size or n >= 0.01 * v.size or scaled_counts(x):  # normalize_total of shallow cells: log1p is the fix
        return ""
    return (f". Only {n} of its {v.size} non-zero values ({100 * n / v.size:.2g}%) reach {LOG_MAX:g} (max {float(v.max()):.4g}): if these are "
            "log values of another transform (scater's logcounts, log2 of counts over size factors, pass 20 in cells with a tiny "
            "size factor), do not apply sc.pp.log1p to them (that logs them twice): give the raw counts instead "
            "(PerturbationSchema.expression: the counts layer, or adata.X = adata.layers['counts'])")


def resolve_scale(x: Any, declared: str, source: str, uns: dict[str, Any], target_sum: float | None = None) -> str:
    """Check the declared scale against the values; return ``"counts"`` or ``"log"``.

    Refuses combinations that would silently log twice or treat counts as log values, and log values
    in another base than ``log1p``'s (``sc.pp.log1p(adata, base=2)``). ``target_sum``: the schema's
    ``normalize_total`` target; log values normalised to another total warn (``distgen predict --counts``
    inverts the normalisation with it).
    """
    found = detect_scale(x)
    if found == "log" and declared != "counts":
        check_log_base(x, source, target_sum)
    if found == "log" and declared != "counts" and looks_exponentiated(x):
        total = float(np.asarray(x.sum(axis=1)).ravel()[0])
        warn(
            f"expression {source!r} looks normalised but not log-transformed: every cell sums to {total:.4g} "
            "(sc.pp.normalize_total without sc.pp.log1p). It is read as log-normalised; if it is not, apply sc.pp.log1p "
            "(or load the raw counts layer) first",
        )
    if found == "normalized" and declared == "counts":
        return "counts"  # declared fractional counts (ambient-corrected, e.g. SoupX): normalised and logged like counts
    if found == "normalized":
        raise InputDataError(
            f"expression {source!r} is fractional with values >= {LOG_MAX}: normalised but not log-transformed. "
            "Apply sc.pp.log1p yourself or load the raw counts layer (PerturbationSchema.expression); if these are "
            "fractional counts (e.g. ambient-corrected by SoupX or CellBender), declare them: PerturbationSchema.scale='counts'"
            + few_above_log_range(x)
        )
    if declared == "counts" and found != "counts":
        raise InputDataError(
            f"PerturbationSchema.scale='counts' but expression {source!r} holds non-integer values that look log-normalised; "
            "refusing to log them a second time. Use scale='log' (or 'auto'), or point expression at the counts layer"
        )
    if declared == "log" and found == "counts":
        vmax = float(_values(x).max()) if _values(x).size else 0.0
        if vmax > LOG_MAX:
            raise InputDataError(
                f"PerturbationSchema.scale='log' but expression {source!r} holds integers up to {vmax:.0f} (raw counts); "
                "use scale='counts' (or 'auto') so they are normalised and log-transformed once"
            )
        if vmax > 1.0:  # log1p-normalised values are never all whole numbers; 0/1 could be a binarised matrix
            warn(
                f"PerturbationSchema.scale='log' but expression {source!r} holds only whole numbers (up to {vmax:.0f}): they look like "
                "raw counts of a shallow panel, which would be read as log-normalised values as declared. Use scale='counts' (or "
                "'auto') so they are normalised and log-transformed once, or point expression at the log-normalised layer",
            )
        return "log"
    if declared == "auto" and found == "counts" and "log1p" in uns and source == "X":
        # scanpy's flag describes X, and log1p of a count is an integer only when the count is 0
        vmax = float(_values(x).max()) if _values(x).size else 0.0
        if vmax == 0.0:
            return "log"
        warn(
            f"adata.uns['log1p'] says X was log-transformed, but X holds integers up to {vmax:.0f}: read as raw counts (normalised "
            "and log-transformed once). The flag is left over from an earlier X (e.g. X = layers['counts'] after sc.pp.log1p); "
            "set PerturbationSchema.scale explicitly to silence this",
        )
    return declared if declared != "auto" else found


def check_log_base(x: Any, source: str, target_sum: float | None) -> None:
    """Refuse log values in another base than e; warn when they were normalised to another total than ``target_sum``."""
    found = log_base(x)
    extra = extra_log1p(_sample_rows(x, 200)) if found is None else 0
    if extra:
        undo = "np.expm1(" * extra + "adata.X" + ")" * extra
        raise InputDataError(
            f"expression {source!r} was log-transformed {extra + 1} times: {'np.expm1 of these values' if extra == 1 else f'np.expm1 applied {extra} times'} "
            "gives log1p-normalised values (each cell's expm1 of those are its counts over one size factor), so these are "
            f"log1p of {'them' if extra == 1 else 'log1p of them'}, squeezed towards 0 (a log1p value of 7 reads as "
            f"{np.log1p(7.0) if extra == 1 else np.log1p(np.log1p(7.0)):.2g}). Undo the extra log first: adata.X = {undo} "
            "(a layer: the same on adata.layers[...]), or load the raw counts (PerturbationSchema.expression)"
        )
    if found is not None and found[0] != float(np.e):
        base, name = found
        raise InputDataError(
            f"expression {source!r} holds {name} values (each cell's {base:g}**x - 1 are its counts over one size factor: "
            f"sc.pp.log1p(adata, base={base:g}), or scater's logcounts), not the natural log1p distgen expects; read as log1p "
            f"they would be {1 / np.log(base):.3g}x too large. Convert them first (adata.X = adata.X * np.log({base:g}) gives "
            "log1p of the same values; for a layer, adata.layers[...] likewise) or load the raw counts (PerturbationSchema.expression)"
        )
    if found is not None and log1p_of_unnormalised_counts(x):  # read as log-normalised, it was scored and trained as such
        warn(
            f"expression {source!r} looks like log1p of raw counts that were never normalised per cell (expm1 gives each "
            "cell's whole counts and the cells' totals differ: sc.pp.log1p without sc.pp.normalize_total). It is read as "
            "log-normalised, so each cell's library size is part of every value (and cells distgen normalises later, data.encode, "
            "are on another scale). Load the raw counts instead (PerturbationSchema.expression: a counts layer, or scale: counts "
            "on np.expm1 of these values), or apply sc.pp.normalize_total before sc.pp.log1p",
        )
        return
    total = normalised_total(x) if target_sum is not None else None
    if total is not None and target_sum is not None and abs(total - target_sum) > 1e-2 * target_sum:
        warn(
            f"expression {source!r} is log1p of counts normalised to {total:.4g} per cell, but PerturbationSchema.target_sum "
            f"is {target_sum:g}: counts that distgen normalises later (data.encode) would be on another scale than these cells. "
            f"Set data.schema.target_sum: {total:.4g} (PerturbationSchema.target_sum); distgen predict --counts inverts "
            f"with {total:.4g} either way",
        )


def to_dense_float32(x: Any, copy: bool = True) -> np.ndarray:
    """``[N, G]`` dense C-contiguous float32 copy of ``x``.

    A dense float32 ``x`` is copied too (``np.ascontiguousarray`` would hand back ``x`` itself, so the tensors built
    from it would share memory with the caller's ``adata.X``: editing the AnnData afterwards would change the data a
    model trains or is scored on). ``copy=False`` allows sharing for an array nobody else holds (a file just read).
    """
    arr = x.toarray() if sp.issparse(x) else np.asarray(x)
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if copy and not sp.issparse(x) and np.may_share_memory(out, arr):
        out = out.copy()
    return out
