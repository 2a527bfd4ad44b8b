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
    non-zero values."""
    passed = looked = 0
    for row in dense:
        v = row[row > 0]
        if v.size < 5:
            continue
        looked += 1
        passed += whole_ratios(v, undo)
    return passed, looked


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
