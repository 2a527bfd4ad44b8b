"""Raw counts carrying float dust (values within 1e-6 of an integer), as cell-eval2 0.20.0 accepts them.

cell-eval2's counts presets (``full``, ``vcc2026``) take a value as a count when it is within 1e-6 of the NEAREST
integer (``cell_eval2.norm._INT_ATOL``, the bound as the input's dtype represents it) and non-negative, and score the
stored values unrounded. distgen's counts profiles refused such files as fractional (exact ``x == floor(x)``), and its
scale detection read them as log-normalised. The same rule now decides counts everywhere: ``check_counts`` (counts
profiles), ``value_scale`` / ``check_scale`` (the log profiles' "looks like raw counts" refusal), ``stored_scales.looks``.
"""

from __future__ import annotations

import numpy as np
import pytest

COUNTS = np.array([[0, 1, 3, 7, 2], [2, 5, 0, 1, 40], [9, 0, 1, 12, 3]], dtype=np.float64)


def _with(dtype, value: float) -> np.ndarray:
    """``COUNTS`` in ``dtype`` with one stored count replaced by ``value``."""
    x = COUNTS.copy()
    x[1, 3] = value
    return x.astype(dtype)


def _dusted(dtype, dust: float) -> np.ndarray:
    x = COUNTS.copy()
    x[x > 0] += dust  # every stored count, as a float64 transform leaves it
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x", [lambda d: _dusted(d, 1e-7), lambda d: _with(d, 0.9999995), lambda d: _with(d, 3 - 9e-7)],
                         ids=["1e-7_on_every_count", "0.9999995", "3-9e-7"])
def test_counts_within_1e_6_of_an_integer_are_counts(dtype, x):
    from distgen.evaluation.io import ValueScaleError, check_counts, check_scale, value_scale
    from distgen.evaluation.stored_scales import looks

    values = x(dtype)
    check_counts(values, "real")  # accepted, as cell-eval2's counts presets accept it
    scale, vmax = value_scale(values)
    assert scale == "counts" and 40 <= vmax < 40.001
    with pytest.raises(ValueScaleError, match="look like raw counts"):  # a log profile refuses it as counts
        check_scale(values, "real", strict=True)
    with pytest.raises(ValueScaleError, match="look like raw counts"):  # above 30 even unstrict
        check_scale(values, "real")
    assert looks(values.astype(np.float64).ravel()) == "counts"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("value", [0.5, 3 + 5e-6, 3 - 5e-6, 7.00001, 1.5e-6])
def test_values_further_from_an_integer_are_refused(dtype, value):
    from distgen.evaluation.io import ValueScaleError, check_counts, check_scale, value_scale

    values = _with(dtype, value)
    with pytest.raises(ValueScaleError, match="fractional or negative"):
        check_counts(values, "pred")
    assert value_scale(values)[0] == "normalized"  # fractional, max 40 > LOG_MAX: not counts
    check_scale(values, "pred", strict=True)  # not refused as raw counts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_negative_dust_is_refused_as_cell_eval2_refuses_it(dtype):
    from distgen.evaluation.io import ValueScaleError, check_counts

    with pytest.raises(ValueScaleError, match="fractional or negative"):
        check_counts(_with(dtype, -1e-7), "pred")


def test_the_bound_is_1e_6_as_the_values_dtype_holds_it():
    # float32 spacing is 9.54e-7 in [8, 16) and 1.91e-6 in [16, 32): one ulp above 10 is within 1e-6, one above 16 is not
    from distgen.evaluation.io import ValueScaleError, check_counts

    check_counts(_with(np.float32, float(np.nextafter(np.float32(10), np.float32(11)))), "real")
    with pytest.raises(ValueScaleError):
        check_counts(_with(np.float32, float(np.nextafter(np.float32(16), np.float32(17)))), "real")
    check_counts(_with(np.float64, 100.0000009), "real")
    with pytest.raises(ValueScaleError):
        check_counts(_with(np.float64, 100.0000011), "real")


def test_log_normalised_values_stay_log():
    from distgen.evaluation.io import check_counts, check_scale, value_scale
    from distgen.evaluation.stored_scales import looks

    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(50, 30)).astype(np.float64)
    logged = np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
    assert value_scale(logged)[0] == "log"
    check_scale(logged, "real", strict=True)
    assert looks(logged.astype(np.float64).ravel()) == "lognorm"
    with pytest.raises(ValueError, match="fractional"):
        check_counts(logged, "real")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ones_with_dust_are_no_count_scale(dtype):
    # 0/1 values say nothing about the scale (value_scale's "empty"), with or without dust
    from distgen.evaluation.io import check_scale, value_scale

    x = np.array([[0, 1, 1], [1, 0, 1]], dtype=np.float64)
    x[x > 0] += 1e-7
    assert value_scale(x.astype(dtype))[0] == "empty"
    check_scale(x.astype(dtype), "real", strict=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_all_below_the_tolerance_are_no_stored_counts(dtype):
    # a layer of tiny values (proportions, counts scaled by 1e-8) lies within 1e-6 of 0 everywhere: it holds no count of
    # 1 or more, so stored_scales must not hint that it "looks like raw counts" (it did, after the 1e-6 rule came in);
    # a count layer with dust still does
    from distgen.evaluation.stored_scales import looks

    assert looks((COUNTS * 1e-8).astype(dtype).ravel()) == "lognorm"
    assert looks(_dusted(dtype, 1e-7).ravel()) == "counts"


def test_off_integer_keeps_one_temporary_the_size_of_its_input():
    # value_scale / check_counts run it on up to 2,000 whole rows: v - rint(v) then abs made two more full-size copies
    import tracemalloc

    from distgen.evaluation.io import off_integer

    x = np.full((500, 2000), 3.0)  # 8 MB
    tracemalloc.start()
    off_integer(x, 1e-6)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * x.nbytes


@pytest.mark.slow
@pytest.mark.celleval
@pytest.mark.parametrize(("profile", "dust"), [("celleval2", 1e-7), ("vcc2026", 1e-7), ("celleval2", 5e-6)])
def test_a_dust_count_pair_is_scored_or_refused_as_cell_eval2_does(tmp_path, profile, dust):
    # 1e-7 on every stored count of a float64 pair: cell-eval2's `full` and `vcc2026` presets score the stored float64
    # values (unrounded), distgen refused the pair as fractional, then (reading it as float32, where the dust of counts >= 2
    # vanishes) scored its float32 copy: 9 Wilcoxon values off by up to 5e-3. Now every value agrees at the tie level
    # (1e-12). 5e-6: both refuse it as fractional
    import anndata as ad

    from .adversarial import _exe, differences, write_case

    if _exe("cell-eval2") is None:
        pytest.skip("the cell-eval2 command is not installed")
    pred, real = write_case("float64_x", 2, tmp_path, counts=True)
    for path in (pred, real):
        a = ad.read_h5ad(path)
        assert a.X.dtype == np.float64
        a.X.data += dust
        a.write_h5ad(path)
    bad, compared, note = differences(profile, pred, real, tmp_path, tol=1e-12, no_target_genes=True)
    assert not bad, bad[:5]
    if dust < 1e-6:
        assert compared > 60 and not note, (compared, note)  # 476 values (full), 80 (vcc2026)
    else:
        assert note.startswith("both refuse") and "fractional" in note, note
