"""NUTS's R-hat and effective sample size: rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021).

``nuts_diagnostics`` read numpyro's ``summary``: the classic split R-hat (BDA3, as arviz's ``method="split"``) and
an ESS of unsplit chains whose first autocorrelation pair is never truncated, so antithetic chains (which NUTS gives
on near-Gaussian posteriors) and short chains had a negative "effective sample size" (-2,041 for 2 x 1,000 draws),
and chains of one mean but different spread read as converged (R-hat 0.999). The parity test runs where arviz is
installed (not a dependency).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from distgen_bayes.convergence import ess_bulk, rank_split_rhat


def _antithetic(rng: np.random.Generator, chains: int = 2, n: int = 1000) -> np.ndarray:
    return np.stack([(-1.0) ** np.arange(n) + 0.1 * rng.normal(size=n) for _ in range(chains)])


def _ar1(rng: np.random.Generator, chains: int, n: int, phi: float) -> np.ndarray:
    x, e = np.zeros((chains, n)), rng.normal(size=(chains, n))
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    cases = {
        "iid 4x1000": rng.normal(size=(4, 1000)),
        "iid 2x4": rng.normal(size=(2, 4)),
        "iid 2x5": rng.normal(size=(2, 5)),
        "iid 3x7": rng.normal(size=(3, 7)),
        "ar0.9 2x500": _ar1(rng, 2, 500, 0.9),
        "ar0.99 4x300": _ar1(rng, 4, 300, 0.99),
        "antithetic 2x1000": _antithetic(rng),
        "spread 1:3 2x1000": np.stack([rng.normal(size=1000), 3 * rng.normal(size=1000)]),
        "shifted 2x200": np.stack([rng.normal(size=200), 2 + rng.normal(size=200)]),
        "cauchy 4x1000": rng.standard_cauchy(size=(4, 1000)),
        "ties 3x101": rng.integers(0, 4, size=(3, 101)).astype(float),
        "float32 2x64": rng.normal(size=(2, 64)).astype(np.float32),
        # odd draw counts whose tail R-hat is the larger: the fold is about the median of the split draws (the middle
        # draw dropped), which a fold about the median of every draw missed (1.232 / 0.922 / 0.798 against arviz's
        # 1.149 / 0.900 / 1.065: the last, over the 1.01 threshold, went unwarned)
        "odd tail 3x5": np.random.default_rng(1).normal(size=(3, 5)),
        "odd ties 4x7": np.random.default_rng(14).integers(0, 3, size=(4, 7)).astype(float),
        "odd antithetic 4x5": _antithetic(np.random.default_rng(1), 4, 5),
    }
    return cases


def test_ess_of_antithetic_and_short_chains_is_a_positive_count() -> None:
    """numpyro's estimate was -2,041 for antithetic chains and negative for some 2 x 4 draws (the round's -2,053)."""
    x = _antithetic(np.random.default_rng(1))
    ess = float(ess_bulk(x))
    assert x.size < ess <= x.size * np.log10(x.size)  # antithetic draws are worth more than independent ones, within the cap
    for seed in range(30):
        short = np.random.default_rng(seed).normal(size=(2, 4))
        assert 0 < float(ess_bulk(short)) <= short.size * np.log10(short.size)
    iid = np.random.default_rng(2).normal(size=(4, 1000))
    assert 3500 < float(ess_bulk(iid)) < 4500


def test_rhat_flags_chains_of_one_mean_and_different_spread() -> None:
    rng = np.random.default_rng(3)
    x = np.stack([rng.normal(size=1000), 3 * rng.normal(size=1000)])
    assert float(rank_split_rhat(x)) > 1.1  # the classic split R-hat: 0.999
    assert float(rank_split_rhat(rng.normal(size=(4, 1000)))) < 1.01


def test_constant_nan_and_single_chains() -> None:
    const = np.full((2, 100), 0.1, np.float32)
    assert np.isnan(rank_split_rhat(const)) and float(ess_bulk(const)) == 200  # stuck draws: no R-hat; no Monte Carlo error
    stuck_apart = np.stack([np.ones(100), 2 * np.ones(100)])
    assert float(rank_split_rhat(stuck_apart)) > 1.01
    x = np.random.default_rng(4).normal(size=(2, 100))
    x[0, 5] = np.nan
    assert np.isnan(rank_split_rhat(x)) and np.isnan(ess_bulk(x))
    one = np.random.default_rng(5).normal(size=(1, 400))
    assert float(rank_split_rhat(one)) < 1.05 and 300 < float(ess_bulk(one)) < 500  # one chain: its two halves compared
    one[0, 200:] += 3
    assert float(rank_split_rhat(one)) > 1.1


def test_the_middle_draw_of_an_odd_count_is_left_out_of_rhat() -> None:
    """Split chains drop the middle draw of an odd count, in the bulk and in the folded tail alike (arviz's convention):
    the fold was about the median of every draw, so the dropped draw still moved R-hat (1.232 against arviz's 1.149 on
    these 3 x 5 draws, 1.324 with the middle draws at 100; 43 of 200 small odd cases differed)."""
    x = np.random.default_rng(1).normal(size=(3, 5))
    r = float(rank_split_rhat(x))
    for value in (-100.0, 0.0, 100.0):
        y = x.copy()
        y[:, 2] = value
        assert float(rank_split_rhat(y)) == pytest.approx(r, rel=1e-12)


def test_matches_arviz_on_small_odd_and_even_grids() -> None:
    """Every chain count 1-4 and draw count 4-11 or 101, five kinds of draws: R-hat and bulk ESS equal arviz's to 1e-9
    (one chain: arviz gives no R-hat, see ``rank_split_rhat``)."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(13)
    for chains in (1, 2, 3, 4):
        for n in (4, 5, 6, 7, 9, 11, 101):
            for x in (rng.normal(size=(chains, n)), _ar1(rng, chains, n, 0.9), _antithetic(rng, chains, n),
                      rng.exponential(size=(chains, n)) ** 3, rng.integers(0, 3, size=(chains, n)).astype(float)):
                assert float(ess_bulk(x)) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-9), (chains, n, x)
                if chains > 1:
                    assert float(rank_split_rhat(x)) == pytest.approx(float(az.rhat(x, method="rank")), rel=1e-9), (chains, n, x)


def test_vectorised_over_the_site_shape() -> None:
    cases = _cases()
    stacked = np.stack([cases["iid 4x1000"], _ar1(np.random.default_rng(6), 4, 1000, 0.5)], axis=-1).reshape(4, 1000, 1, 2)
    r, e = rank_split_rhat(stacked), ess_bulk(stacked)
    assert r.shape == e.shape == (1, 2)
    assert float(r[0, 0]) == pytest.approx(float(rank_split_rhat(cases["iid 4x1000"])), rel=1e-12)
    assert float(e[0, 0]) == pytest.approx(float(ess_bulk(cases["iid 4x1000"])), rel=1e-12)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_matches_arviz(name: str) -> None:
    az = pytest.importorskip("arviz")
    x = _cases()[name]
    assert float(rank_split_rhat(x)) == pytest.approx(float(az.rhat(x.astype(np.float64), method="rank")), rel=1e-9)
    assert float(ess_bulk(x)) == pytest.approx(float(az.ess(x.astype(np.float64), method="bulk")), rel=1e-9)


def test_nuts_diagnostics_report_the_rank_normalised_values() -> None:
    """``nuts_diagnostics`` on recorded draws: positive ESS for an antithetic site, R-hat flags a site of unequal spread."""
    pytest.importorskip("numpyro")
    from distgen_bayes.inference import nuts_diagnostics

    rng = np.random.default_rng(7)
    draws = {
        "mu0": _antithetic(rng, 2, 400)[..., None],  # [chains, draws, 1]
        "sigma_rep": np.stack([1 + 0.1 * rng.normal(size=400), 1 + 0.3 * rng.normal(size=400)])[..., None],
    }
    mcmc = SimpleNamespace(num_chains=2, num_samples=400, get_samples=lambda group_by_chain=True: draws,
                           get_extra_fields=lambda: {"diverging": np.zeros((2, 400), bool)})
    d = nuts_diagnostics(mcmc)
    assert d["per_site"]["mu0"]["ess_min"] > 0
    assert d["ess_min"] > 0
    assert d["per_site"]["sigma_rep"]["r_hat_max"] > 1.1 and d["r_hat_max"] > 1.1


def test_rank_diagnostics_are_rhat_and_ess_to_the_bit() -> None:
    """One rank normalisation of the split draws serves both (``rank_diagnostics``): the same values as
    ``rank_split_rhat`` and ``ess_bulk`` called alone, bit for bit, constant and non-finite draws included."""
    from distgen_bayes.convergence import rank_diagnostics

    cases = {**_cases(), "site 2x50x3x2": np.random.default_rng(3).normal(size=(2, 50, 3, 2)),
             "nan": np.array([[0.0, 1, np.nan, 2, 3], [1, 2, 3, 4, 5]]), "constant": np.ones((2, 6))}
    with np.errstate(invalid="ignore", divide="ignore"):
        for x in cases.values():
            r, e = rank_diagnostics(x)
            np.testing.assert_array_equal(r, rank_split_rhat(x))
            np.testing.assert_array_equal(e, ess_bulk(x))


def test_nuts_diagnostics_rank_normalise_each_site_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split draws' ranks once (shared by R-hat and ESS) and the folded draws' once: three times a site before."""
    pytest.importorskip("numpyro")
    import distgen_bayes.convergence as C
    from distgen_bayes.inference import nuts_diagnostics

    calls = []
    real = C._rank_normal
    monkeypatch.setattr(C, "_rank_normal", lambda x: calls.append(x.shape) or real(x))
    rng = np.random.default_rng(2)
    draws = {"a": rng.normal(size=(2, 40, 3)), "b": rng.normal(size=(2, 40))}
    mcmc = SimpleNamespace(num_chains=2, num_samples=40, get_samples=lambda group_by_chain=True: draws,
                           get_extra_fields=lambda: {"diverging": np.zeros((2, 40), bool)})
    d = nuts_diagnostics(mcmc)
    assert len(calls) == 4
    assert d["per_site"]["a"]["r_hat_max"] == float(np.nanmax(rank_split_rhat(draws["a"])))
    assert d["per_site"]["b"]["ess_min"] == float(np.nanmin(ess_bulk(draws["b"])))


def test_one_site_of_elements_whose_sequences_stop_at_different_lags_matches_arviz_per_element() -> None:
    """``_ess_of`` takes every element of a site at once (it was a Python loop per element). Elements whose
    Geyer sequences end at lag 1 (antithetic), early (iid), late (AR 0.99) or run to the end of a short chain, with ties,
    beside a constant and a non-finite one, each equal arviz's bulk ESS to 1e-9 in one call."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(21)
    for chains, n in ((2, 1000), (3, 7), (4, 5)):
        columns = [rng.normal(size=(chains, n)), _ar1(rng, chains, n, 0.5), _ar1(rng, chains, n, 0.99),
                   _antithetic(rng, chains, n), rng.integers(0, 3, size=(chains, n)).astype(float),
                   rng.exponential(size=(chains, n)) ** 3]
        site = np.stack([*columns, np.full((chains, n), 2.0), np.where(np.arange(n) == 1, np.nan, columns[0])], axis=-1)
        got = ess_bulk(site)
        for i, x in enumerate(columns):
            assert float(got[i]) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-9), (chains, n, i)
        assert got[-2] == chains * n and np.isnan(got[-1])
