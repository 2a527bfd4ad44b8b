"""Log-normalised expression <-> raw counts: the math behind ``distgen predict --counts``.

distgen's tables hold ``x = log1p(c / s * T)``: the counts ``c`` of a cell of library size ``s``
(total counts, as ``scanpy.pp.normalize_total`` sums them) scaled to ``T = target_sum`` and
log-transformed. The inverse gives the expected counts of a cell of size ``s``::

    mu = expm1(x) * s / T

and an observation model turns ``mu`` into integers:

* ``round``: ``round(mu)`` (deterministic; exact for real cells whose own ``s`` is known);
* ``poisson``: ``c ~ Poisson(mu)``;
* ``nb``: ``c ~ NB(mean mu, dispersion theta_g)`` (gamma-Poisson), with per-gene ``theta_g`` fitted
  on training cells by ``fit_dispersion`` (method of moments that separates depth noise).

Library sizes: ``library_sizes`` reads them from an ``obs`` table (``distgen_library_size``, which
distgen records when it normalises raw counts at load, else a common column such as
``total_counts``); without one, every cell gets ``T`` (the normalised depth) and a note says so.
All functions here are pure (numpy in, numpy out); randomness comes from a passed generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from distgen.errors import InputDataError

#: Observation models of ``to_counts``.
COUNT_MODELS = ("round", "poisson", "nb")
#: ``obs`` column where distgen records each cell's total counts before normalisation.
LIBRARY_COL = "distgen_library_size"
#: Columns read as library sizes, in order, when ``LIBRARY_COL`` is absent.
LIBRARY_COLS = (LIBRARY_COL, "total_counts", "n_counts", "nCount_RNA", "ncounts", "UMI_count", "library_size")
#: Dispersions are clipped to this range (``theta`` above the top is Poisson for practical purposes).
THETA_MIN, THETA_MAX = 1e-2, 1e6
#: The largest expected count of one gene in one cell ``to_counts`` draws from: a million million molecules is no cell,
#: and numpy's Poisson sampler refuses means near 1e19 with a bare "lam value too large".
MU_MAX = 1e12


def check_model(model: str) -> str:
    """``model`` if it is one of ``COUNT_MODELS``, else a one-line error naming them."""
    if model not in COUNT_MODELS:
        raise ValueError(f"counts model must be one of {', '.join(COUNT_MODELS)}, got {model!r}")
    return model


def _sizes(size: Any, n: int) -> np.ndarray:
    s = np.broadcast_to(np.asarray(size, dtype=np.float64), (n,)).astype(np.float64)
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("library sizes must be finite and >= 0")
    return s[:, None]


def expected_counts(x: np.ndarray, size: Any, target_sum: float) -> np.ndarray:
    """``[N, G]`` expected counts ``expm1(x) * size / target_sum`` of log-normalised cells ``x [N, G]`` (``size``: ``[N]`` or scalar)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be [N, G], got shape {x.shape}")
    if target_sum <= 0:
        raise ValueError(f"target_sum must be > 0, got {target_sum}")
    with np.errstate(over="ignore"):  # an overflow is inf, which to_counts refuses by name
        return np.clip(np.expm1(x), 0.0, None) * (_sizes(size, len(x)) / float(target_sum))


def to_counts(
    x: np.ndarray,
    size: Any,
    target_sum: float,
    model: str = "poisson",
    dispersion: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``[N, G]`` non-negative integer counts (float32 holding integers) of log-normalised cells ``x``.

    ``model``: ``round``, ``poisson`` or ``nb`` (``dispersion`` ``[G]`` theta per gene, from
    ``fit_dispersion``; infinite theta is Poisson). ``rng`` draws the random models (default seed 0).
    """
    mu = expected_counts(x, size, target_sum)
    check_model(model)
    _check_expected(mu, x)
    rng = rng if rng is not None else np.random.default_rng(0)
    if model == "round":
        out = np.rint(mu)
    elif model == "poisson":
        out = rng.poisson(mu).astype(np.float64)
    else:
        if dispersion is None:
            raise ValueError("the nb counts model needs per-gene dispersions (fit_dispersion on training cells)")
        theta = np.asarray(dispersion, dtype=np.float64)
        if theta.shape != (mu.shape[1],):
            raise ValueError(f"dispersion must be [G={mu.shape[1]}], got shape {theta.shape}")
        theta = np.clip(np.nan_to_num(theta, nan=THETA_MAX, posinf=THETA_MAX), THETA_MIN, THETA_MAX)
        lam = rng.gamma(np.broadcast_to(theta, mu.shape), mu / theta)  # mean mu, variance mu^2 / theta
        out = rng.poisson(lam).astype(np.float64)
    return as_float32_counts(out, f"counts ({model})")


def _check_expected(mu: np.ndarray, x: np.ndarray) -> None:
    """Refuse expected counts no cell has (non-finite or above ``MU_MAX``), naming where and what the log value was."""
    bad = ~np.isfinite(mu) | (mu > MU_MAX)
    if not bad.any():
        return
    i, j = np.argwhere(bad)[0]
    raise ValueError(
        f"counts: {int(bad.sum())} expected count(s) are not finite or exceed {MU_MAX:.0e} (first: cell {i}, gene column {j}: "
        f"log-normalised value {float(np.asarray(x)[i, j]):.4g}, expected count {float(mu[i, j]):.4g}); values this large are "
        "not log-normalised expression. A model that was not trained, diverged, or was given weights of another scale gives "
        "them: look at its predictions without --counts (distgen predict without the flag) before converting"
    )


def to_lognorm(counts: np.ndarray, target_sum: float, size: Any = None) -> np.ndarray:
    """``log1p(counts / size * target_sum)`` (``size`` default: each row's total, as ``normalize_total``)."""
    c = np.asarray(counts, dtype=np.float64)
    s = c.sum(1) if size is None else np.broadcast_to(np.asarray(size, dtype=np.float64), (len(c),))
    s = np.where(s > 0, s, 1.0)
    return np.log1p(c / s[:, None] * float(target_sum)).astype(np.float32)


def fit_dispersion(x: np.ndarray, size: Any, target_sum: float, groups: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
    """``[G]`` NB dispersions ``theta_g`` of training cells ``x [N, G]`` (log-normalised, library sizes ``size``).

    Method of moments within each group (e.g. condition x context, so that perturbation effects do
    not count as noise): with ``u = expm1(x)`` (counts per ``target_sum``) and ``c ~ NB(s u, theta)``,
    ``Var(u) = mu * mean(T / s) + mu^2 / theta``, so ``theta = sum n mu^2 / sum n (Var(u) - mu mean(T / s))``
    over groups. Genes with no excess variance get ``THETA_MAX`` (Poisson); the rest are clipped to
    ``[THETA_MIN, THETA_MAX]``.
    """
    u = np.clip(np.expm1(np.asarray(x, dtype=np.float64)), 0.0, None)
    sizes = _sizes(size, len(u))[:, 0]
    keys = np.zeros(len(u), dtype=np.int64) if groups is None else np.unique(np.asarray(groups).astype(str), return_inverse=True)[1]
    if (sizes == 0).any():  # cells with no counts say nothing about the dispersion
        keep = sizes > 0
        u, sizes, keys = u[keep], sizes[keep], keys[keep]
    inv = float(target_sum) / sizes
    num = np.zeros(u.shape[1])
    den = np.zeros(u.shape[1])
    for k in np.unique(keys):
        rows = keys == k
        n = int(rows.sum())
        if n < 2:
            continue
        mu = u[rows].mean(0)
        var = u[rows].var(0, ddof=1)
        num += n * mu**2
        den += n * (var - mu * inv[rows].mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where(den > 0, num / den, THETA_MAX)
    return np.clip(np.nan_to_num(theta, nan=THETA_MAX), THETA_MIN, THETA_MAX)


def library_sizes(obs: Mapping[str, Any] | Any, n: int, target_sum: float) -> tuple[np.ndarray, str]:
    """``([n] library sizes, where they came from)``: the first ``LIBRARY_COLS`` column of ``obs``, else ``target_sum``.

    A recorded column with missing, infinite or negative sizes is refused rather than skipped: falling
    back to ``target_sum`` would silently put every cell at one depth.
    """
    columns = list(getattr(obs, "columns", obs))
    for col in LIBRARY_COLS:
        if col in columns:
            try:
                s = np.asarray(obs[col], dtype=np.float64)
            except (TypeError, ValueError):
                raise InputDataError(f"obs[{col!r}] is read as each cell's library size but is not numeric; "
                                 "convert it to numbers or rename it if it holds something else") from None
            if len(s) != n:
                raise InputDataError(f"obs[{col!r}] has {len(s)} values for {n} cells")
            bad = ~(np.isfinite(s) & (s >= 0))
            if bad.any():
                raise InputDataError(f"obs[{col!r}] is read as each cell's library size but {int(bad.sum())} of {n} values are "
                                 "missing, infinite or negative; fill in those cells' sizes, drop the cells, or rename the "
                                 "column if it holds something else")
            return s, f"obs[{col!r}]"
    return np.full(n, float(target_sum)), (f"{NO_SIZES} (none of {', '.join(LIBRARY_COLS)} in obs): every cell "
                                           f"taken at the normalised depth target_sum={target_sum:g}")


#: How ``library_sizes`` names the case of no recorded size (its source's first words).
NO_SIZES = "no library sizes recorded"
#: ``uns["distgen"]["provenance"]`` key of a ``--counts`` prediction: where its cells' library sizes came from
#: (``sizes_provenance``), so that ``distgen evaluate`` can say depths that were not measured.
SIZES_KEY = "library_sizes"
#: Its value where none was recorded: every cell, real and generated, at the normalised depth.
UNMEASURED = "not measured: every cell at the normalised depth (target_sum)"


def sizes_provenance(source: str) -> str:
    """The ``SIZES_KEY`` record of a ``library_sizes`` source: ``UNMEASURED``, or ``measured: <source>``."""
    return UNMEASURED if source.startswith(NO_SIZES) else f"measured: {source}"


def unmeasured_note(provenance: Mapping[str, Any] | None) -> str | None:
    """What ``distgen evaluate`` says of a prediction file whose provenance records ``UNMEASURED`` depths, else None."""
    if not provenance or provenance.get(SIZES_KEY) != UNMEASURED:
        return None
    return ("the prediction's counts were written by distgen predict --counts from a run without library sizes (its "
            f"provenance {SIZES_KEY}: {UNMEASURED}): every cell, real and generated, is at one depth, not a measured one, so "
            "scores that read depth (totals, the DE tests of counts) are of that depth; train on raw counts (or a file "
            "with a library-size column such as total_counts) for measured depths")


#: ``PerturbationData.adata.layers`` key: the raw counts of ``LARGE_COUNT`` or more, as stored (a sparse table, every other
#: entry left out), kept when counts are normalised at load. A count recovered from its float32 log value is exact only
#: up to about 2.6e5 (5e7 came back as 49,999,976); ``stored_counts`` writes these as they were.
LARGE_COUNTS_LAYER = "distgen_large_counts"
#: Counts at or above this are kept as stored (``LARGE_COUNTS_LAYER``): 4x below the first count seen inexact (2.6e5).
LARGE_COUNT = 65536.0


def large_counts(x: Any) -> Any:
    """``[N, G]`` CSR (float64) of the entries of counts ``x`` (dense or sparse) at or above ``LARGE_COUNT``, the rest left
    out: one comparison over the stored values, and a table of the few kept."""
    import scipy.sparse as sp

    n, g = x.shape
    dtype = np.dtype(x.dtype)
    top = np.finfo(dtype).max if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else np.inf
    if float(top) < LARGE_COUNT:  # float16, (u)int16: no count this large (and comparing with it overflows the cast)
        return sp.csr_matrix((n, g), dtype=np.float64)
    if sp.issparse(x):
        csr = x.tocsr()
        keep = np.flatnonzero(np.asarray(csr.data) >= LARGE_COUNT)
        rows = np.searchsorted(csr.indptr, keep, side="right") - 1
        cols, vals = np.asarray(csr.indices)[keep], np.asarray(csr.data)[keep]
    else:
        a = np.asarray(x)
        rows, cols = np.nonzero(a >= LARGE_COUNT)
        vals = a[rows, cols]
    return sp.csr_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)), shape=(n, g))


def stored_counts(out: np.ndarray, large: Any, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``out`` (``[len(rows), len(columns)]`` counts of real cells rebuilt from log values) with the entries ``large``
    (``large_counts`` of the whole table) holds for ``rows`` and ``columns`` written as stored, rounded; in place."""
    if large is None or large.nnz == 0:
        return out
    part = large[np.asarray(rows, dtype=np.int64)][:, np.asarray(columns, dtype=np.int64)].tocoo()
    out[part.row, part.col] = as_float32_counts(np.rint(part.data), "stored counts")
    return out


#: The largest integer float32 holds exactly (2**24 = 16,777,216): a count, or a running sum of counts (a library size),
#: above it is rounded to a neighbouring even (then multiple-of-4...) number in float32.
FLOAT32_EXACT = float(2**24)


def deep_rows(x: Any) -> tuple[np.ndarray, np.ndarray, Any] | None:
    """The rows of counts ``x`` whose library size exceeds ``FLOAT32_EXACT``: ``(rows, float64 sizes, their counts as
    float64)``, taken before scanpy's ``normalize_total`` (which scales ``x`` in place); None when there is none."""
    import scipy.sparse as sp

    sizes = np.asarray(x.sum(axis=1, dtype=np.float64), dtype=np.float64).reshape(-1)
    rows = np.flatnonzero(sizes > FLOAT32_EXACT)
    if not rows.size:
        return None
    part = sp.csr_matrix(x[rows], dtype=np.float64) if sp.issparse(x) else np.array(x[rows], dtype=np.float64)
    return rows, sizes[rows], part


def exact_deep_rows(out: Any, deep: tuple[np.ndarray, np.ndarray, Any] | None, target_sum: float) -> Any:
    """``out`` (``log1p(normalize_total(x))`` from scanpy, whose float32 running sums round a library size past
    ``FLOAT32_EXACT``) with the ``deep`` rows (``deep_rows(x)``) computed from float64 sums; in place. A sparse ``out``
    keeps its sparsity structure: each stored value of a deep row is set from its own gene's count, read by column (scanpy
    may store a row otherwise than ``x``: its columns sorted, a value stored twice summed, a stored zero kept or not); a
    gene stored twice in ``out`` gets its value once. The other rows are left as scanpy gave them."""
    import scipy.sparse as sp

    if deep is None:
        return out
    rows, sizes, part = deep
    if not sp.issparse(out):
        out[rows] = np.log1p(np.asarray(part) / sizes[:, None] * float(target_sum))
        return out
    for i, r in enumerate(rows):
        a, b = out.indptr[r], out.indptr[r + 1]
        counts = np.zeros(out.shape[1], dtype=np.float64)
        np.add.at(counts, part.indices[part.indptr[i] : part.indptr[i + 1]], part.data[part.indptr[i] : part.indptr[i + 1]])
        cols = out.indices[a:b]
        if np.setdiff1d(np.flatnonzero(counts), cols).size:
            raise ValueError("exact_deep_rows: out does not store every non-zero count of the deep rows")
        first = np.zeros(b - a, dtype=bool)
        first[np.unique(cols, return_index=True)[1]] = True
        out.data[a:b] = np.where(first, np.log1p(counts[cols] / sizes[i] * float(target_sum)), 0.0)
    return out


def as_float32_counts(counts: np.ndarray, where: str) -> np.ndarray:
    """``counts`` (whole numbers) as float32, the dtype predictions are written in, with a ``DistgenWarning`` naming ``where``
    when one exceeds ``FLOAT32_EXACT``: float32 holds it to the nearest even (or coarser) number, not exactly."""
    c = np.asarray(counts)
    top = float(c.max()) if c.size else 0.0
    if top > FLOAT32_EXACT:
        from distgen.errors import warn

        warn(f"{where}: {int((c > FLOAT32_EXACT).sum())} count(s) exceed 2**24 = 16,777,216 (largest {top:.0f}), which float32, "
             "the dtype counts are written in, does not hold exactly: they are written to the nearest float32 (off by up to "
             f"{np.spacing(np.float32(top)):.0f}); such counts are not single-cell UMI counts: check the library sizes and the "
             "predictions' scale")
    return c.astype(np.float32)


def draw_sizes(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` library sizes drawn with replacement from ``pool`` (the matched control cells' sizes)."""
    pool = np.asarray(pool, dtype=np.float64)
    if pool.size == 0:
        raise ValueError("no control library sizes to draw from")
    return pool[rng.integers(0, pool.size, n)]
