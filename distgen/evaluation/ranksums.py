"""A compiled exact kernel for the rank sums of every perturbation against the controls (numba, one thread).

Same outputs as ``distgen.evaluation.de.pooled_rank_sums`` (``U [P, G]`` with average ranks and
the pooled tie sums ``sum_v t_v^3 [P, G]``), computed per gene from the controls sorted once:
for each perturbation its cells are sorted, and for each distinct value ``v`` (``b`` cells) a
binary search in the sorted controls gives ``c_<`` (controls below) and ``a`` (controls equal), so
``U += b (c_< + a / 2)`` and the tie sum is the controls' own ``sum a^3`` plus ``(a + b)^3 - a^3``.
Every quantity is an integer or half-integer, so the result equals the torch formulation exactly.
Cost ``O(G (n_c log n_c + sum_p n_p log n_c))``. numba ships with scanpy; without it (or for CUDA
tensors, or non-finite values) ``rank_sums`` returns None and the caller uses the torch path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.evaluation.evaldata import Population

_KERNEL: Any = None


def _build(cache: bool = True) -> Any:
    import numba

    @numba.njit(cache=cache, nogil=True)
    def kernel(xt: np.ndarray, offsets: np.ndarray, ct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        g_count, p_count, nc = xt.shape[0], offsets.shape[0] - 1, ct.shape[1]
        u = np.zeros((p_count, g_count))
        tie = np.zeros((p_count, g_count))
        for g in range(g_count):
            cs = ct[g]
            t_c = 0.0
            i = 0
            while i < nc:
                j = i + 1
                while j < nc and cs[j] == cs[i]:
                    j += 1
                a = float(j - i)
                t_c += a * a * a
                i = j
            zlo = np.searchsorted(cs, 0.0, side="left")  # the zeros of a perturbation are one block, counted
            a0 = float(np.searchsorted(cs, 0.0, side="right") - zlo)
            buf = np.empty(xt.shape[1], dtype=xt.dtype)
            for p in range(p_count):
                s, e = offsets[p], offsets[p + 1]
                if e == s:  # no cells: the controls' own ties (as the torch path gives)
                    tie[p, g] = t_c
                    continue
                row = xt[g, s:e]
                n = 0
                for q in range(e - s):
                    if row[q] != 0.0:
                        buf[n] = row[q]
                        n += 1
                z = float(e - s - n)
                total_u = z * (zlo + 0.5 * a0)
                total_t = t_c + ((a0 + z) ** 3 - a0 * a0 * a0 if z > 0 else 0.0)
                xs = np.sort(buf[:n])
                k = 0
                while k < n:
                    v = xs[k]
                    m = k + 1
                    while m < n and xs[m] == v:
                        m += 1
                    b = float(m - k)
                    lo = np.searchsorted(cs, v, side="left")
                    hi = np.searchsorted(cs, v, side="right")
                    a = float(hi - lo)
                    total_u += b * (lo + 0.5 * a)
                    total_t += (a + b) ** 3 - a * a * a
                    k = m
                u[p, g] = total_u
                tie[p, g] = total_t
        return u, tie

    return kernel


def available() -> bool:
    """Whether the compiled kernel can be used (numba importable)."""
    global _KERNEL
    if _KERNEL is None:
        try:
            _KERNEL = _build()
        except ImportError:
            _KERNEL = False
        except RuntimeError:  # numba without a writable cache location: compile without caching
            _KERNEL = _build(cache=False)
    return _KERNEL is not False


def rank_sums(pop: Population) -> tuple[Tensor, Tensor] | None:
    """``(U [P, G], tie [P, G])`` of every perturbation of ``pop`` against ``pop.control`` (float64), or None (use torch)."""
    if pop.X.device.type != "cpu" or not available():
        return None
    dtype = torch.float64 if pop.X.dtype == torch.float64 else torch.float32  # comparisons only: float32 values stay exact
    x = pop.X.detach().to(dtype).numpy()
    c = pop.control.detach().to(dtype).numpy()
    if not (np.isfinite(x).all() and np.isfinite(c).all()):
        return None
    xt = np.ascontiguousarray(x.T)
    ct = np.sort(np.ascontiguousarray(c.T), axis=1)
    offsets = pop.offsets.detach().cpu().numpy().astype(np.int64)
    u, tie = _KERNEL(xt, offsets, ct)
    return torch.from_numpy(u), torch.from_numpy(tie)
