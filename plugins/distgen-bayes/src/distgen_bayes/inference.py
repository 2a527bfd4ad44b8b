"""Posterior inference for the hierarchical model: SVI with an autoguide (default) or NUTS.

Both return posterior draws of the sites in ``hierarchical.POSTERIOR_SITES`` and a diagnostics
dict: the ELBO trace for SVI; R-hat and effective sample size for NUTS. Imports JAX (load lazily).
Nothing here forks: chains run sequentially in this process (JAX warns when a process forks after
it has started, and worker processes would do so).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO, autoguide, init_to_feasible, init_to_median

from distgen_bayes.convergence import rank_diagnostics
from distgen_bayes.hierarchical import POSTERIOR_SITES, ROTATION_INVARIANT, Priors, population_model

GUIDES: dict[str, Callable[..., Any]] = {
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "fullrank": autoguide.AutoMultivariateNormal,
    "diagonal": autoguide.AutoNormal,
}

#: Largest latent dimension for which a full-rank guide (a dense covariance) is allowed.
FULLRANK_MAX_DIM = 3000


def _model(data: dict[str, jnp.ndarray], n_factors: int, response_factors: bool, priors: Priors) -> Callable[..., None]:
    return partial(population_model, data, n_factors, response_factors, priors)


def _latent_dim(guide: Any) -> int:
    """Number of latent scalars the guide covers (read from its prototype trace after ``init``)."""
    sites = guide.prototype_trace.values()
    return sum(int(np.prod(s["value"].shape)) for s in sites if s["type"] == "sample" and not s["is_observed"])


def _draws(model: Callable[..., None], obs: jnp.ndarray, key: jax.Array, **predictive_kw: Any) -> dict[str, jnp.ndarray]:
    """Posterior draws of the kept sites, in one compiled program."""
    pred = Predictive(model, return_sites=list(POSTERIOR_SITES), **predictive_kw)
    return dict(jax.jit(lambda k: pred(k, obs=obs))(key))


def run_svi(
    data: dict[str, jnp.ndarray],
    obs: jnp.ndarray,
    *,
    n_factors: int,
    response_factors: bool,
    priors: Priors,
    guide: str,
    guide_rank: int,
    steps: int,
    learning_rate: float,
    num_samples: int,
    seed: int,
) -> tuple[dict[str, jnp.ndarray], dict[str, Any]]:
    """Fit an autoguide by SVI (Adam, ``steps`` steps); return ``num_samples`` posterior draws."""
    if guide not in GUIDES:
        raise ValueError(f"guide={guide!r} is not known; expected one of {sorted(GUIDES)}")
    model = _model(data, n_factors, response_factors, priors)
    k_init, k_run, k_draw = jax.random.split(jax.random.PRNGKey(seed), 3)
    # start at the prior's centre: every effect zero, every scale one (deterministic, cheap to compile)
    kw: dict[str, Any] = {"init_loc_fn": init_to_feasible}
    if guide == "lowrank":
        kw["rank"] = max(1, guide_rank)
    g = GUIDES[guide](model, **kw)
    svi = SVI(model, g, numpyro.optim.Adam(learning_rate), Trace_ELBO())
    state = jax.jit(lambda k: svi.init(k, obs=obs))(k_init)  # one compiled program instead of op-by-op set-up
    dim = _latent_dim(g)
    if guide == "fullrank" and dim > FULLRANK_MAX_DIM:
        raise ValueError(
            f"guide='fullrank' needs a dense {dim}x{dim} covariance (latent dim {dim} > {FULLRANK_MAX_DIM}); "
            "use guide='lowrank' or fewer n_components"
        )
    result = svi.run(k_run, steps, obs=obs, progress_bar=False, init_state=state)
    losses = np.asarray(result.losses, dtype=np.float64)
    draws = _draws(model, obs, k_draw, guide=g, params=result.params, num_samples=num_samples)
    return draws, svi_diagnostics(losses, guide, dim)


def svi_diagnostics(losses: np.ndarray, guide: str, latent_dim: int) -> dict[str, Any]:
    """The ELBO trace (negative ELBO per step, thinned to at most 500 points) and a convergence summary.

    ``elbo_rel_change`` compares the mean loss over the last 10% of steps with the 10% before it,
    relative to the spread of the trace: a value near zero means the trace has flattened.
    """
    n = len(losses)
    tail = max(1, n // 10)
    last, prev = losses[-tail:].mean(), losses[-2 * tail : -tail].mean() if n >= 2 * tail else losses[0]
    spread = max(float(np.ptp(losses)), 1e-12)
    stride = max(1, -(-n // 500))  # ceil: n // 500 kept up to 999 points (n = 999: stride 1)
    return {
        "method": "svi",
        "guide": guide,
        "latent_dim": latent_dim,
        "steps": n,
        "elbo_trace": [float(v) for v in losses[::stride]],
        "elbo_trace_stride": stride,
        "final_loss": float(last),
        "elbo_rel_change": float(abs(prev - last) / spread),
        "finite": bool(np.isfinite(losses).all()),
        "first_nonfinite_step": next((int(i) for i in np.flatnonzero(~np.isfinite(losses))[:1]), None),
    }


def run_nuts(
    data: dict[str, jnp.ndarray],
    obs: jnp.ndarray,
    *,
    n_factors: int,
    response_factors: bool,
    priors: Priors,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    target_accept: float,
    seed: int,
) -> tuple[dict[str, jnp.ndarray], dict[str, Any]]:
    """Sample the posterior with NUTS (chains run sequentially); return draws and R-hat / ESS."""
    model = _model(data, n_factors, response_factors, priors)
    k_run, k_draw = jax.random.split(jax.random.PRNGKey(seed))
    kernel = NUTS(model, target_accept_prob=target_accept, init_strategy=init_to_median(num_samples=15))
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="sequential", progress_bar=False)
    mcmc.run(k_run, obs=obs, extra_fields=("diverging",))
    draws = _draws(model, obs, k_draw, posterior_samples=mcmc.get_samples())
    return draws, nuts_diagnostics(mcmc)


def nuts_diagnostics(mcmc: MCMC) -> dict[str, Any]:
    """Worst rank-normalised split R-hat and smallest bulk ESS over every identified latent scalar, per site too.

    Sites identified only up to a rotation of the replicate factors (``ROTATION_INVARIANT``) are
    listed per site but left out of the headline ``r_hat_max`` / ``ess_min``: chains may settle
    in different rotations while every prediction (which depends on ``W W^T``) agrees.
    """
    # rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021, as arviz's defaults), not numpyro's summary: its ESS
    # was negative for antithetic or short chains and its classic split R-hat missed chains of unequal spread
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}  # in float64 one site at a time
    with warnings.catch_warnings():  # a site constant over its draws: R-hat all-NaN, kept NaN (numpy's RuntimeWarning says less)
        warnings.simplefilter("ignore", RuntimeWarning)
        per_site = {
            name: {"r_hat_max": float(np.nanmax(rhat)), "ess_min": float(np.nanmin(ess))}
            for name, s in samples.items() if s.size for rhat, ess in [rank_diagnostics(s)]
        }
    identified = {k: v for k, v in per_site.items() if k not in ROTATION_INVARIANT} or per_site
    diverging = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return {
        "method": "nuts",
        "num_chains": mcmc.num_chains,
        "num_samples": mcmc.num_samples,
        # np.max/np.min, not max/min: a NaN site (constant draws) is the headline wherever it stands; Python's max kept
        # NaN only when it came first, so a stuck site after a mixed one read as converged (2026-12-07 review)
        "r_hat_max": float(np.max([v["r_hat_max"] for v in identified.values()])),
        "ess_min": float(np.min([v["ess_min"] for v in identified.values()])),
        "divergences": diverging,
        "per_site": per_site,
    }
