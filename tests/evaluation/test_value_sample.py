"""One sample of a file's values shared by the input checks (``io.ValueSample``, issue 21 item 8).

``normalization.check_files`` draws each file's 2,000-row sample once and passes it to ``check_same_scale``, ``check_scale``
and ``check_same_normalization``; each must decide from it exactly as from the file. The references here are the checks'
definitions written out plainly (every value converted, ``expm1`` of every value), not the code under test.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import distgen.evaluation.io as io
import distgen.evaluation.normalization as N
from distgen.evaluation.io import ScaleMismatchError, ValueSample, value_scale


def _reference_signature(x: np.ndarray) -> tuple[str, float] | None:
    """``signature``'s rule written out: float64 of up to 2,000 rows spread over x, row totals of expm1 / 2**x - 1."""
    rows = x if x.shape[0] <= 2000 else x[np.linspace(0, x.shape[0] - 1, 2000).round().astype(np.int64)]
    s = np.asarray(rows, dtype=np.float64)
    if s.size == 0 or not np.isfinite(s).all() or s.min() < 0 or s.max() > 50:
        return None
    atol = float(np.dtype(rows.dtype).type(1e-6))
    if not (np.abs(s - np.rint(s)) > atol).any():
        return None
    for base, total in (("ln", np.expm1(s).sum(1)), ("log2", (np.exp2(s) - 1.0).sum(1))):
        total = total[total > 0]
        if total.size >= 5 and (total.max() - total.min()) / np.median(total) < 1e-3:
            return base, float(np.median(total))
    logged = s[(s > 0) & (s < math.log1p(1e4))]
    v = np.expm1(logged)
    if v.size and v.max() >= 2 and (np.abs(v - np.round(v)) <= 1e-3 + 5e-7 * (v + 1) * np.maximum(logged, 1)).mean() >= 0.999:
        return "counts", 0.0
    return None


def _variants(counts: np.ndarray) -> dict[str, np.ndarray]:
    m = counts.astype(np.float32)
    tot = m.sum(1, keepdims=True)
    tot[tot == 0] = 1
    return {"counts": m, "ln1e4": np.log1p(m / tot * 1e4), "log2": np.log2(1 + m / tot * 1e4), "cpm": np.log1p(m / tot * 1e6),
            "log1p_counts": np.log1p(m), "ln1e4_f64": np.log1p(m.astype(np.float64) / tot * 1e4)}


def _kang_counts(shared_data: str, n: int = 2500) -> np.ndarray:
    import anndata as ad

    a = ad.read_h5ad(os.path.join(shared_data, "kang2018_muscat_example", "kang2018_muscat_example_sce.h5ad"), backed="r")
    idx = np.linspace(0, a.shape[0] - 1, min(n, a.shape[0])).round().astype(int)
    x = a.X[idx]
    return np.asarray(x.toarray() if sp.issparse(x) else x)


def test_signature_from_the_shared_sample_equals_the_plain_rule_on_shared_data(shared_data):
    """Bit-identical totals (``==`` on the float) on Kang's counts under five preprocessings, from x and from its sample."""
    seen = set()
    for name, v in _variants(_kang_counts(shared_data)).items():
        want = _reference_signature(v)
        assert N.signature(torch.as_tensor(v)) == want, name
        assert N.signature(ValueSample(torch.as_tensor(v))) == want, name
        seen.add(None if want is None else want[0])
    assert seen == {None, "ln", "log2", "counts"}  # every outcome is exercised


@pytest.mark.parametrize("kind", ["nan", "inf", "dust", "zeros", "ones", "neg", "int"])
def test_value_scale_of_a_sample_equals_value_scale_of_the_file(kind):
    rng = np.random.default_rng(1)
    x = np.log1p(rng.poisson(0.5, (3000, 40)).astype(np.float32))
    x = {"nan": np.where(rng.random(x.shape) < 0.01, np.nan, x), "inf": np.where(rng.random(x.shape) < 0.01, np.inf, x),
         "dust": np.expm1(x).round() + 5e-7, "zeros": np.zeros_like(x), "ones": (x > 0).astype(np.float32), "neg": x - 0.25,
         "int": np.expm1(x).round().astype(np.int64)}[kind]
    for form in (x, torch.as_tensor(x), sp.csr_matrix(x)):
        assert value_scale(ValueSample(form)) == value_scale(form)
    plain = np.asarray(x[np.linspace(0, 2999, 2000).round().astype(np.int64)], dtype=np.float64)
    finite = plain[np.isfinite(plain)]
    assert value_scale(x)[1] == float(finite.max())


def test_check_files_draws_each_files_sample_once(monkeypatch):
    """Until 2026-12-07 ``check_same_scale`` and ``check_scale`` each drew a file's sample (4 draws for a pair) and
    ``signature`` drew and converted its own."""
    from distgen.types.cells import Cells

    rng = np.random.default_rng(2)
    x = np.log1p(rng.poisson(1.0, (60, 30)).astype(np.float32) / 30 * 1e4 / 30)
    labels = np.array(["ctrl"] * 20 + ["A"] * 40)
    pred = Cells(torch.as_tensor(x), labels, [f"g{i}" for i in range(30)], control="ctrl")
    real = Cells(torch.as_tensor(x.copy()), labels, [f"g{i}" for i in range(30)], control="ctrl")
    calls = []
    draw = io._sampled

    def counted(v):
        if not isinstance(v, ValueSample):  # a ValueSample is read as drawn, not drawn again
            calls.append(1)
        return draw(v)

    monkeypatch.setattr(io, "_sampled", counted)
    rows = io.sample_rows
    monkeypatch.setattr(N, "sample_rows", lambda v, n=io.SCALE_SAMPLE_ROWS: calls.append(2) or rows(v, n))
    assert N.check_files({"pred": pred, "real": real}).notes == []
    assert calls.count(1) == 2  # one draw per file
    assert calls.count(2) == 2 + 2  # check_logged_once's 200 rows and _scale_stats' control rows, each file


@pytest.mark.parametrize("fill", [0.0, -0.0, 5e-7, -5e-7])
def test_control_scale_refuses_zeros_and_dust_with_or_without_nan(fill):
    """The zeros/dust refusal of ``check_control_scale`` (whose maximum is now read from the two ends without a NaN)."""
    from distgen.types.cells import Cells

    labels = np.array(["ctrl"] * 5 + ["A"] * 5)
    genes = [f"g{i}" for i in range(6)]
    real = Cells(torch.rand(10, 6), labels, genes, control="ctrl")
    for with_nan in (False, True):
        x = torch.full((10, 6), fill)
        if with_nan:
            x[0, 0] = float("nan")
        with pytest.raises(ScaleMismatchError, match="holds only zeros"):
            N.check_control_scale(Cells(x, labels, genes, control="ctrl"), real)
    for big in (float("inf"), float("-inf"), 1.0, -1.0):
        x = torch.full((10, 6), fill)
        x[3, 2] = big
        try:
            N.check_control_scale(Cells(x, labels, genes, control="ctrl"), real)
        except ScaleMismatchError as err:  # a value off 0: never refused as a file of zeros
            assert "holds only zeros" not in str(err)


@pytest.mark.parametrize("kind", ["log1p_counts", "log2", "ln1e4"])
def test_the_shared_sample_keeps_the_checks_memory_near_one_float64_copy_per_file(kind):
    """``signature`` kept ``expm1`` AND ``2**x - 1`` of the whole float64 sample
    alive through its counts test, so a log1p-of-counts file (no constant total: every step runs) peaked at 5.1 float64
    samples in ``signature`` and 6.1 in ``check_files`` (2.97 for both before the round: 2,000 rows x 36,601 genes is
    ~0.6 GB a sample). Bounds: one float64 copy of each file (the shared sample, by design) plus ~2 for the work."""
    import tracemalloc

    from distgen.types.cells import Cells

    rng = np.random.default_rng(3)
    n, g = 2000, 600
    counts = rng.poisson(0.5, (n, g)).astype(np.float32)
    x = _variants(counts)[kind]
    unit = n * g * 8  # one float64 sample
    labels = np.array(["ctrl"] * 600 + ["A"] * 1400)
    genes = [f"g{i}" for i in range(g)]
    pred, real = (Cells(torch.as_tensor(x.copy()), labels, genes, control="ctrl") for _ in range(2))
    tracemalloc.start()
    try:
        N.signature(pred.X)
        one = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        N.check_files({"pred": pred, "real": real})
        both = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert one < 3.4 * unit, one / unit
    assert both < 4.4 * unit, both / unit


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_an_integer_x_holding_its_types_minimum_is_not_refused_as_zeros(dtype):
    """At d385726 the zeros test took ``abs()`` of ``X`` in its own integer type, where the type's
    minimum stays negative (abs(-128) is -128 in int8), so an otherwise-zero integer file holding that value was refused as
    "only zeros"; ``aminmax`` reads both ends without ``abs`` (changed without a word: pinned here)."""
    from distgen.types.cells import Cells

    labels = np.array(["ctrl"] * 5 + ["A"] * 5)
    genes = [f"g{i}" for i in range(6)]
    real = Cells(torch.rand(10, 6, generator=torch.Generator().manual_seed(0)) + 0.5, labels, genes, control="ctrl")
    x = torch.zeros(10, 6, dtype=dtype)
    x[7, 1] = torch.iinfo(dtype).min
    try:
        N.check_control_scale(Cells(x, labels, genes, control="ctrl"), real)
    except ScaleMismatchError as err:
        assert "holds only zeros" not in str(err)


def test_a_value_sample_given_where_a_files_values_are_taken_is_read_as_drawn(monkeypatch):
    """``check_same_scale`` turns both sides into ``ValueSample``s and hands them to its helpers; a
    helper that drew its own sample (``io._sampled``, as ``_below_zero_words`` did) got a
    ``ValueSample`` and raised ``TypeError`` (no ``shape``/``len``). ``_sampled`` now reads a sample as drawn, no second draw."""
    rng = np.random.default_rng(4)
    x = np.log1p(rng.poisson(0.5, (3000, 20)).astype(np.float32))
    calls: list[int] = []
    rows = io.sample_rows

    def counted(v, n=io.SCALE_SAMPLE_ROWS):
        calls.append(1)
        return rows(v, n)

    for form in (x, torch.as_tensor(x), sp.csr_matrix(x)):
        s = ValueSample(form)
        calls.clear()
        monkeypatch.setattr(io, "sample_rows", counted)
        got = io._sampled(s)
        monkeypatch.setattr(io, "sample_rows", rows)
        assert got is s.raw and not calls
        assert np.array_equal(got, io._sampled(form))
        io.check_scale(s, "pred", strict=True)  # log values: no refusal, from the sample as from the file
