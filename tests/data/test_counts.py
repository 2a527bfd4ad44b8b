"""The count-space math of ``distgen predict --counts``: inverse of log1p(normalize_total), observation models, dispersions."""

import numpy as np
import pandas as pd
import pytest

from distgen.data import counts as C

T = 1e4


def _raw(n=400, g=30, seed=0, theta=None):
    """Raw counts of ``n`` cells with per-gene means and varying depths (NB with ``theta`` when given), and their sizes."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(1.0, 1.0, g) + 0.05
    rate /= rate.sum()
    depth = rng.uniform(2000, 8000, n)
    mu = depth[:, None] * rate[None]
    lam = rng.gamma(theta, mu / theta) if theta is not None else mu
    c = rng.poisson(lam).astype(np.float64)
    return c, c.sum(1)


def _lognorm(c, size):
    return np.log1p(c / size[:, None] * T)  # what scanpy's normalize_total(target_sum=T) + log1p gives


def test_round_trip_with_the_cells_own_size_is_exact():
    c, size = _raw()
    x = _lognorm(c, size).astype(np.float32)
    back = C.to_counts(x, size, T, "round")
    assert np.array_equal(back, c)
    assert np.allclose(C.to_lognorm(back, T, size), x, atol=1e-5)
    assert np.allclose(C.to_lognorm(back, T), x, atol=1e-5)  # size = the row total, as normalize_total takes it


@pytest.mark.parametrize("model", C.COUNT_MODELS)
def test_every_model_gives_non_negative_integers(model):
    c, size = _raw(theta=3.0)
    x = _lognorm(c, size)
    theta = C.fit_dispersion(x, size, T)
    out = C.to_counts(x, size, T, model, theta, np.random.default_rng(1))
    assert out.shape == x.shape and (out >= 0).all() and np.array_equal(out, np.floor(out))


@pytest.mark.parametrize("model", ["poisson", "nb"])
def test_random_models_keep_the_expected_counts_on_average(model):
    c, size = _raw(n=3000, theta=5.0, seed=2)
    x = _lognorm(c, size)
    theta = C.fit_dispersion(x, size, T)
    out = C.to_counts(x, size, T, model, theta, np.random.default_rng(3))
    # per gene, mean normalised expression (counts per T) before and after, where genes are expressed enough
    before, after = np.expm1(x).mean(0), (out / size[:, None] * T).mean(0)
    keep = before > 50
    assert keep.sum() > 5
    assert np.max(np.abs(after[keep] / before[keep] - 1)) < 0.05
    # and in log space the pseudobulk of the re-normalised counts stays close to the original
    assert np.max(np.abs(C.to_lognorm(out, T, size).mean(0) - x.mean(0))[keep]) < 0.25


def test_fit_dispersion_recovers_a_known_theta_and_poisson_has_none():
    c, size = _raw(n=6000, g=20, theta=2.0, seed=4)
    theta = C.fit_dispersion(_lognorm(c, size), size, T)
    assert np.median(theta) == pytest.approx(2.0, rel=0.15)
    p, psize = _raw(n=6000, g=20, seed=5)
    assert np.median(C.fit_dispersion(_lognorm(p, psize), psize, T)) > 50


def test_fit_dispersion_within_groups_ignores_the_effects_between_them():
    a, size = _raw(n=3000, g=10, theta=4.0, seed=6)
    x = np.concatenate([_lognorm(a, size), _lognorm(3 * a, size)])  # group 2: 3x the expression of every gene at the same depth
    sizes = np.concatenate([size, size])
    groups = ["ctrl"] * 3000 + ["pert"] * 3000
    pooled, within = C.fit_dispersion(x, sizes, T), C.fit_dispersion(x, sizes, T, groups)
    assert np.median(within) > 2 * np.median(pooled)


def test_library_sizes_read_a_recorded_column_or_fall_back_with_a_note():
    obs = pd.DataFrame({"total_counts": [100.0, 200.0, 300.0]})
    s, where = C.library_sizes(obs, 3, T)
    assert list(s) == [100.0, 200.0, 300.0] and "total_counts" in where
    s, where = C.library_sizes(pd.DataFrame({"x": [1, 2, 3]}), 3, T)
    assert (s == T).all() and "no library sizes" in where


def test_bad_input_is_refused_with_one_line_errors():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="one of round, poisson, nb"):
        C.to_counts(x, 1000.0, T, "gaussian")
    with pytest.raises(ValueError, match="needs per-gene dispersions"):
        C.to_counts(x, 1000.0, T, "nb")
    with pytest.raises(ValueError, match="library sizes"):
        C.to_counts(x, np.array([1000.0, -1.0]), T, "round")


@pytest.mark.parametrize("bad", [[100.0, float("nan"), 300.0], [100.0, float("inf"), 300.0], [100.0, -5.0, 300.0], ["a", "b", "c"]])
def test_a_recorded_library_size_column_with_unusable_values_is_refused_not_skipped(bad):
    # skipping it fell back to target_sum for every cell, with a note saying no column was recorded
    with pytest.raises(ValueError, match="total_counts"):
        C.library_sizes(pd.DataFrame({"total_counts": bad}), 3, T)


@pytest.mark.parametrize("model", ["round", "poisson", "nb"])
def test_a_cell_with_no_counts_keeps_size_zero_and_gets_zero_counts(model):
    # a zero-count cell loads as an all-zero row (distgen records size 0); it was skipped as unusable, which put every
    # cell of the dataset at target_sum
    s, where = C.library_sizes(pd.DataFrame({C.LIBRARY_COL: [100.0, 0.0]}), 2, T)
    assert list(s) == [100.0, 0.0] and C.LIBRARY_COL in where
    x = np.log1p(np.array([[3.0, 1.0], [0.0, 0.0]]) / 100.0 * T)
    theta = np.full(2, 5.0) if model == "nb" else None
    out = C.to_counts(x, s, T, model, theta, np.random.default_rng(0))
    assert (out[1] == 0).all() and out[0].sum() > 0


def test_cells_with_no_counts_do_not_enter_the_dispersion_fit():
    a, size = _raw(n=2000, g=6, theta=4.0, seed=3)
    x = _lognorm(a, size)
    with_empty = np.concatenate([x, np.zeros((50, x.shape[1]))])
    sizes = np.concatenate([size, np.zeros(50)])
    assert np.allclose(C.fit_dispersion(with_empty, sizes, T), C.fit_dispersion(x, size, T))


@pytest.mark.parametrize("model", C.COUNT_MODELS)
@pytest.mark.parametrize("value", [60.0, 800.0, np.inf, np.nan])
def test_values_no_cell_has_are_refused_naming_where_not_a_bare_sampler_error(model, value):
    # An untrained or diverged model's outputs: numpy's Poisson said only "lam value too large" (exit 1 in predict).
    x = np.log1p(np.full((3, 4), 2.0))
    x[1, 2] = value
    with pytest.raises(ValueError, match=r"cell 1, gene column 2: log-normalised value .*not log-normalised expression"):
        C.to_counts(x, 1e4, 1e4, model, dispersion=np.ones(4))


def test_the_largest_log_values_of_real_cells_convert():
    # log1p(1e4 * 1e4 / 1e4): a cell whose every count sits in one gene, at a depth of 10,000 normalised to 10,000
    x = np.array([[np.log1p(1e4), 0.0]])
    assert C.to_counts(x, 1e4, 1e4, "round")[0, 0] == 1e4
