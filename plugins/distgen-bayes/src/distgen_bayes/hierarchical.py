"""The hierarchical model of population means, written in numpyro (imports JAX; load lazily).

For population ``p`` (condition ``S_p``, context ``c_p``, batch ``b_p``) in standardised reduced
coordinates ``k = 1..K``::

    mean_pk = mu0[c_p, k]                                   context baseline
            + sum_{a in S_p} delta[a, k]                    single-atom effects
            + sum_{a<a' in S_p} gamma[(a, a'), k]           pairwise interactions (shrinkage)
            + sum_{a in S_p} eta[(a, c_p), k]               perturbation x context (shrinkage)
    ybar_p  = mean_p + W_p f_{b_p} + u_p + e_p
    W_p     = L + sum_{a in S_p} R[a]                       [K, r] replicate factor loadings
    f_b ~ N(0, I_r),  u_pk ~ N(0, sigma_rep_k^2),  e_pk ~ N(0, v_pk)

``f_b`` are the latent factors of replicate (batch, donor) ``b``: they shift all of its populations
along ``L`` and change each perturbation's response along ``R[a]`` (donors respond differently).
``u_p`` is a population's own deviation and ``e_p`` the sampling error of its observed mean (``v_pk``:
within-population variance over the number of cells, known). A new replicate's population mean
therefore has a distribution, ``mean + W f* + u*``: the model predicts a distribution of
population means, not one mean.

The factors are integrated out analytically: the populations of batch ``b`` are jointly Gaussian
with low-rank-plus-diagonal covariance ``W_b W_b^T + diag(sigma_rep^2 + v)``. Sampling ``f_b``
explicitly would put a funnel in the posterior (small factors trade against large loadings), which
both SVI and NUTS handle badly; its exact conditional ``p(f_b | rest)`` is returned instead, as the
deterministic sites ``factor_mean`` / ``factor_cov``.

Priors: ``mu0 ~ N(0, context_scale^2)``; ``delta = tau_delta * z`` with ``tau_delta_k ~
HalfNormal(effect_scale)``; ``gamma_j = tau_gamma * lambda_j * z`` with a global ``tau_gamma ~
HalfNormal(interaction_scale)`` and a heavy-tailed local ``lambda_j ~ half-Student-t(local_dof)``
(a horseshoe-like prior that keeps most interactions near zero and lets strong ones through);
``eta = tau_eta * z``, ``tau_eta ~ HalfNormal(context_interaction_scale)``; ``L ~ N(0,
loading_scale^2)``; ``R[a, k] = tau_R * lambda_R[a, k] * z`` with ``tau_R ~
HalfNormal(response_loading_scale)`` and half-Student-t local scales (a donor-dependent response
is sparse over genes); ``sigma_rep_k ~ HalfNormal(replicate_scale)``. Every effect is non-centred
(``scale * z``), which suits both SVI and NUTS.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from distgen_bayes.priors import Priors


def half_t(dof: float) -> dist.Distribution:
    """The half-Student-t distribution (a Student-t folded at zero)."""
    return dist.FoldedDistribution(dist.StudentT(dof))


def _effects(name: str, scale: jnp.ndarray, shape: tuple[int, ...]) -> jnp.ndarray:
    z = numpyro.sample(f"z_{name}", dist.Normal(0.0, 1.0).expand(list(shape)).to_event(len(shape)))
    return numpyro.deterministic(name, scale * z)


def _mean(data: dict[str, jnp.ndarray], k: int, priors: Priors) -> jnp.ndarray:
    """``[Np, K]`` population means without replicate terms (samples the effect sites)."""
    n_ctx = data["context_ids"].shape[0]
    n_atom, n_pair, n_ac = data["x_atom"].shape[1], data["x_pair"].shape[1], data["x_ac"].shape[1]
    mu0 = numpyro.sample("mu0", dist.Normal(0.0, priors.context_scale).expand([n_ctx, k]).to_event(2))
    mean = mu0[data["context"]]
    if n_atom:
        tau_delta = numpyro.sample("tau_delta", dist.HalfNormal(priors.effect_scale).expand([k]).to_event(1))
        mean = mean + data["x_atom"] @ _effects("delta", tau_delta, (n_atom, k))
    if n_pair:
        tau_gamma = numpyro.sample("tau_gamma", dist.HalfNormal(priors.interaction_scale))
        lam = numpyro.sample("lambda_gamma", half_t(priors.local_dof).expand([n_pair]).to_event(1))
        mean = mean + data["x_pair"] @ _effects("gamma", tau_gamma * lam[:, None], (n_pair, k))
    if n_ac:
        tau_eta = numpyro.sample("tau_eta", dist.HalfNormal(priors.context_interaction_scale))
        mean = mean + data["x_ac"] @ _effects("eta", tau_eta, (n_ac, k))
    return mean


def _loadings(data: dict[str, jnp.ndarray], k: int, r: int, response_factors: bool, priors: Priors) -> jnp.ndarray:
    """``[Np, K, r]`` replicate-factor loadings ``W_p`` of each population (samples their sites)."""
    n_pop, n_atom = data["x_atom"].shape
    loadings = numpyro.sample("loadings", dist.Normal(0.0, priors.loading_scale).expand([k, r]).to_event(2))
    w = jnp.broadcast_to(loadings, (n_pop, k, r))
    if n_atom and response_factors:
        tau_r = numpyro.sample("tau_response", dist.HalfNormal(priors.response_loading_scale))
        lam_r = numpyro.sample("lambda_response", half_t(priors.local_dof).expand([n_atom, k]).to_event(2))
        resp = _effects("response", tau_r * lam_r[..., None], (n_atom, k, r))
        w = w + jnp.einsum("pa,akr->pkr", data["x_atom"], resp)
    return w


def population_model(
    data: dict[str, jnp.ndarray],
    n_factors: int,
    response_factors: bool,
    priors: Priors,
    obs: jnp.ndarray | None = None,
) -> None:
    """numpyro model of ``[Np, K]`` observed population means ``obs``.

    ``data`` holds ``x_atom [Np, A]``, ``x_pair [Np, J]``, ``x_ac [Np, M]`` indicator matrices,
    ``context [Np]`` indices, ``var [Np, K]`` sampling variances, ``members [Bt, n]`` the
    populations of each batch (padded with 0) with ``member_mask [Bt, n]``, and the vocabularies
    ``context_ids [C]`` and ``batch_ids [Bt]``.
    """
    var = data["var"]
    k = var.shape[1]
    mean = _mean(data, k, priors)
    sigma_rep = numpyro.sample("sigma_rep", dist.HalfNormal(priors.replicate_scale).expand([k]).to_event(1))
    diag = sigma_rep**2 + var
    n_batch = data["batch_ids"].shape[0]
    if not n_factors or n_batch < 2:
        numpyro.sample("y", dist.Normal(mean, jnp.sqrt(diag)).to_event(2), obs=obs)
        return
    w = _loadings(data, k, n_factors, response_factors, priors)
    idx, mask = data["members"], data["member_mask"]
    n_mem = idx.shape[1]
    m3 = mask[..., None]
    w_b = (w[idx] * m3[..., None]).reshape(n_batch, n_mem * k, n_factors)
    d_b = jnp.where(m3 > 0, diag[idx], 1.0).reshape(n_batch, n_mem * k)
    loc_b = mean[idx].reshape(n_batch, n_mem * k)
    obs_b = None if obs is None else jnp.where(m3 > 0, obs[idx], mean[idx]).reshape(n_batch, n_mem * k)
    y = numpyro.sample("y", dist.LowRankMultivariateNormal(loc_b, w_b, d_b).to_event(1), obs=obs_b)
    # exact conditional of each batch's factors given everything else (for predictions in seen batches)
    wt_dinv = jnp.swapaxes(w_b, 1, 2) / d_b[:, None, :]  # [Bt, r, nK]
    prec = jnp.eye(n_factors) + wt_dinv @ w_b
    cov = jnp.linalg.inv(prec)
    numpyro.deterministic("factor_cov", cov)
    numpyro.deterministic("factor_mean", jnp.einsum("brs,bs->br", cov, jnp.einsum("brn,bn->br", wt_dinv, y - loc_b)))


#: Sites kept from the posterior for prediction (those the model has).
POSTERIOR_SITES = (
    "mu0",
    "tau_delta",
    "delta",
    "tau_gamma",
    "gamma",
    "tau_eta",
    "eta",
    "loadings",
    "tau_response",
    "response",
    "factor_mean",
    "factor_cov",
    "sigma_rep",
)

#: Sites whose draws are identified only up to a rotation of the factors; R-hat on them is not meaningful.
ROTATION_INVARIANT = ("loadings", "response", "z_response", "factor_mean", "factor_cov")
