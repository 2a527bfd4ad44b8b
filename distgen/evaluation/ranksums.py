"""Exact rank sums of every perturbation against the controls on the CPU: numpy, or a compiled kernel (numba).

Same outputs as ``distgen.evaluation.de.pooled_rank_sums`` (``U [P, G]`` with average ranks and
the pooled tie sums ``sum_v t_v^3 [P, G]``). The controls are prepared once per reference
(``ControlTable``: each gene's control values sorted, their own tie sum and the position of their
zero block) and may be shared by several tables (cell-eval2 tests real and predicted cells against
the same real controls). For the perturbed cells only the NON-ZERO values of each (perturbation,
gene) are sorted (zeros are one block, counted), with numpy's vectorised sort (segments padded to
a power of two, sorted as the rows of one block per width); then each distinct value ``v``
(``b`` cells) finds ``c_<`` (controls below) and ``a`` (controls equal) in the sorted controls:
``U += b (c_< + a / 2)``, and the tie sum is the controls' own ``sum a^3`` plus ``(a + b)^3 - a^3``.
Every quantity is an integer or half-integer, so all paths give the same numbers exactly.

Two implementations of that last step: numpy (binary searches per gene, vectorised bookkeeping)
and numba (a merge walk with galloping search, ~2.5x faster). Loading numba and its cached kernels
costs ~0.5 s of CPU (and compiling them on a first run, seconds), more than numpy needs for a
25-perturbation table, so ``rank_sums`` takes numba only when it is already loaded or the table is
large (``NUMBA_MIN_SIZE``). For CUDA tensors or non-finite values ``rank_sums`` returns None and the
caller uses the torch path.

``normalised_rank_sums`` serves cell-eval2's DE of raw counts (ranks of ``log1p`` of counts per
million) with the compiled kernels: only the non-zero counts are divided by their cell's library
size, summed per group (the fold changes' means) and ``log1p``-transformed before sorting, instead
of normalising, transforming and scanning the dense matrix; the same numbers, bit for bit.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.denormals import ieee_denormals
from distgen.evaluation.evaldata import Population

_KERNELS: Any = None


def _build(cache: bool = True) -> Any:
    import numba

    @numba.njit(cache=cache, nogil=True)
    def run_end(a: np.ndarray, k: int) -> int:  # pragma: no cover - compiled
        """One past the run of values equal to ``a[k]`` that starts at ``k`` (``a`` sorted)."""
        m = k + 1
        while m < a.shape[0] and a[m] == a[k]:
            m += 1
        return m

    @numba.njit(cache=cache, nogil=True)
    def count_segments(idx: np.ndarray, offsets: np.ndarray, g_count: int) -> np.ndarray:  # pragma: no cover - compiled
        """``[P, G]`` non-zero values per (perturbation, gene), from ``idx``: their ascending row-major positions."""
        nnz = np.zeros((offsets.shape[0] - 1, g_count), dtype=np.int64)
        p = r = base = 0  # the perturbation and row of idx[k], and the row's first position
        for k in range(idx.shape[0]):
            i = idx[k]
            while i >= base + g_count:
                r += 1
                base += g_count
            while r >= offsets[p + 1]:
                p += 1
            nnz[p, i - base] += 1
        return nnz

    @numba.njit(cache=cache, nogil=True)
    def gather(x: np.ndarray, idx: np.ndarray, offsets: np.ndarray, g_count: int, g0: int, g1: int, start: np.ndarray,
               flat: np.ndarray, scale: Any) -> bool:  # pragma: no cover - compiled
        """The non-zeros ``x[idx]`` (``x`` flat row-major) of genes ``g0 .. g1`` into ``flat``: those of (p, g) from
        ``start[p, g - g0]`` on, in row order.

        ``scale [N]`` (or None): each value divided by its row's ``scale`` (float64). Returns whether every
        gathered value is a positive integer (before the division)."""
        fill = start.copy()
        other = False
        p = r = base = 0
        for k in range(idx.shape[0]):
            i = idx[k]
            while i >= base + g_count:
                r += 1
                base += g_count
            g = i - base
            if g < g0 or g >= g1:
                continue
            while r >= offsets[p + 1]:
                p += 1
            v = x[i]
            other |= (v < 0.0) | (v != np.floor(v))
            flat[fill[p, g - g0]] = v if scale is None else v / scale[r]
            fill[p, g - g0] += 1
        return not other

    @numba.njit(cache=cache, nogil=True)
    def segment_totals(flat: np.ndarray, start: np.ndarray, nnz: np.ndarray, g0: int, out: np.ndarray) -> None:  # pragma: no cover
        """``out[p, g0 + j]``: the sum of segment (p, j) of ``flat``, added one value after the other in row order."""
        p_count, gc = start.shape
        for p in range(p_count):
            for j in range(gc):
                total = 0.0
                for k in range(start[p, j], start[p, j] + nnz[p, g0 + j]):
                    total += flat[k]
                out[p, g0 + j] = total

    @numba.njit(cache=cache, nogil=True)
    def merge(flat: np.ndarray, start: np.ndarray, nnz: np.ndarray, offsets: np.ndarray, ct: np.ndarray, t_c: np.ndarray,
              zlo: np.ndarray, zhi: np.ndarray, g0: int, u: np.ndarray, tie: np.ndarray) -> None:  # pragma: no cover - compiled
        """Rank and tie sums of genes ``g0 ..`` from their SORTED non-zeros (``flat`` from ``start [P, g]``) into ``u, tie [P, G]``."""
        def first_at(cs: np.ndarray, start: int, v: float, right: bool) -> int:
            """First index ``i >= start`` with ``cs[i] >= v`` (``> v`` when ``right``); ``cs`` sorted, galloping from ``start``."""
            n = cs.shape[0]
            lo = start  # invariant: every index below lo fails the bound
            step = 1
            hi = n
            while lo < n:
                probe = lo + step - 1
                if probe >= n:
                    break
                below = cs[probe] <= v if right else cs[probe] < v
                if not below:
                    hi = probe
                    break
                lo = probe + 1
                step *= 2
            while lo < hi:  # binary search in [lo, hi)
                mid = (lo + hi) >> 1
                if cs[mid] <= v if right else cs[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            return lo

        def walk(cs: np.ndarray, lo: int, v: float) -> int:
            """First index ``i >= lo`` with ``cs[i] >= v``, stepping 8 values at a time: the count of those below ``v``
            in a window of the sorted ``cs`` is how far to move, without a branch per value."""
            n = cs.shape[0]
            while lo + 8 <= n:
                below = 0
                for i in range(8):
                    below += cs[lo + i] < v
                lo += below
                if below < 8:
                    return lo
            while lo < n and cs[lo] < v:
                lo += 1
            return lo

        p_count, gc = start.shape
        nc = ct.shape[1]
        for j in range(gc):
            g = g0 + j
            cs = ct[g]
            a0 = float(zhi[g] - zlo[g])
            for p in range(p_count):
                n_p = offsets[p + 1] - offsets[p]
                if n_p == 0:  # no cells: the controls' own ties (as the torch path gives)
                    tie[p, g] = t_c[g]
                    continue
                n = nnz[p, g]
                seg = flat[start[p, j] : start[p, j] + n]
                z = float(n_p - n)
                total_u = z * (zlo[g] + 0.5 * a0)
                az = a0 + z
                total_t = t_c[g] + (az * az * az - a0 * a0 * a0 if z > 0 else 0.0)
                lo = 0
                k = 0
                linear = n * 8 > nc - a0  # a dense segment walks the controls; a sparse one gallops
                while k < n:
                    v = seg[k]
                    m = run_end(seg, k)
                    b = float(m - k)
                    if v > 0.0 and lo < zhi[g]:
                        lo = zhi[g]
                    if linear:
                        lo = walk(cs, lo, v)
                        hi = lo
                        while hi < nc and cs[hi] == v:
                            hi += 1
                    else:
                        lo = first_at(cs, lo, v, False)
                        hi = first_at(cs, lo, v, True)
                    a = float(hi - lo)
                    total_u += b * (lo + 0.5 * a)
                    ab = a + b
                    total_t += ab * ab * ab - a * a * a
                    lo = hi
                    k = m
                u[p, g] = total_u
                tie[p, g] = total_t

    @numba.njit(cache=cache, nogil=True)
    def runs(ct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """Of each sorted row of ``ct [G, n]``: the sum of its runs' lengths cubed, its negatives, its negatives and zeros."""
        g_count, n = ct.shape
        tie = np.zeros(g_count)
        zlo = np.zeros(g_count, dtype=np.int64)
        zhi = np.zeros(g_count, dtype=np.int64)
        for g in range(g_count):
            row = ct[g]
            k = 0
            while k < n:
                v = row[k]
                m = run_end(row, k)
                size = float(m - k)
                tie[g] += size * size * size
                if v < 0.0:
                    zlo[g] = m
                if v <= 0.0:
                    zhi[g] = m
                k = m
        return tie, zlo, zhi

    return SimpleNamespace(count_segments=count_segments, gather=gather, segment_totals=segment_totals, merge=merge, runs=runs)


def available() -> bool:
    """Whether the compiled kernels can be used (numba importable; imports and loads them)."""
    global _KERNELS
    if _KERNELS is None:
        try:
            _KERNELS = _build()
        except ImportError:
            _KERNELS = False
        except RuntimeError:  # numba without a writable cache location: compile without caching
            _KERNELS = _build(cache=False)
    return _KERNELS is not False


#: cells x genes (perturbed and control) from which the compiled kernel is worth loading numba for (~0.5 s of
#: CPU from its on-disk cache, far more on a first run); below, and unless numba is already loaded, numpy ranks
NUMBA_MIN_SIZE = 20_000_000
_BUFFER = 2**22  #: values of one block of padded, sorted non-zeros (32 MB in float64)


@dataclass
class ControlTable:
    """The control cells prepared for ``rank_sums``: per gene sorted values, own tie sums, zero block (numpy)."""

    sorted: np.ndarray  # [G, n_c]
    tie: np.ndarray  # [G] sum over the controls' distinct values of (count)^3
    zlo: np.ndarray  # [G] first zero in ``sorted``
    zhi: np.ndarray  # [G] one past the last zero
    dtype: torch.dtype


def _ranked_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32  # comparisons only: float32 values stay exact


def control_table(control: Tensor, dtype: torch.dtype | None = None, backend: str = "auto") -> ControlTable | None:
    """``control [n_c, G]`` prepared once for ``rank_sums`` (None: a CUDA tensor or non-finite values).

    ``backend`` (as ``rank_sums``): the runs of equal values counted by the compiled kernel or with numpy."""
    if control.device.type != "cpu":
        return None
    dtype = dtype or _ranked_dtype(control)
    ct = np.ascontiguousarray(control.detach().to(dtype).numpy().T)  # [G, n_c]
    with ieee_denormals():  # flushing makes numpy's float64 sort of mostly-zero rows ~13x slower (distgen.denormals)
        ct.sort(axis=1)  # numpy's vectorised sort, in place on contiguous rows
    nc = ct.shape[1]
    if nc and not bool(np.isfinite(ct[:, [0, nc - 1]]).all()):  # NaN and +inf sort last, -inf first
        return None
    runs = _KERNELS.runs if nc and _use_numba(ct.size, backend) else _runs
    tie, zlo, zhi = runs(ct)
    return ControlTable(ct, tie, zlo, zhi, dtype)


def _runs(ct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of each sorted row of ``ct [G, n]``: the sum of its runs' lengths cubed, its negatives, its negatives and zeros."""
    g, nc = ct.shape
    tie: np.ndarray = np.zeros(g)
    if nc:
        new = np.ones((g, nc), dtype=bool)
        new[:, 1:] = ct[:, 1:] != ct[:, :-1]
        starts = np.flatnonzero(new.ravel())  # runs of equal values (a gene's first value always starts one)
        lens = np.diff(np.append(starts, g * nc)).astype(np.float64)
        tie = np.bincount(starts // nc, weights=lens**3, minlength=g)
    return tie, (ct < 0).sum(1), (ct <= 0).sum(1)


def _use_numba(size: int, backend: str) -> bool:
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
    if backend == "numpy":
        return False
    if backend == "auto" and "numba" not in sys.modules and size < NUMBA_MIN_SIZE:
        return False
    return available()


def rank_sums(pop: Population, table: ControlTable | None = None, backend: str = "auto") -> tuple[Tensor, Tensor] | None:
    """``(U [P, G], tie [P, G])`` of every perturbation of ``pop`` against ``pop.control`` (float64), or None (use torch).

    ``table``: ``control_table(pop.control)`` when it is already prepared (it must be of these controls).
    ``backend``: ``numba`` (the compiled kernel), ``numpy``, or ``auto``: numba when it is already loaded
    or the table is large (``NUMBA_MIN_SIZE``), else numpy. Both give the same numbers.
    """
    if pop.X.device.type != "cpu":
        return None
    dtype = _ranked_dtype(pop.X)
    if table is not None and table.dtype != dtype:
        dtype = torch.float64  # compare at the wider precision of the two
        table = table if table.dtype == dtype else None
    if table is None:
        table = control_table(pop.control, dtype)
        if table is None:
            return None
    x = np.ascontiguousarray(pop.X.detach().to(dtype).numpy())
    offsets = pop.offsets.detach().cpu().numpy().astype(np.int64)
    size = x.size + table.sorted.size
    out: tuple[np.ndarray, ...] | None
    if not bool(np.isfinite(x.sum())):  # non-finite sum: torch decides
        return None
    if _use_numba(size, backend):
        out = by_groups(x, offsets, lambda xs, offs, rows: _pair(_rank_sums_numba(xs, offs, table)))
    else:
        out = by_groups(x, offsets, lambda xs, offs, rows: _rank_sums_numpy(xs, offs, table))
    if out is None:
        return None
    return torch.from_numpy(out[0]), torch.from_numpy(out[1])


def _pair(out: tuple[np.ndarray, ...] | None) -> tuple[np.ndarray, ...] | None:
    return None if out is None else out[:2]


#: Cells x genes of the perturbations ranked at a time (``by_groups``): each (perturbation, gene) is ranked against the
#: controls on its own, so a block of perturbations gives exactly its rows of the whole table, and the working arrays
#: (the non-zeros' positions, values, ranks: 8 to 40 bytes a non-zero) are those of a block, not of every cell.
GROUP_BLOCK_VALUES = 2**22
#: Cells a block holds at least (``by_groups``' default): the numpy path loops over the genes of each block in Python,
#: so a wide table (8,000 genes: 512 cells in 4M values) would pay that loop for every few perturbations.
GROUP_BLOCK_ROWS = 1024


def by_groups(x: np.ndarray, offsets: np.ndarray, fn: Any, block: int | None = None) -> tuple[np.ndarray, ...] | None:
    """``fn(x_rows, offsets_rows, rows)`` over consecutive blocks of perturbations of ``x [N, G]`` (grouped by ``offsets``),
    each block about ``block`` values (default ``GROUP_BLOCK_VALUES``, at least ``GROUP_BLOCK_ROWS`` cells; one perturbation
    at least), stacked: ``fn``'s ``[P, G]``
    arrays (rows ``p0:p1`` from each block); an array ``fn`` returns empty stays empty. None when a block gives None."""
    p_count, width = offsets.shape[0] - 1, max(int(x.shape[1]), 1)
    block = max(GROUP_BLOCK_VALUES, GROUP_BLOCK_ROWS * width) if block is None else block
    if p_count == 0 or x.size <= block:
        return fn(x, offsets, slice(0, x.shape[0]))
    outs: list[np.ndarray] | None = None
    p0 = 0
    while p0 < p_count:
        limit = int(offsets[p0]) + max(block // width, 1)
        p1 = max(p0 + 1, int(np.searchsorted(offsets, limit, side="right")) - 1)
        r0, r1 = int(offsets[p0]), int(offsets[p1])
        res = fn(x[r0:r1], offsets[p0 : p1 + 1] - r0, slice(r0, r1))
        if res is None:
            return None
        if outs is None:
            outs = [np.zeros((p_count, *r.shape[1:]), dtype=r.dtype) if r.shape[0] else r for r in res]
        for o, r in zip(outs, res):
            if o.shape[0]:
                o[p0:p1] = r
        p0 = p1
    return None if outs is None else tuple(outs)


def normalised_rank_sums(pop: Population, table: ControlTable | None, target_sum: float,
                         backend: str = "auto") -> tuple[Tensor, Tensor, Tensor] | None:
    """``(U, tie, sums)`` ``[P, G]`` float64 of raw counts normalised per cell, from their non-zeros only.

    The numbers the dense path gives (``de.normalize_total(pop.X, target_sum)``: each value divided by
    its cell's ``sum_g x / target_sum``; ``segment_sums`` of that; ``log1p``; ``rank_sums`` against
    ``table``, the controls normalised the same way) without forming the dense matrices: the zeros of
    each (perturbation, gene) stay one counted block, and only the non-zero values are divided, summed
    (in row order, as the dense sums add them), ``log1p``-transformed and sorted. The library sizes are
    row sums of non-negative integers below 2^53, exact in any order.
    None (use the dense path): not the compiled kernel (``backend``, see ``rank_sums``), a CUDA tensor, no
    float64 table, or values that are not finite non-negative integers.
    """
    if table is None or table.dtype != torch.float64 or pop.X.device.type != "cpu" or pop.X.dtype not in (torch.float32, torch.float64):
        return None
    x = np.ascontiguousarray(pop.X.detach().numpy())
    if not _use_numba(x.size + table.sorted.size, backend):
        return None
    # exact for integer counts (checked while gathering), so the sums eval_data made for the limit on a cell's total
    # (Population.totals, torch's order) are these, bit for bit
    total = np.add.reduce(x, axis=1, dtype=np.float64) if pop.totals is None else pop.totals.numpy()
    if total.size and not float(total.max()) < 2.0**53:  # also a NaN or an infinite value
        return None
    lib = torch.from_numpy(total) / target_sum  # as normalize_total divides
    scale = torch.where(lib > 0, lib, torch.ones_like(lib)).numpy()
    out = by_groups(x, pop.offsets.detach().numpy().astype(np.int64), lambda xs, offs, rows: _rank_sums_numba(xs, offs, table, scale[rows]))
    return None if out is None else (torch.from_numpy(out[0]), torch.from_numpy(out[1]), torch.from_numpy(out[2]))


def _padded(n: np.ndarray) -> np.ndarray:
    """Each count of ``n`` rounded up to the next power of two (0 stays 0)."""
    return np.where(n > 0, 1 << np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64), 0)


def _bucket_sort(vals: np.ndarray, seglen: np.ndarray) -> np.ndarray:
    """``vals`` (consecutive segments of lengths ``seglen``) with each segment sorted.

    Segments are padded to the next power of two with +inf and sorted as the rows of one ``[k, width]``
    block per width: numpy's vectorised sort, at most twice the values."""
    start, runs, size = _layout(_padded(seglen))
    dest = np.repeat(start - (np.cumsum(seglen) - seglen), seglen) + np.arange(vals.size)
    buf = np.full(size, np.inf, dtype=vals.dtype)
    buf[dest] = vals
    _sort_runs(buf, runs)
    return buf[dest]


def _rank_sums_numpy(x: np.ndarray, offsets: np.ndarray, table: ControlTable) -> tuple[np.ndarray, np.ndarray]:
    """The rank and tie sums with numpy: per (gene, perturbation) the sorted non-zeros, binary searches per gene."""
    g_count, p_count = x.shape[1], offsets.shape[0] - 1
    counts = np.diff(offsets)
    mask = (x != 0).T.copy()  # [G, N]: a gene's cells contiguous, in perturbation order (a bool copy, not a float64 one)
    nnz = np.zeros((g_count, p_count), dtype=np.int64)
    for p in np.flatnonzero(counts > 0).tolist():  # per block of rows of the row-major x: ~4x np.add.reduceat on the mask
        nnz[:, p] = np.count_nonzero(x[offsets[p] : offsets[p + 1]], axis=0)
    seglen = nnz.ravel()  # segments (gene, perturbation), gene-major
    seg = np.repeat(np.arange(seglen.size), seglen)
    v = _bucket_sort(x.T[mask], seglen)
    lo = np.empty(v.size, dtype=np.int64)
    a = np.zeros(v.size)
    gstart = np.concatenate([[0], np.cumsum(nnz.sum(1))]).tolist()
    nc = table.sorted.shape[1]
    positive = v > 0
    for g in range(g_count):
        s, e = gstart[g], gstart[g + 1]
        if e == s:
            continue
        cs, vg = table.sorted[g], v[s:e]
        zhi = int(table.zhi[g])
        start = zhi if zhi and bool(positive[s:e].all()) else 0  # positive values: search above the controls' zeros
        lg = start + np.searchsorted(cs[start:], vg, "left")
        lo[s:e] = lg
        eq = np.flatnonzero(cs[np.minimum(lg, nc - 1)] == vg) if nc else np.zeros(0, dtype=np.int64)
        if eq.size:  # controls equal to the value: count them (ties are rare for continuous values)
            a[s + eq] = np.searchsorted(cs, vg[eq], "right") - lg[eq]
    new = np.ones(v.size, dtype=bool)  # runs of equal values inside a segment: b cells of the perturbation
    new[1:] = (v[1:] != v[:-1]) | (seg[1:] != seg[:-1])
    runs = np.diff(np.append(np.flatnonzero(new), v.size))
    b = np.repeat(runs, runs).astype(np.float64)
    # per value: U += c_< + a / 2; sum over a tie group of b values of 3a^2 + 3ab + b^2 = (a + b)^3 - a^3
    u = np.bincount(seg, weights=lo + 0.5 * a, minlength=seglen.size).reshape(g_count, p_count)
    t = np.bincount(seg, weights=3.0 * a * a + 3.0 * a * b + b * b, minlength=seglen.size).reshape(g_count, p_count)
    z = (counts[None, :] - nnz).astype(np.float64)  # the zeros of a perturbation: one block
    a0 = (table.zhi - table.zlo).astype(np.float64)[:, None]
    u = u + z * (table.zlo[:, None] + 0.5 * a0)
    az = a0 + z
    t = table.tie[:, None] + t + np.where(z > 0, az * az * az - a0 * a0 * a0, 0.0)
    return np.ascontiguousarray(u.T), np.ascontiguousarray(t.T)


def _layout(width: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]], int]:
    """Segments of ``width [P, g]`` values placed in one buffer, grouped by width.

    Returns ``start [P, g]`` (each segment's first position), the runs ``(base, count, width)`` of
    equal-width segments (contiguous), and the buffer's size."""
    flat_w = width.ravel()
    order = np.argsort(flat_w, kind="stable")
    sizes = flat_w[order]
    first = np.empty(flat_w.size, dtype=np.int64)
    first[order] = np.cumsum(sizes) - sizes
    runs = []
    for wv in np.unique(sizes[sizes > 0]).tolist():
        lo, hi = np.searchsorted(sizes, [wv, wv + 1])
        runs.append((int(first[order[lo]]), int(hi - lo), wv))
    return first.reshape(width.shape), runs, int(sizes.sum())


def _sort_runs(flat: np.ndarray, runs: list[tuple[int, int, int]]) -> None:
    """Each segment of ``flat`` sorted in place: the segments of one width as the rows of one block (numpy's vectorised sort)."""
    for base, count, wv in runs:
        flat[base : base + count * wv].reshape(count, wv).sort(axis=1)


def _gene_blocks(nnz: np.ndarray) -> Iterator[tuple[int, int, np.ndarray, list[tuple[int, int, int]], int]]:
    """Blocks of genes ``[g0, g1)`` whose (perturbation, gene) segments, each padded to the next power of two,
    fill about ``_BUFFER`` values: ``(g0, g1, start, runs, size)`` of ``_layout``."""
    width = _padded(nnz)
    per_gene = width.sum(0)
    g0, g_count = 0, nnz.shape[1]
    while g0 < g_count:
        g1 = g0 + 1 + int(np.searchsorted(np.cumsum(per_gene[g0 + 1 :]), _BUFFER - per_gene[g0], side="right"))
        yield (g0, g1, *_layout(width[:, g0:g1]))
        g0 = g1


def _rank_sums_numba(x: np.ndarray, offsets: np.ndarray, table: ControlTable,
                     scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The rank and tie sums with the compiled kernels, and the per-group sums of the ranked values before ``log1p``.

    Without ``scale``: of ``x`` itself (the third array is empty). With ``scale [N]``: of ``log1p(x / scale[row])``
    and the sums of ``x / scale[row]``, from the non-zeros only; None unless ``x`` holds non-negative integers.
    None also for a non-finite value (with ``scale``, the caller's row sums have checked). The padding (+inf) of each
    segment sorts last and is never read back."""
    k = _KERNELS
    if scale is None and not bool(np.isfinite(x.sum())):  # NaN or inf makes the sum non-finite (overflow: the safe fallback)
        return None
    idx = np.flatnonzero(x != 0)  # row-major positions of the non-zeros (numpy's branch-free scan of a bool mask)
    p_count, g_count = offsets.shape[0] - 1, x.shape[1]
    nnz = k.count_segments(idx, offsets, g_count)
    u, tie = np.zeros((p_count, g_count)), np.zeros((p_count, g_count))
    sums = np.zeros((p_count, g_count) if scale is not None else (0, 0))
    for g0, g1, start, runs, size in _gene_blocks(nnz):
        flat = np.full(size, np.inf, dtype=x.dtype if scale is None else np.float64)
        counts = k.gather(x.ravel(), idx, offsets, g_count, g0, g1, start, flat, scale)
        if scale is not None:
            if not counts:
                return None
            k.segment_totals(flat, start, nnz, g0, sums)
            np.log1p(flat, out=flat)
        _sort_runs(flat, runs)
        k.merge(flat, start, nnz, offsets, table.sorted, table.tie, table.zlo, table.zhi, g0, u, tie)
    return u, tie, sums
