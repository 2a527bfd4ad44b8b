"""``bayes_hier``: a Bayesian hierarchical model of population responses, behind distgen's predict contract.

Discovery imports this module cheaply: JAX and numpyro are imported inside ``fit`` only, and
prediction after fitting is torch-only (posterior draws are held as torch tensors).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.errors import DistgenError
from distgen.models.base import FittedModel
from distgen.types import CellTable, ConditionLabels, DataInfo
from distgen.wording import first_of
from distgen_bayes.basis import Basis, fit_basis
from distgen_bayes.convergence import convergence_problems
from distgen_bayes.design import Design
from distgen_bayes.populations import Populations, atom_sets, summarise, within_variance
from distgen_bayes.posterior import Posterior
from distgen_bayes.priors import make_priors


@dataclass(frozen=True)
class BayesCapabilities(ModelCapabilities):
    """``ModelCapabilities`` plus what this model adds."""

    posterior_intervals: bool = field(default=True, metadata={"doc": "posterior_intervals gives credible intervals."})


class BayesHierarchicalModel(FittedModel):
    """Bayesian hierarchical model of population means (numpyro; SVI or NUTS) with replicate random effects.

    Each training population (condition x context x batch) is summarised by its mean in a reduced
    gene space. Means are modelled as context baseline + single-atom effects + pairwise interactions
    (shrinkage prior) + perturbation x context interactions + replicate latent factors, with a
    replicate-level spread, so the model predicts a *distribution* of population means (see
    ``distgen_bayes.hierarchical`` for the equations). ``predict`` applies the posterior mean shift
    (or, with ``prediction="sample"``, one posterior-predictive draw per set, replicate spread
    included) to the supplied control cells.

    Parameters
    ----------
    info
        Dataset vocabularies (injected).
    reduction
        ``"pca"``: principal axes of training population means; ``"genes"``: every gene.
    n_components
        Number of principal axes for ``"pca"`` (capped by the number of populations).
    inference
        ``"svi"`` (an autoguide, default) or ``"nuts"``.
    guide
        SVI autoguide: ``"lowrank"`` (low-rank + diagonal Gaussian), ``"fullrank"``, ``"diagonal"``.
    guide_rank
        Rank of the low-rank guide's covariance factor.
    steps, learning_rate
        SVI optimisation steps (Adam) and step size.
    num_samples
        Posterior draws kept (SVI) or drawn per chain (NUTS).
    num_warmup, num_chains, target_accept
        NUTS settings; chains run sequentially in this process (no forking).
    n_factors
        Replicate (batch) latent factors (capped at the number of training batches - 1); 0 disables
        replicate random effects beyond the per-population spread.
    response_factors
        Let each atom's response load on the replicate factors (donors respond differently).
    interactions, context_interactions
        Include pairwise atom interactions / perturbation x context interactions.
    min_cells
        Smallest population (cells) kept for fitting.
    prediction
        ``"mean"``: posterior mean shift (deterministic); ``"sample"``: one draw per set, using
        torch's global RNG (reproducible under ``torch.manual_seed``).
    priors
        Overrides of ``distgen_bayes.hierarchical.Priors`` fields (e.g. ``{interaction_scale: 0.2}``).
    seed
        Seed of inference (JAX PRNG) and of prior draws for unseen terms.
    """

    capabilities = BayesCapabilities()
    example_params: ClassVar[dict[str, Any]] = {"n_components": 4, "steps": 60, "num_samples": 32, "guide_rank": 2}
    example_fit_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        info: DataInfo,
        reduction: Literal["pca", "genes"] = "pca",
        n_components: int = 32,
        inference: Literal["svi", "nuts"] = "svi",
        guide: Literal["lowrank", "fullrank", "diagonal"] = "lowrank",
        guide_rank: int = 8,
        steps: int = 3000,
        learning_rate: float = 0.01,
        num_samples: int = 400,
        num_warmup: int = 500,
        num_chains: int = 2,
        target_accept: float = 0.9,
        n_factors: int = 1,
        response_factors: bool = True,
        interactions: bool = True,
        context_interactions: bool = True,
        min_cells: int = 2,
        prediction: Literal["mean", "sample"] = "mean",
        priors: dict[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.info = info
        self.reduction, self.n_components = reduction, int(n_components)
        self.inference, self.guide, self.guide_rank = inference, guide, int(guide_rank)
        self.steps, self.learning_rate, self.num_samples = int(steps), float(learning_rate), int(num_samples)
        self.num_warmup, self.num_chains, self.target_accept = int(num_warmup), int(num_chains), float(target_accept)
        self.n_factors, self.response_factors = int(n_factors), response_factors
        self.interactions, self.context_interactions = interactions, context_interactions
        self.min_cells, self.prediction, self.seed = int(min_cells), prediction, int(seed)
        self.priors = make_priors(priors)
        for key, val, ok in (
            ("inference", inference, ("svi", "nuts")),
            ("prediction", prediction, ("mean", "sample")),
            ("reduction", reduction, ("pca", "genes")),
        ):
            if val not in ok:
                raise ValueError(f"bayes_hier.{key}={val!r} is not known; expected one of {list(ok)}")
        _check_ranges(self)
        self.basis: Basis | None = None
        self.posterior: Posterior | None = None
        self.within_var: Tensor | None = None  # [K] pooled within-population variance (standardised)
        self.diagnostics: dict[str, Any] = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, train: CellTable, steps: int | None = None, seed: int | None = None, **kwargs: Any) -> BayesHierarchicalModel:
        """Infer the posterior from training cells (``steps``/``seed`` override the constructor's)."""
        if kwargs:
            warnings.warn(f"bayes_hier.fit ignores trainer options {sorted(kwargs)}", UserWarning, stacklevel=2)
        if train.X.shape[1] != self.info.n_genes:
            raise ValueError(f"training cells have {train.X.shape[1]} genes; the model was built for {self.info.n_genes}")
        bad_cells = int((~torch.isfinite(train.X.float())).any(1).sum())  # float16 and integer tables alike
        if bad_cells:
            raise ValueError(f"bayes_hier.fit: {bad_cells} training cell(s) hold NaN or inf values (the fit diverged at step 0 "
                             "and blamed learning_rate); drop or fix those cells")
        inference = _import_inference()
        from distgen_bayes.bridge import to_jax, to_torch

        seed = self.seed if seed is None else int(seed)
        if steps is not None and int(steps) < 1:
            raise ValueError(f"bayes_hier.fit: steps={steps}: expected an integer >= 1 (SVI steps)")
        pops = summarise(train.X, train.labels, self.min_cells)
        if pops.dropped:
            warnings.warn(self._dropped_message(pops), UserWarning, stacklevel=2)
        pooled = pooled_doses(train.labels)
        if pooled:
            shown = "; ".join(f"{'+'.join(self.info.perturbations[a] for a in k)} at doses {v}" for k, v in list(pooled.items())[:3])
            warnings.warn(f"bayes_hier does not model doses: the cells of {len(pooled)} condition(s) measured at several doses are "
                          f"pooled into one population per condition ({shown}); its predictions are the same at every dose",
                          UserWarning, stacklevel=2)
        basis = fit_basis(pops.mean, pops.count, self.reduction, self.n_components)
        design = Design.from_populations(pops, self.interactions, self.context_interactions)
        n_factors = min(self.n_factors, max(len(design.batches) - 1, 0))
        self._check_memory(design, basis.dim, n_factors)
        z_cells = basis.encode(train.X)
        var_within = within_variance(z_cells, pops)
        data = {k: to_jax(torch.from_numpy(v)) for k, v in design.matrices(pops).items()}
        data["var"] = to_jax(var_within / pops.count[:, None])
        data["context_ids"] = to_jax(torch.tensor(design.contexts))
        data["batch_ids"] = to_jax(torch.tensor(design.batches))
        obs = to_jax(basis.encode(pops.mean))
        common = {"n_factors": n_factors, "response_factors": self.response_factors, "priors": self.priors, "num_samples": self.num_samples, "seed": seed}
        if self.inference == "svi":
            draws, diag = inference.run_svi(
                data, obs, guide=self.guide, guide_rank=self.guide_rank, steps=self.steps if steps is None else int(steps),
                learning_rate=self.learning_rate, **common,
            )
        else:
            draws, diag = inference.run_nuts(
                data, obs, num_warmup=self.num_warmup, num_chains=self.num_chains, target_accept=self.target_accept, **common
            )
        bad = sorted(k for k, v in draws.items() if not bool(np.isfinite(np.asarray(v)).all()))
        if bad or not diag.get("finite", True):
            step = diag.get("first_nonfinite_step")
            where = f"the loss (negative ELBO) became non-finite at step {step} of {diag['steps']}" if step is not None else "inference"
            raise FloatingPointError(
                f"bayes_hier: {self.inference.upper()} diverged: {where}, and posterior draws of {bad or 'no site'} are not finite; "
                + (f"lower learning_rate (now {self.learning_rate:g}; default 0.01)" if self.inference == "svi"
                   else "raise target_accept or num_warmup")
                + " or check the training cells for extreme values"
            )
        for problem in convergence_problems(diag):
            warnings.warn(problem, UserWarning, stacklevel=2)
        self.basis = basis
        self.posterior = Posterior({k: to_torch(v) for k, v in draws.items()}, design, self.priors, seed)
        live = pops.cell_index >= 0
        self.within_var = var_within.mul(pops.count[:, None] - 1).sum(0) / (pops.count - 1).sum().clamp_min(1)
        self.diagnostics = {**diag, "n_populations": len(pops), "n_cells": int(live.sum()), "dim": basis.dim,
                            "n_factors": n_factors, "priors": asdict(self.priors), "seed": seed,
                            "dropped_populations": len(pops.dropped), "dropped_cells": sum(d[3] for d in pops.dropped)}
        return self

    def _check_memory(self, design: Design, k: int, r: int) -> None:
        """Refuse (``ResourceError``, before any inference) a fit whose posterior draws cannot fit in this machine's memory."""
        from distgen.errors import format_bytes
        from distgen.train.resources import ResourceError, machine_memory

        latent, kept = model_size(design, k, r, self.response_factors)
        draws = self.num_samples * (self.num_chains if self.inference == "nuts" else 1)
        need = fit_bytes(latent, kept, draws, self.guide_rank)
        available, where = machine_memory("cpu")
        if need > available:
            raise ResourceError(
                f"bayes_hier: {draws} posterior draws of {latent} latent values ({k} coordinates of reduction={self.reduction!r}, "
                f"{len(design.atoms)} perturbations, {len(design.pairs)} pairs) need about {format_bytes(need)}, more than this "
                f"machine's {format_bytes(available)} ({where}); use reduction: pca (n_components: {min(k, 32)}), fewer genes, "
                "or a smaller num_samples"
            )

    def _dropped_message(self, pops: Populations) -> str:
        """What ``min_cells`` left out of the fit: populations, cells, and atoms left with no population at all."""
        info = self.info
        kept = {a for s in pops.atoms for a in s}
        lost = sorted({a for s, *_ in pops.dropped for a in s} - kept)

        def name(s: tuple[int, ...], c: int, b: int) -> str:
            cond = "+".join(info.perturbations[a] for a in s) or "control"
            return f"{cond} @ {info.contexts[c]} / {info.batches[b] if b < len(info.batches) else b}"

        shown = first_of(pops.dropped, 3, render=lambda d: f"{name(d[0], d[1], d[2])}: {d[3]}")
        msg = (f"bayes_hier: {len(pops.dropped)} population(s) (condition @ context / batch) have fewer than "
               f"min_cells={self.min_cells} cells and are left out of the fit ({sum(d[3] for d in pops.dropped)} cells), "
               f"e.g. {shown}")
        if lost:
            msg += (f"; perturbation(s) {first_of([info.perturbations[a] for a in lost], 10, render=repr)} have no population left: the model "
                    "predicts them, and the combinations holding them, from the prior")
        return msg + "; lower min_cells (1 keeps every population) to use these cells"

    def _check_ids(self, labels: ConditionLabels) -> None:
        """Refuse label ids outside the model's vocabularies (an unknown perturbation id was predicted as control)."""
        for what, ids, vocab in (("perturbation", labels.perturbation, self.info.perturbations),
                                 ("context", labels.context, self.info.contexts)):
            bad = sorted({int(i) for i in ids[ids >= len(vocab)].tolist()})
            if bad:
                raise ValueError(f"bayes_hier: {what} id(s) {first_of(bad, 5)} are outside the model's {len(vocab)} {what}s: encode labels "
                                 "with the training data's vocabulary (data.labels_for / data.encode)")

    def _fitted(self) -> tuple[Basis, Posterior]:
        if self.basis is None or self.posterior is None:
            raise RuntimeError("bayes_hier is not fitted: call fit(train) first")
        return self.basis, self.posterior

    # ------------------------------------------------------------------ draws
    def shift_draws(
        self, labels: ConditionLabels, replicate: bool = False, generator: torch.Generator | None = None, prior_terms: bool = True,
    ) -> Tensor:
        """``[S, B, G]`` posterior draws of each condition's mean shift from control in the same context and batch.

        A batch seen in training contributes its posterior replicate factors (its own response).
        For a batch not seen, ``replicate=False`` gives the average replicate (factors zero);
        ``replicate=True`` draws a new replicate's factors. ``replicate=True`` also adds the
        condition-specific deviation ``u* ~ N(0, sigma_rep^2)`` of a new population, i.e. the
        posterior predictive shift. ``prior_terms=False`` leaves out the terms training never saw
        (``Posterior.effect``): the draws then have the same mean without those terms' Monte Carlo noise.
        """
        basis, post = self._fitted()
        self._check_ids(labels)
        sets = atom_sets(labels.perturbation)
        f = post.factors(labels.batch.tolist(), generator, draw_unseen=replicate)
        z = (post.effects(sets, labels.context.tolist(), prior_terms)
             + post.replicate_shift(sets, f, shared=False, prior_terms=prior_terms))
        if replicate:
            z = z + post.deviation(len(sets), generator)
        z = z * torch.tensor([bool(s) for s in sets], dtype=z.dtype)[None, :, None]  # control: no shift
        return basis.decode_shift(z)

    def population_mean_draws(
        self, labels: ConditionLabels, n_cells: Tensor | None = None, new_replicate: bool = True,
        space: Literal["genes", "reduced"] = "genes", generator: torch.Generator | None = None,
    ) -> Tensor:
        """``[S, B, G]`` (or ``[S, B, K]``) posterior predictive draws of population means.

        Parameters
        ----------
        labels
            Conditions (contexts must have training cells).
        n_cells
            ``[B]`` cells behind each mean to predict; adds their sampling noise. ``None``: the
            population's true mean.
        new_replicate
            True: a replicate not seen in training (its factors drawn from the prior). False: the
            labelled batch (its posterior factors if seen in training).
        space
            ``"genes"`` or the model's standardised ``"reduced"`` coordinates.
        """
        basis, post = self._fitted()
        self._check_ids(labels)
        if n_cells is not None:
            n_cells = torch.as_tensor(n_cells)
            if tuple(n_cells.shape) != (len(labels),) or not bool((n_cells > 0).all()):
                raise ValueError(f"bayes_hier: n_cells must be [B] = [{len(labels)}] positive cell counts, one per label, got "
                                 f"shape {tuple(n_cells.shape)} with smallest {n_cells.min().item() if n_cells.numel() else None} "
                                 "(a count of 0 or below gave NaN intervals; a shorter tensor was broadcast)")
        sets, ctx = atom_sets(labels.perturbation), labels.context.tolist()
        batches: list[int | None] = [None] * len(sets) if new_replicate else labels.batch.tolist()
        f = post.factors(batches, generator, draw_unseen=True)
        z = post.baseline(ctx) + post.effects(sets, ctx) + post.replicate_shift(sets, f, shared=True)
        z = z + post.deviation(len(sets), generator)
        if n_cells is not None:
            assert self.within_var is not None
            sd = (self.within_var[None, :] / n_cells.to(torch.float64)[:, None]).sqrt()
            z = z + sd * torch.randn(z.shape, generator=generator, dtype=z.dtype)
        return z if space == "reduced" else basis.decode(z)

    def population_mean_intervals(
        self, labels: ConditionLabels, level: float = 0.9, n_cells: Tensor | None = None, new_replicate: bool = True,
        space: Literal["genes", "reduced"] = "genes",
    ) -> dict[str, Tensor]:
        """Posterior predictive mean and central ``level`` interval of population means, each ``[B, G]``."""
        _check_level(level)
        g = torch.Generator().manual_seed(self._fitted()[1].seed)  # the fit's seed (fit(seed=...) overrides model.seed)
        return summarise_draws(self.population_mean_draws(labels, n_cells, new_replicate, space, g), level)

    # ------------------------------------------------------------------ contract
    @torch.no_grad()
    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        """``[B, m, G]``: control cells shifted by each condition's posterior mean (or one drawn) shift.

        The mean leaves out the terms training never saw (a pair never seen together, an atom in a context it
        was never measured in): their prior has mean zero, and averaging ``num_samples`` prior draws of them
        would add a fixed, seed-dependent error instead.
        """
        if control.shape[-1] != self.info.n_genes:
            raise ValueError(f"control cells have {control.shape[-1]} genes; the model was built for {self.info.n_genes}")
        if control.dim() != 3 or control.shape[0] != len(labels) or tuple(control_mask.shape) != tuple(control.shape[:2]):
            raise ValueError(f"bayes_hier.predict: control {tuple(control.shape)} and control_mask {tuple(control_mask.shape)} must be "
                             f"[B, m, G] and [B, m] with B = {len(labels)}, one set per label (a shape mismatch was broadcast)")
        if not control.is_floating_point():
            raise ValueError(f"bayes_hier.predict: control cells are {control.dtype}; a shift is fractional and would be truncated "
                             "in that dtype: pass control.float()")
        self._check_ids(labels)
        self._warn_unseen(labels)
        self._warn_unseen_contexts(labels, "predict")
        if self.prediction == "mean":
            shift = self.shift_draws(labels, prior_terms=False).mean(0)
        else:
            draws = self.shift_draws(labels, replicate=True)
            pick = torch.randint(draws.shape[0], (draws.shape[1],))
            shift = draws[pick, torch.arange(draws.shape[1])]
        out = control + shift.to(control.dtype).to(control.device)[:, None, :]
        return torch.where(control_mask.to(control.device)[..., None].bool(), out, control)  # padding left as is

    def _warn_unseen_contexts(self, labels: ConditionLabels, where: str) -> None:
        """Warn (once per context and model) when ``labels`` name contexts training never saw (no training cells).

        Such a context has no baseline and its context interactions are the prior's, mean zero: its shift is the atoms'
        effect shared by the training contexts. ``population_mean_draws`` refuses it; ``predict`` and
        ``posterior_intervals`` gave it without a word.
        """
        from distgen.errors import warn
        from distgen.models.preflight import PreflightWarning

        seen = set(self._fitted()[1].design.contexts)
        done: set[int] = self.__dict__.setdefault("_unseen_contexts_checked", set())
        new = sorted(set(labels.context.tolist()) - done)
        done.update(new)
        unseen = [self.info.contexts[c] for c in new if c not in seen]
        if unseen:
            known = ", ".join(self.info.contexts[c] for c in sorted(seen))
            warn(f"bayes_hier.{where}: context(s) {first_of(unseen, 8)} had no training "
                 f"cells: the model predicts their shifts from the atoms' effect shared by the training contexts ({known}), "
                 "with no term of their own (its prior's mean, zero); population_mean_draws refuses such a context",
                 PreflightWarning)

    def _warn_unseen(self, labels: ConditionLabels) -> None:
        """Warn (once per atom and model) when ``labels`` name atoms training never saw: their mean shift is the prior's, zero.

        ``distgen.predict`` and ``distgen run`` say so before predicting (pre-flight); a direct ``predict`` returned an
        unseen atom's cells as the controls, and a combination holding one as its seen atoms alone, without a word. Within
        their pre-flight's scope (``distgen.models.preflight.preflight_checked``) it is not said again.
        """
        from distgen.errors import warn
        from distgen.models.preflight import PreflightWarning, checked_by_preflight

        ids = labels.perturbation
        names = [self.info.perturbations[i] for i in torch.unique(ids[ids >= 0]).tolist()]
        checked: set[str] = self.__dict__.setdefault("_unseen_checked", set())
        new = [a for a in names if a not in checked]
        checked.update(new)
        if checked_by_preflight(self):  # distgen.predict's pre-flight named them already (it was said twice on a first call)
            return
        bad = [a for a, ok in zip(new, self.can_predict(new)) if not ok]
        if bad:
            shown = first_of(bad, 8)
            warn(f"bayes_hier.predict: {shown} had no training population: the model predicts their effect from its prior, "
                 "whose mean is zero, so their cells are the controls (or, in a combination, the effect of its other atoms); "
                 "check model.can_predict(atoms) before predicting", PreflightWarning)

    def posterior_intervals(self, labels: ConditionLabels, level: float = 0.9, replicate: bool = False) -> dict[str, Tensor]:
        """Per-gene posterior mean and central ``level`` interval of each condition's mean shift.

        Returns ``{"mean", "lower", "upper"}``, each ``[B, G]``. ``replicate=True`` widens them to
        the shift of a new replicate population (posterior predictive).
        """
        _check_level(level)
        self._check_ids(labels)
        self._warn_unseen_contexts(labels, "posterior_intervals")
        seed = self._fitted()[1].seed  # the fit's seed (fit(seed=...) overrides model.seed)
        draws = self.shift_draws(labels, replicate=replicate, generator=torch.Generator().manual_seed(seed))
        return summarise_draws(draws, level)

    def can_predict(self, atoms: list[str]) -> list[bool]:
        """True for atoms with training data (before fitting: atoms in the vocabulary)."""
        idx = self.info.perturbation_index()
        known = set(self.posterior.design.atoms) if self.posterior is not None else set(idx.values())
        return [a in idx and idx[a] in known for a in atoms]


def pooled_doses(labels: ConditionLabels) -> dict[tuple[int, ...], list[float]]:
    """``{atom set: doses}`` for each condition of ``labels`` seen at more than one dose (the model pools them)."""
    seen: dict[tuple[int, ...], set[tuple[float, ...]]] = {}
    for atoms, doses in zip(labels.perturbation.tolist(), labels.dose.tolist()):
        pairs = sorted((a, round(float(d), 6)) for a, d in zip(atoms, doses) if a >= 0)
        if pairs:
            seen.setdefault(tuple(a for a, _ in pairs), set()).add(tuple(d for _, d in pairs))
    return {k: sorted(d[0] if len(d) == 1 else d for d in v) for k, v in seen.items() if len(v) > 1}  # type: ignore[misc]


def model_size(design: Design, k: int, r: int, response_factors: bool) -> tuple[int, int]:
    """``(latent, kept)``: latent scalars the model samples, and scalars kept per posterior draw (``POSTERIOR_SITES``).

    Mirrors ``distgen_bayes.hierarchical.population_model``: ``k`` coordinates, ``r`` replicate factors.
    """
    n_ctx, n_atom, n_pair, n_ac, n_batch = (len(design.contexts), len(design.atoms), len(design.pairs),
                                            len(design.atom_contexts), len(design.batches))
    latent = kept = n_ctx * k + k  # mu0, sigma_rep
    if n_atom:
        latent, kept = latent + k + n_atom * k, kept + k + n_atom * k  # tau_delta, z_delta / delta
    if n_pair:
        latent, kept = latent + 1 + n_pair + n_pair * k, kept + 1 + n_pair * k  # tau, lambda, z_gamma / gamma
    if n_ac:
        latent, kept = latent + 1 + n_ac * k, kept + 1 + n_ac * k
    if r and n_batch >= 2:
        latent, kept = latent + k * r, kept + k * r + n_batch * r * (1 + r)  # loadings; factor_mean, factor_cov
        if n_atom and response_factors:
            latent, kept = latent + 1 + n_atom * k + n_atom * k * r, kept + 1 + n_atom * k * r
    return latent, kept


def fit_bytes(latent: int, kept: int, draws: int, guide_rank: int) -> int:
    """About the peak bytes of a fit: the guide and its optimiser state, then ``draws`` posterior draws.

    Each draw samples every latent value (float32, with the model's intermediates: 8 bytes each) and
    keeps ``kept`` values, held as float32 by JAX and float64 by ``Posterior`` (12 bytes each).
    """
    guide = 3 * (2 + guide_rank) * latent * 4  # loc, scale, covariance factor; Adam's two moments
    return guide + draws * (8 * latent + 12 * kept)


class MissingDependencyError(DistgenError, ImportError):
    """JAX or numpyro, which fitting needs, is not installed (exit code 1 in the CLI, with the install command)."""


#: Packages that fitting imports and that ``pip install distgen-bayes`` brings.
FIT_DEPENDENCIES = ("jax", "jaxlib", "numpyro")


def _import_inference() -> Any:
    """``distgen_bayes.inference`` (imports JAX and numpyro), or a ``MissingDependencyError`` naming what to install."""
    try:
        return importlib.import_module("distgen_bayes.inference")
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in FIT_DEPENDENCIES:
            raise
        raise MissingDependencyError(
            f"bayes_hier needs {missing!r} to fit, and it cannot be imported here ({exc}); install the plugin with its "
            "dependencies (pip install -c constraints/cpu.txt -e plugins/distgen-bayes, or pip install jax numpyro "
            "in this environment)"
        ) from exc


def summarise_draws(draws: Tensor, level: float) -> dict[str, Tensor]:
    """``[S, ...]`` draws -> posterior mean and central ``level`` interval, each ``[...]`` (float32)."""
    if draws.shape[0] < 2:
        raise ValueError(f"an interval needs at least 2 posterior draws, the model kept {draws.shape[0]} (a zero-width 'interval' "
                         "was returned): raise num_samples")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=draws.dtype)
    lo, hi = torch.quantile(draws, q, dim=0)
    return {"mean": draws.mean(0).float(), "lower": lo.float(), "upper": hi.float()}


#: ``(attribute, smallest value, what it counts)`` of the integer options; below it a fit crashed inside JAX, or the
#: value was silently raised (``n_components: 0`` fitted 1 axis, ``guide_rank: 0`` a rank-1 guide, ``min_cells: 0`` as 1).
INT_MINIMA = (
    ("n_components", 1, "principal axes"), ("guide_rank", 1, "the rank of the lowrank guide"), ("steps", 1, "SVI steps"),
    ("num_samples", 1, "posterior draws"), ("num_warmup", 0, "NUTS warmup steps"), ("num_chains", 1, "NUTS chains"),
    ("n_factors", 0, "replicate factors (0: none)"), ("min_cells", 1, "cells of the smallest population kept (1: all)"),
)


def _check_ranges(model: BayesHierarchicalModel) -> None:
    """Refuse option values outside their range (a ``ValueError``: a config error, exit 2 in the CLI), naming the key."""
    for key, low, what in INT_MINIMA:
        val = getattr(model, key)
        if val < low:
            raise ValueError(f"bayes_hier.{key}={val}: expected an integer >= {low} ({what})")
    if not (model.learning_rate > 0 and np.isfinite(model.learning_rate)):
        raise ValueError(f"bayes_hier.learning_rate={model.learning_rate:g}: expected a positive step size (default 0.01)")
    if model.inference == "nuts" and model.num_samples < 4:  # split R-hat and bulk ESS need 4 draws per chain (convergence.rank_split_rhat)
        raise ValueError(f"bayes_hier.num_samples={model.num_samples}: NUTS needs at least 4 draws per chain for its split R-hat")
    if not 0.0 < model.target_accept < 1.0:
        raise ValueError(f"bayes_hier.target_accept={model.target_accept:g}: expected NUTS's target acceptance probability in (0, 1) "
                         "(default 0.9)")


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
