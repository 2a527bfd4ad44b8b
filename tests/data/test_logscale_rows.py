"""``logscale.whole_ratio_cells`` reads every row at once (flat, ``reduceat``): the counts of the per-row definition.

The reference below is the definition the docstrings give, row by row with ``whole_ratios`` (the Python loop the function
was until 2026-12-07); both must agree on every input the checks meet: log-normalised cells in either base, logged twice,
raw counts, rows with NaN, inf, zeros or fewer than 5 positive values, float32 and float64, and the bundled Kang file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distgen import logscale
from distgen.logscale import extra_log1p, whole_ratio_cells, whole_ratios

KANG = Path(__file__).resolve().parents[2] / "distgen" / "datasets" / "kang_pbmc.h5ad"


def per_row(dense: np.ndarray, undo) -> tuple[int, int]:
    passed = looked = 0
    for row in np.asarray(dense):
        v = row[row > 0]
        if v.size < 5:
            continue
        looked += 1
        passed += whole_ratios(v, undo)
    return passed, looked


def _counts(rng: np.random.Generator, n: int = 120, g: int = 300, mean: float = 0.5) -> np.ndarray:
    return rng.poisson(rng.gamma(0.6, mean / 0.6, size=(n, g))).astype(np.float64)


def _lognorm(c: np.ndarray, total: float = 1e4, log=np.log1p) -> np.ndarray:
    s = c.sum(1, keepdims=True)
    return log(np.divide(c * total, s, out=np.zeros_like(c), where=s > 0))


def _inputs() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    c = _counts(rng)
    ln = _lognorm(c)
    out = [("counts", c), ("ln", ln), ("ln32", ln.astype(np.float32)), ("log2", _lognorm(c, log=lambda v: np.log2(1 + v))),
           ("twice", np.log1p(ln)), ("twice32", np.log1p(ln).astype(np.float32)), ("thrice", np.log1p(np.log1p(ln))),
           ("cpm", _lognorm(c, 1e6)), ("deep", _lognorm(_counts(rng, mean=5.0))), ("noise", ln + rng.normal(0, 0.02, ln.shape)),
           ("uniform", rng.uniform(0, 3, (50, 40))), ("sparse-rows", ln[:, :6]), ("empty", np.zeros((0, 10))),
           ("zeros", np.zeros((20, 10))), ("one-row", ln[:1]), ("halves", ln * 0.5), ("ints", np.round(ln))]
    bad = ln.copy()
    bad[3, :] = np.nan
    bad[5, 2] = np.inf
    bad[7, 1] = -1.0
    out.append(("nan-inf-negative", bad))
    mixed = ln.copy()
    mixed[::2] = np.log1p(mixed[::2])  # half the rows logged twice: shares near the 0.9 and 0.95 thresholds
    out.append(("mixed", mixed))
    return out


@pytest.mark.parametrize("base", ["ln", "log2"])
def test_counts_equal_the_per_row_definition(base):
    undo = np.expm1 if base == "ln" else (lambda v: np.exp2(v) - 1.0)
    for name, x in _inputs():
        for view in (x, np.expm1(x) if x.size and np.isfinite(x).all() and x.max() < 20 else x):
            assert whole_ratio_cells(view, undo) == per_row(view, undo), (name, base)


def per_row_extra(x: np.ndarray, monkeypatch) -> int:
    """``extra_log1p`` with the per-row counts in place of ``whole_ratio_cells``."""
    with monkeypatch.context() as m:
        m.setattr(logscale, "whole_ratio_cells", per_row)
        return extra_log1p(x)


def test_extra_log1p_equals_the_per_row_definition(monkeypatch):
    found = {}
    for name, x in _inputs():
        found[name] = extra_log1p(x)
        assert found[name] == per_row_extra(x, monkeypatch), name
    assert found["ln"] == 0 and found["twice"] == 1 and found["thrice"] == 2  # the cases the inputs were built for


def test_vector_has_no_rows():
    assert whole_ratio_cells(np.arange(1.0, 20.0), np.expm1) == (0, 0)


def test_bundled_kang_file(monkeypatch):
    ad = pytest.importorskip("anndata")
    a = ad.read_h5ad(KANG)
    x = np.asarray(a.X.toarray() if hasattr(a.X, "toarray") else a.X)
    for sample in (x[:: max(1, x.shape[0] // 200)], np.log1p(x[:300]), x[-300:].astype(np.float32)):
        assert whole_ratio_cells(sample, np.expm1) == per_row(sample, np.expm1)
        assert extra_log1p(sample) == per_row_extra(sample, monkeypatch)
