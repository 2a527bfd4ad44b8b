"""Which log transform made a matrix of expression values, read from the values alone (numpy only).

Counts ``c`` normalised per cell and logged, ``log_b(1 + c / s)``, keep a fingerprint: in each cell ``b ** x - 1`` are
its counts over one number, so their ratios to the cell's smallest non-zero value are whole numbers (halves to quarters
when that smallest count is 2 to 4), in the right base only. Logged once more (``log1p`` of log-normalised values, a
pipeline that logs on reading and again on writing), the fingerprint moves one ``expm1`` further out. The data loader
(``distgen.data.expression``) and the evaluation (``distgen.evaluation.normalization``) both read it; this module
imports neither.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Largest value still plausible for log1p-normalised expression (``distgen.data.expression.LOG_MAX``).
LOG_MAX = 20.0
#: Most extra ``log1p`` applications ``extra_log1p`` looks for.
MAX_EXTRA = 2


def whole_ratios(values: np.ndarray, undo: Callable[[np.ndarray], np.ndarray]) -> bool:
    """Whether one cell's non-zero ``values`` [k] are ``log`` of counts over one number: ``undo(values)`` (``expm1`` for
    ``log1p``) divided by its smallest entry gives whole numbers (or halves, thirds, quarters) for 95% of the ratios up
    to 50 (small ratios: float32 storage keeps them within 0.01 of whole numbers)."""
    u = undo(np.asarray(values, dtype=np.float64))
    if not np.isfinite(u).all() or float(u.min()) <= 0:
        return False
    q = u / u.min()
    q = q[q <= 50]
    return any(float(np.mean(np.abs(q * k - np.round(q * k)) < 0.01)) > 0.95 for k in (1, 2, 3, 4))


def whole_ratio_cells(dense: np.ndarray, undo: Callable[[np.ndarray], np.ndarray]) -> tuple[int, int]:
    """``(cells whose values pass whole_ratios, cells looked at)`` over the rows of ``dense`` [n, G] with 5 or more
    non-zero values.

    The rows' positive values in one flat array (row after row), with ``whole_ratios``'s elementwise arithmetic and
    per-row reductions (``ufunc.reduceat``): the same counts, without a Python loop over the rows (it cost ~5 ms of every
    ``distgen evaluate`` per file on Kang's 200 x 1,267 sample; a dense block form was slower still)."""
    x = np.asarray(dense)
    if x.ndim != 2:  # the rows of a vector are single values: none has 5 positive ones
        return 0, 0
    pos = x > 0
    n = pos.sum(1)
    rows = n >= 5
    looked = int(rows.sum())
    if not looked:
        return 0, 0
    n = n[rows]
    u = undo(np.asarray(x[pos & rows[:, None]], dtype=np.float64))  # row-major: each row's positive values in order
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))
    ok = np.logical_and.reduceat(np.isfinite(u), starts)
    with np.errstate(invalid="ignore"):  # a row with NaN is not ok, and not read further
        low = np.minimum.reduceat(u, starts)
        ok &= low > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # rows not ok are not read
        q = u / np.repeat(np.where(ok, low, 1.0), n)
        kept = q <= 50
        size = np.add.reduceat(kept, starts, dtype=np.int64)  # an ok row keeps its smallest value (ratio 1): size >= 1
        whole = np.zeros(looked, dtype=bool)
        for k in (1, 2, 3, 4):
            qk = q * k
            hit = kept & (np.abs(qk - np.round(qk)) < 0.01)
            whole |= np.add.reduceat(hit, starts, dtype=np.int64) / size > 0.95  # np.mean's share: count / size in float64
    return int((whole & ok).sum()), looked


def extra_log1p(dense: np.ndarray, min_cells: int = 10) -> int:
    """How many times more than once ``log1p`` was applied to log-normalised values ``dense`` [n, G] (0: once, or
    unclear).

    ``k`` when ``expm1`` applied ``k`` times (``k <= MAX_EXTRA``) leaves values whose own ``expm1`` gives whole ratios
    in at least 90% of at least ``min_cells`` cells with 5 or more non-zero values, while the values as they are do
    not: ``log1p`` once of such numbers is what distgen reads as log-normalised, and every further one squeezes them
    (a log1p-normalised value of 7 becomes 2.1).
    """
    x = np.asarray(dense, dtype=np.float64)
    if not x.size or not np.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) >= LOG_MAX:
        return 0
    for k in range(MAX_EXTRA + 1):
        passed, looked = whole_ratio_cells(x, np.expm1)
        if looked < min_cells:
            return 0
        if passed >= 0.9 * looked:
            return k
        x = np.expm1(x)
        if float(x.max()) >= LOG_MAX:  # log1p values of counts normalised to 1e4 stay below log1p(1e4) = 9.2
            return 0
    return 0
