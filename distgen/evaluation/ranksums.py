"""A compiled exact kernel for the rank sums of every perturbation against the controls (numba, one thread).

Same outputs as ``distgen.evaluation.de.pooled_rank_sums`` (``U [P, G]`` with average ranks and
the pooled tie sums ``sum_v t_v^3 [P, G]``). The controls are prepared once per reference
(``ControlTable``: each gene's control values sorted, their own tie sum and the position of their
zero block), and may be shared by several tables (cell-eval2 tests real and predicted cells against
the same real controls). The perturbed cells are read row-major, as they are stored: one pass
gathers each gene's NON-ZERO values per perturbation (zeros are one block, counted), each such
segment is sorted, and one merge walk with galloping search against the sorted controls gives,
for each distinct value ``v`` (``b`` cells), ``c_<`` (controls below) and ``a`` (controls equal):
``U += b (c_< + a / 2)``, and the tie sum is the controls' own ``sum a^3`` plus ``(a + b)^3 - a^3``.
Every quantity is an integer or half-integer, so the result equals the torch formulation exactly.
Cost ``O(G n_c log n_c)`` once, then ``O(nnz log n_p)`` for the perturbed cells. numba ships with
scanpy; without it (or for CUDA tensors, or non-finite values) ``rank_sums`` returns None and the
caller uses the torch path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.evaluation.evaldata import Population

_KERNELS: Any = None


def _build(cache: bool = True) -> Any:
    import numba

    @numba.njit(cache=cache, nogil=True)
    def control_ties(ct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
        """Per gene of the SORTED controls ``ct [G, n_c]``: sum of (tie count)^3, the zero block, finiteness."""
        g_count, nc = ct.shape
        t_c = np.zeros(g_count)
        zlo = np.zeros(g_count, dtype=np.int64)
        zhi = np.zeros(g_count, dtype=np.int64)
        for g in range(g_count):
            cs = ct[g]
            if nc and not (np.isfinite(cs[0]) and np.isfinite(cs[nc - 1])):  # NaN sorts last, -inf first, +inf last
                return t_c, zlo, zhi, False
            t = 0.0
            i = 0
            while i < nc:
                j = i + 1
                while j < nc and cs[j] == cs[i]:
                    j += 1
                a = float(j - i)
                t += a * a * a
                i = j
            t_c[g] = t
            zlo[g] = np.searchsorted(cs, 0.0, side="left")
            zhi[g] = np.searchsorted(cs, 0.0, side="right")
        return t_c, zlo, zhi, True

    @numba.njit(cache=cache, nogil=True)
    def count_nonzeros(x: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, bool]:  # pragma: no cover - compiled
        """``[P, G]`` non-zero values per (perturbation, gene) of the row-major ``x``; False on a non-finite value."""
        p_count, g_count = offsets.shape[0] - 1, x.shape[1]
        nnz = np.zeros((p_count, g_count), dtype=np.int64)
        for p in range(p_count):
            row = nnz[p]
            for r in range(offsets[p], offsets[p + 1]):
                for g in range(g_count):
                    row[g] += x[r, g] != 0.0
        return nnz, bool(np.isfinite(x.sum()))  # a NaN or infinite value makes the sum non-finite (overflow: the safe fallback)

    @numba.njit(cache=cache, nogil=True)
    def gather(x: np.ndarray, offsets: np.ndarray, g0: int, g1: int, start: np.ndarray, flat: np.ndarray) -> None:  # pragma: no cover
        """Non-zeros of genes ``g0 .. g1`` into ``flat``: those of (p, g) from ``start[p, g - g0]`` on, in row order."""
        p_count = offsets.shape[0] - 1
        fill = start.copy()
        for p in range(p_count):
            for r in range(offsets[p], offsets[p + 1]):
                for g in range(g0, g1):
                    v = x[r, g]
                    if v != 0.0:
                        flat[fill[p, g - g0]] = v
                        fill[p, g - g0] += 1

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
                    m = k + 1
                    while m < n and seg[m] == v:
                        m += 1
                    b = float(m - k)
                    if v > 0.0 and lo < zhi[g]:
                        lo = zhi[g]
                    if linear:
                        while lo < nc and cs[lo] < v:
                            lo += 1
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

    return control_ties, count_nonzeros, gather, merge


def available() -> bool:
    """Whether the compiled kernel can be used (numba importable)."""
    global _KERNELS
    if _KERNELS is None:
        try:
            _KERNELS = _build()
        except ImportError:
            _KERNELS = False
        except RuntimeError:  # numba without a writable cache location: compile without caching
            _KERNELS = _build(cache=False)
    return _KERNELS is not False


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


_BUFFER = 2**22  #: values of one block of padded, sorted non-zeros (32 MB in float64)


def control_table(control: Tensor, dtype: torch.dtype | None = None) -> ControlTable | None:
    """``control [n_c, G]`` prepared once for ``rank_sums`` (None: no kernel, a CUDA tensor or non-finite values)."""
    if control.device.type != "cpu" or not available():
        return None
    dtype = dtype or _ranked_dtype(control)
    ct = np.sort(control.detach().to(dtype).numpy().T, axis=1)  # numpy's vectorised sort, [G, n_c]
    t_c, zlo, zhi, finite = _KERNELS[0](ct)
    return ControlTable(ct, t_c, zlo, zhi, dtype) if finite else None


def rank_sums(pop: Population, table: ControlTable | None = None) -> tuple[Tensor, Tensor] | None:
    """``(U [P, G], tie [P, G])`` of every perturbation of ``pop`` against ``pop.control`` (float64), or None (use torch).

    ``table``: ``control_table(pop.control)`` when it is already prepared (it must be of these controls).
    The non-zeros of each (perturbation, gene) are gathered into padded blocks of genes and sorted by
    numpy (vectorised: far faster than a compiled per-segment sort), then merged against the controls.
    """
    if pop.X.device.type != "cpu" or not available():
        return None
    dtype = _ranked_dtype(pop.X)
    if table is not None and table.dtype != dtype:
        dtype = torch.float64  # compare at the wider precision of the two
        table = table if table.dtype == dtype else None
    if table is None:
        table = control_table(pop.control, dtype)
        if table is None:
            return None
    _, count_nonzeros, gather, merge = _KERNELS
    x = np.ascontiguousarray(pop.X.detach().to(dtype).numpy())
    offsets = pop.offsets.detach().cpu().numpy().astype(np.int64)
    nnz, finite = count_nonzeros(x, offsets)
    if not finite:
        return None
    p_count, g_count = nnz.shape
    u, tie = np.zeros((p_count, g_count)), np.zeros((p_count, g_count))
    # each (perturbation, gene) segment padded to the next power of two; segments of one width are sorted as the
    # rows of one [k, width] block (padding +inf sorts last), blocks of genes bounded to ~_BUFFER values
    width = np.where(nnz > 0, 1 << np.ceil(np.log2(np.maximum(nnz, 1))).astype(np.int64), 0)
    per_gene = width.sum(0)
    g0 = 0
    while g0 < g_count:
        g1 = g0 + 1 + int(np.searchsorted(np.cumsum(per_gene[g0 + 1 :]), _BUFFER - per_gene[g0], side="right"))
        w = width[:, g0:g1]
        flat_w = w.ravel()
        order = np.argsort(flat_w, kind="stable")
        sizes = flat_w[order]
        first = np.empty(flat_w.size, dtype=np.int64)
        first[order] = np.cumsum(sizes) - sizes
        start = first.reshape(w.shape)
        flat = np.full(int(sizes.sum()), np.inf, dtype=x.dtype)
        gather(x, offsets, g0, g1, start, flat)
        for wv in np.unique(sizes[sizes > 0]).tolist():  # one vectorised numpy sort per width
            lo, hi = np.searchsorted(sizes, [wv, wv + 1])
            base = int(first[order[lo]])
            flat[base : base + int(hi - lo) * wv].reshape(int(hi - lo), wv).sort(axis=1)
        merge(flat, start, nnz, offsets, table.sorted, table.tie, table.zlo, table.zhi, g0, u, tie)
        g0 = g1
    return torch.from_numpy(u), torch.from_numpy(tie)
