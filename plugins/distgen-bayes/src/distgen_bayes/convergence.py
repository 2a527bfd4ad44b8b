"""Whether inference reached its posterior: the checks behind the warnings ``bayes_hier.fit`` gives.

An SVI fit stopped while its loss was still falling, or NUTS chains that diverged or disagree, give
a posterior that can be far from the model's, and predictions from it look like any other. These
checks read the diagnostics of ``distgen_bayes.inference`` (no JAX needed) and say what to change.
Under ``distgen run`` the warnings also become notes of the run's evaluation.

NUTS's R-hat and effective sample size (``rank_split_rhat``, ``ess_bulk``; they import numpyro when called) are those of
Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021), "Rank-normalization, folding, and localization: an improved
R-hat for assessing convergence of MCMC", Bayesian Analysis 16(2), as arviz computes its defaults
(``rhat(method="rank")``, ``ess(method="bulk")``; equal to 1e-9 in tests/test_chain_diagnostics.py). Draws are
``[chains, draws, ...]``, each value computed per trailing element. Taken from numpyro: ``gelman_rubin`` (R-hat of the
rank-normalised split draws, and of the same folded about their median) and ``autocovariance``. Written here: the rank
normalisation (scipy's ``rankdata`` and ``ndtri``) and Geyer's sequence turning the autocorrelations into an ESS
(``_ess_of``, all elements at once), because numpyro's ``effective_sample_size`` is another estimator. On the same rank-normalised split draws
it differs from arviz's bulk ESS in 168 of 216 draw sets (1-4 chains, 4-1,000 draws, six kinds) and is negative in 55
(-7,240 where arviz gives 5,544 on 2 x 1,000 antithetic draws; -44.7 on 1 x 4 iid draws), because it

1. keeps the first autocorrelation pair ``1 + rho_1`` when it is negative (arviz's sequence stops before it), and
2. has no floor ``tau >= 1 / log10 S`` (arviz's and Stan's cap ``ESS <= S log10 S``): a first pair below 1/2 gives a
   negative tau, so a negative ESS;
3. leaves out the positive even lag after the last kept pair (Vehtari et al.'s improvement for antithetic chains,
   which NUTS gives on near-Gaussian posteriors);
4. starts its monotone sequence at the second pair (a second pair above the first is kept);
5. sums pairs up to lag N instead of N - 3.

numpyro's ``summary``, which ``nuts_diagnostics`` read before, gave that ESS of the raw unsplit chains (-2,041 on
2 x 1,000 antithetic draws) and the classic ``split_gelman_rubin`` of the raw draws (arviz's ``method="split"``), which
reads chains of one mean and 3x the spread as converged (0.999).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: SVI: the largest change of the mean loss between the last two tenths of the steps, as a fraction of the
#: loss's range over the fit, for a trace that has flattened (converged fits measured here: 0.001 to 0.004;
#: 200 of the 3,000 steps a fit needed on 1,400 cells of Norman K562/A172 data: 0.032)
SVI_REL_CHANGE = 0.01
#: SVI: fewer steps than this leave no trace to judge (one step compared its loss with itself: "converged")
SVI_MIN_STEPS = 10
#: NUTS: the largest split R-hat of chains that agree (Vehtari et al. 2021 recommend 1.01; ArviZ's default)
R_HAT = 1.01


def convergence_problems(diagnostics: Mapping[str, Any], steps_knob: str = "steps") -> list[str]:
    """Messages for each sign that inference did not reach its posterior (empty when none)."""
    d = diagnostics
    out = []
    if d.get("method") == "svi" and d.get("steps", SVI_MIN_STEPS) < SVI_MIN_STEPS:
        out.append(f"bayes_hier: SVI ran {d['steps']} step(s), too few for its loss trace to show whether it converged (a trace "
                   f"of one step read as flat); the posterior is close to the guide's starting point: raise {steps_knob}")
    elif d.get("method") == "svi" and d.get("elbo_rel_change", 0.0) > SVI_REL_CHANGE:
        out.append(
            f"bayes_hier: SVI had not converged after {d['steps']} steps: the loss (negative ELBO) still changed by "
            f"{d['elbo_rel_change']:.1%} of its range over the last tenth of the steps (converged: below {SVI_REL_CHANGE:.0%}), "
            f"so the posterior, and every prediction from it, may be far from the model's; raise {steps_knob} "
            "(diagnostics['elbo_trace'] shows the loss)"
        )
    if d.get("method") == "nuts":
        if d.get("divergences", 0) > 0:
            out.append(f"bayes_hier: NUTS had {d['divergences']} divergent transition(s) after warmup: the draws may miss part of "
                       "the posterior; raise target_accept (e.g. 0.95) or num_warmup")
        if not d.get("r_hat_max", 1.0) <= R_HAT:  # NaN (constant draws of a site) is no proof of agreement
            out.append(f"bayes_hier: NUTS chains disagree (rank-normalised split R-hat up to {d['r_hat_max']:.3f}, above {R_HAT}; smallest effective "
                       f"sample size {d.get('ess_min', float('nan')):.0f}): raise num_warmup and num_samples")
    return out


# ---------------------------------------------------------------------------------------------- NUTS chain diagnostics
# Vehtari et al. (2021), as arviz's defaults: see the module docstring for what is numpyro's and what is written here.


def _split(x: np.ndarray) -> np.ndarray:
    """``[2M, N // 2, ...]``: each chain's first and last halves as chains of their own (an odd draw in the middle dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _rank_normal(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks of each element's (split) draws (ties share their average rank; Blom's offsets)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    m, n = x.shape[:2]
    ranks = rankdata(x.reshape(m * n, -1), method="average", axis=0).reshape(x.shape)
    return ndtri((ranks - 0.375) / (m * n + 0.25))


def _within_and_pooled(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(W, var+)``: mean within-chain variance, and the pooled estimate ``(N-1)/N W + B/N`` of the posterior variance."""
    m, n = x.shape[:2]
    within = x.var(axis=1, ddof=1).mean(axis=0)
    between_n = x.mean(axis=1).var(axis=0, ddof=1) if m > 1 else np.zeros_like(within)
    return within, within * (n - 1) / n + between_n


def _finite_varying(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element: ``(all draws finite, draws not all one value)``."""
    flat = x.reshape(x.shape[0] * x.shape[1], -1)
    finite = np.isfinite(flat).all(axis=0)
    with np.errstate(invalid="ignore"):
        varying = np.ptp(np.where(finite, flat, 0.0), axis=0) >= np.finfo(np.float64).resolution
    return finite.reshape(x.shape[2:]), varying.reshape(x.shape[2:])


def _checked(draws: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, finite, varying, split)``: the draws in float64, per element whether all are finite and not all one value, and
    the split chains (a non-finite element's draws as 0, so that the others are ranked as they are)."""
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2 or x.shape[1] < 4:
        raise ValueError(f"{what} needs draws [chains, draws >= 4, ...], got shape {x.shape}")
    finite, varying = _finite_varying(x)
    return x, finite, varying, _split(np.where(finite, x, 0.0))


def _rhat(split: np.ndarray, z: np.ndarray, finite: np.ndarray, varying: np.ndarray) -> np.ndarray:
    """The rank-normalised split R-hat from the split draws and their normal scores ``z`` (``_rank_normal(split)``)."""
    from numpyro.diagnostics import gelman_rubin

    folded = np.abs(split - np.median(split.reshape(-1, *split.shape[2:]), axis=0))
    bulk, tail = gelman_rubin(z), gelman_rubin(_rank_normal(folded))
    return np.where(finite & varying, np.fmax(bulk, tail), np.nan)  # fmax: folded draws all one value (chains stuck apart) leave the bulk's


def _ess(x: np.ndarray, z: np.ndarray, finite: np.ndarray, varying: np.ndarray) -> np.ndarray:
    """The bulk ESS from the draws and the normal scores ``z`` of their split chains (``_rank_normal(split)``)."""
    rho = _autocorrelation(z).reshape(z.shape[1], -1)
    total = z.shape[0] * z.shape[1]
    ess = _ess_of(rho, total).reshape(x.shape[2:])
    return np.where(finite, np.where(varying, ess, float(x.shape[0] * x.shape[1])), np.nan)


def rank_split_rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat: the larger of the bulk (ranks) and tail (ranks of ``|x - median|``) R-hats.

    Flags chains of one mean but different spread, which the classic split R-hat reads as converged. The split drops
    the middle draw of an odd count, and the fold is about the median of the split draws, so that draw counts nowhere
    (arviz's convention). One chain is compared with itself (its two
    halves, as numpyro and Stan do; arviz gives NaN below two chains). NaN where a draw is not finite or every draw is
    one value (a stuck sampler is no proof of agreement), as arviz gives.
    """
    _, finite, varying, split = _checked(draws, "R-hat")
    return _rhat(split, _rank_normal(split), finite, varying)


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    """``[N, ...]``: the combined autocorrelation of split chains at each lag (Stan's estimator: numpyro's biased
    autocovariances, ``1 - (W - mean autocovariance) / var+``)."""
    from numpyro.diagnostics import autocovariance

    within, pooled = _within_and_pooled(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (within - autocovariance(x, axis=1).mean(axis=0)) / pooled
    rho[0] = 1.0
    return rho


def _ess_of(rho: np.ndarray, total: int) -> np.ndarray:
    """``[E]``: the ESS of each element from its autocorrelations ``rho`` ``[N, E]``: Geyer's initial positive sequence of
    pair sums ``rho[2p] + rho[2p+1]`` (to the first that is not positive, itself kept when zero; pairs up to lag N - 3),
    made monotone (each sum at most the one before it), with the positive even half of the first pair left out kept (the
    improvement for antithetic chains); ``tau`` capped below at ``1 / log10(total)``. All elements at once (a Python loop
    per element until 2026-12-07: 0.9 s on a 5,000-element site)."""
    n = rho.shape[0]
    k = 1 + max(0, (n - 3) // 2)  # pairs p with 2p < N - 2 after the first
    even = rho[0 : 2 * k : 2].copy()
    even[0] = 1.0
    sums = even + rho[1 : 2 * k : 2]
    with np.errstate(invalid="ignore"):
        stop = ~(sums > 0)  # NaN (an element of one value: replaced by the caller) stops at once
    last = np.where(stop.any(axis=0), stop.argmax(axis=0), k - 1)  # the last pair looked at
    before = np.arange(k)[:, None] < last  # the pairs before it, all positive: made monotone and counted twice
    monotone = np.where(before, np.minimum.accumulate(np.where(before, sums, np.inf), axis=0), 0.0)
    cols = np.arange(rho.shape[1])
    last_even, last_sum = even[last, cols], sums[last, cols]
    with np.errstate(invalid="ignore"):  # only its even lag counts: when the pair was kept, or the lag is positive
        tail = np.where((last_sum >= 0) | (last_even > 0), last_even, 0.0)
    tau = -1.0 + 2.0 * monotone.sum(axis=0) + tail
    return total / np.maximum(tau, 1.0 / np.log10(total))


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size: of the rank-normalised split chains (a positive count, at most ``S log10 S``).

    Every draw one value: ``S`` (no Monte Carlo error, as arviz gives); a draw not finite: NaN.
    """
    x, finite, varying, split = _checked(draws, "an effective sample size")
    return _ess(x, _rank_normal(split), finite, varying)


def rank_diagnostics(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rank_split_rhat(draws), ess_bulk(draws))``, the same values to the bit, with the split draws ranked once for
    both (``nuts_diagnostics``: one site's draws are ranked twice, not three times)."""
    x, finite, varying, split = _checked(draws, "R-hat and an effective sample size")
    z = _rank_normal(split)
    return _rhat(split, z, finite, varying), _ess(x, z, finite, varying)


__all__ = ["R_HAT", "SVI_MIN_STEPS", "SVI_REL_CHANGE", "convergence_problems", "ess_bulk", "rank_diagnostics", "rank_split_rhat"]
