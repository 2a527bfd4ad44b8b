"""Posterior draws as torch tensors, and what they imply for any condition (no JAX needed).

After fitting, prediction is torch-only: the draws of every site are held here, and effects of
conditions are sums of drawn terms. A term training never saw (a new atom, a new pair, an atom in a
new context, the response loadings of a new atom) is drawn from its prior given each draw's
hyper-parameters, from a generator seeded by the term itself so that repeated calls agree. A
hyper-parameter the fitted model had no site for (the interaction scale when training held no
combination, the effect scale when it held no perturbation) is drawn from its prior too. A batch
training never saw gets replicate factors drawn from their prior ``N(0, I)``.
"""

from __future__ import annotations

import zlib

import torch
from torch import Tensor

from distgen_bayes.design import Design
from distgen_bayes.priors import Priors


def _term_seed(seed: int, kind: str, key: tuple[int, ...]) -> int:
    return zlib.crc32(f"{seed}:{kind}:{key}".encode())


def _half_t(dof: float, n: int, seed: int) -> Tensor:
    """``[n]`` draws of a half-Student-t with ``dof`` degrees of freedom, from its own seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.StudentT(torch.tensor(dof, dtype=torch.float64)).sample((n,)).abs()


class Posterior:
    """``S`` posterior draws of the model's sites (``[S, ...]`` float64 tensors).

    Parameters
    ----------
    draws
        Site name -> ``[S, ...]`` draws (``hierarchical.POSTERIOR_SITES`` that the model has).
    design
        The term index the draws are laid out by.
    priors
        The model's priors: the local scales' degrees of freedom and the scales of hyper-parameters
        that training had no site for (for unseen terms).
    seed
        Seeds prior draws of unseen terms.
    """

    def __init__(self, draws: dict[str, Tensor], design: Design, priors: Priors, seed: int) -> None:
        self.draws = {k: v.to(torch.float64) for k, v in draws.items()}
        self.design = design
        self.priors = priors
        self.local_dof = float(priors.local_dof)
        self.seed = int(seed)
        mu0 = self.draws["mu0"]
        self.n_draws, self.dim = int(mu0.shape[0]), int(mu0.shape[-1])
        self.n_factors = int(self.draws["loadings"].shape[-1]) if "loadings" in self.draws else 0

    def _normal(self, kind: str, key: tuple[int, ...], *shape: int) -> Tensor:
        g = torch.Generator().manual_seed(_term_seed(self.seed, kind, key))
        return torch.randn(self.n_draws, *(shape or (self.dim,)), generator=g, dtype=torch.float64)

    def _scale(self, site: str, prior_scale: float, *shape: int) -> Tensor:
        """``[S, *shape]`` draws of a scale hyper-parameter: the posterior's, else its ``HalfNormal(prior_scale)`` prior.

        A site is absent when training held nothing to inform it (no combination: no ``tau_gamma``);
        a term that needs it is then drawn from the prior alone.
        """
        if site in self.draws:
            return self.draws[site]
        g = torch.Generator().manual_seed(_term_seed(self.seed, "hyper", (zlib.crc32(site.encode()),)))
        return prior_scale * torch.randn(self.n_draws, *shape, generator=g, dtype=torch.float64).abs()

    # ------------------------------------------------------------------ mean effects
    def effect(self, atom_set: tuple[int, ...], context: int, prior_terms: bool = True) -> Tensor:
        """``[S, K]`` draws of the effect of ``atom_set`` in ``context`` (zero for control).

        ``prior_terms=False`` leaves out the terms training never saw: drawn from zero-mean priors,
        independent of the rest, they add nothing to the posterior mean but Monte Carlo noise.
        """
        d, t = self.draws, self.design.terms(atom_set, context)
        out = torch.zeros(self.n_draws, self.dim, dtype=torch.float64)
        if t.atoms:
            out += d["delta"][:, t.atoms].sum(1)
        if t.pairs:
            out += d["gamma"][:, t.pairs].sum(1)
        if t.atom_contexts:
            out += d["eta"][:, t.atom_contexts].sum(1)
        if not prior_terms:
            return out
        for a in t.new_atoms:
            out += self._scale("tau_delta", self.priors.effect_scale, self.dim) * self._normal("atom", (a,))
        for p in t.new_pairs:
            lam = _half_t(self.local_dof, self.n_draws, _term_seed(self.seed, "lambda", p))
            out += (self._scale("tau_gamma", self.priors.interaction_scale) * lam)[:, None] * self._normal("pair", p)
        for ac in t.new_atom_contexts:
            out += self._scale("tau_eta", self.priors.context_interaction_scale)[:, None] * self._normal("atom_context", ac)
        return out

    def effects(self, atom_sets: list[tuple[int, ...]], contexts: list[int], prior_terms: bool = True) -> Tensor:
        """``[S, B, K]`` effect draws of ``B`` conditions (work shared once per distinct condition; ``prior_terms``: ``effect``)."""
        cache: dict[tuple[tuple[int, ...], int], Tensor] = {}
        cols = []
        for s, c in zip(atom_sets, contexts):
            key = (s, c if self.design.has_context_interactions else -1)
            if key not in cache:
                cache[key] = self.effect(s, c, prior_terms)
            cols.append(cache[key])
        return torch.stack(cols, 1)

    def baseline(self, contexts: list[int]) -> Tensor:
        """``[S, B, K]`` context baselines (contexts must have training cells)."""
        c_pos = {c: i for i, c in enumerate(self.design.contexts)}
        missing = sorted({c for c in contexts if c not in c_pos})
        if missing:
            raise ValueError(f"context id(s) {missing} have no training cells; the model knows contexts {list(c_pos)}")
        return self.draws["mu0"][:, [c_pos[c] for c in contexts]]

    # ------------------------------------------------------------------ replicates
    def factors(self, batches: list[int | None], generator: torch.Generator | None, draw_unseen: bool) -> Tensor:
        """``[S, B, r]`` replicate factors: for a batch seen in training a draw of its posterior
        (``N(factor_mean, factor_cov)``, seeded by the batch so calls agree); for ``None`` or an
        unseen batch a prior draw ``N(0, I)`` (``draw_unseen``) or zero (the average replicate)."""
        out = torch.zeros(self.n_draws, len(batches), self.n_factors, dtype=torch.float64)
        if not self.n_factors:
            return out
        b_pos = {b: i for i, b in enumerate(self.design.batches)}
        for j, b in enumerate(batches):
            if b is not None and b in b_pos:
                i = b_pos[b]
                chol = torch.linalg.cholesky(self.draws["factor_cov"][:, i])
                eps = self._normal("factor", (b,), self.n_factors)
                out[:, j] = self.draws["factor_mean"][:, i] + torch.einsum("srq,sq->sr", chol, eps)
            elif draw_unseen:
                out[:, j] = torch.randn(self.n_draws, self.n_factors, generator=generator, dtype=torch.float64)
        return out

    def response_loadings(self, atom_set: tuple[int, ...], prior_terms: bool = True) -> Tensor:
        """``[S, K, r]`` summed response loadings of the atoms (prior draws for atoms never seen, unless not ``prior_terms``)."""
        out = torch.zeros(self.n_draws, self.dim, self.n_factors, dtype=torch.float64)
        if "response" not in self.draws:
            return out
        a_pos = {a: i for i, a in enumerate(self.design.atoms)}
        for a in atom_set:
            if a in a_pos:
                out += self.draws["response"][:, a_pos[a]]
            elif prior_terms:
                lam = _half_t(self.local_dof, self.n_draws * self.dim, _term_seed(self.seed, "lambda_response", (a,)))
                scale = self.draws["tau_response"][:, None] * lam.view(self.n_draws, self.dim)
                out += scale[..., None] * self._normal("response", (a,), self.dim, self.n_factors)
        return out

    def replicate_shift(self, atom_sets: list[tuple[int, ...]], f: Tensor, shared: bool, prior_terms: bool = True) -> Tensor:
        """``[S, B, K]``: factors ``f [S, B, r]`` times the conditions' response loadings (plus ``L`` if ``shared``;
        ``prior_terms``: ``response_loadings``)."""
        out = torch.zeros(self.n_draws, len(atom_sets), self.dim, dtype=torch.float64)
        if not self.n_factors:
            return out
        cache: dict[tuple[int, ...], Tensor] = {}
        for j, s in enumerate(atom_sets):
            if s not in cache:
                cache[s] = self.response_loadings(s, prior_terms)
            load = cache[s] + self.draws["loadings"] if shared else cache[s]
            out[:, j] = torch.einsum("skr,sr->sk", load, f[:, j])
        return out

    def deviation(self, n_sets: int, generator: torch.Generator | None) -> Tensor:
        """``[S, B, K]`` a new population's condition-specific deviation ``u* ~ N(0, sigma_rep^2)``."""
        eps = torch.randn(self.n_draws, n_sets, self.dim, generator=generator, dtype=torch.float64)
        return self.draws["sigma_rep"][:, None, :] * eps
