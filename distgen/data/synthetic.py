"""Synthetic "distributions over distributions" with a known hidden factor.

Each condition is observed in several *populations* (donors, wells, microenvironments). Population
``p`` carries a hidden factor ``z_p ~ N(0, 1)`` that shifts its baseline and scales its response:

    log rate(cell in population p, condition c) = base + z_p * u + effect_c + z_p * gamma_c

where ``effect_c`` is the mean response and ``gamma_c`` a response direction modulated by the
latent. Counts are Poisson draws of ``library * softmax(log rate)``. So the *distribution* of
perturbed populations of one condition varies with ``z``, with the truth kept in ``uns``.
A combination's effect is the sum of its atoms' effects plus an optional interaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SyntheticTruth:
    """Ground truth of ``populations_dataset``: per-gene log-rate parameters and the latent of each population."""

    genes: tuple[str, ...]
    atoms: tuple[str, ...]
    base: np.ndarray  # [G]
    baseline_dir: np.ndarray  # [G] u
    effects: np.ndarray  # [A, G]
    gammas: np.ndarray  # [A, G]
    latent: dict[str, float]  # population -> z

    def log_rate(self, atoms: tuple[str, ...], z: float) -> np.ndarray:
        """``[G]`` unnormalised log rate of a condition (atoms) in a population with latent ``z``."""
        ids = [self.atoms.index(a) for a in atoms]
        eff = self.effects[ids].sum(0) if ids else 0.0
        gam = self.gammas[ids].sum(0) if ids else 0.0
        return self.base + z * self.baseline_dir + eff + z * gam

    def mean_fraction(self, atoms: tuple[str, ...], z: float) -> np.ndarray:
        """``[G]`` expected expression fraction (softmax of the log rate)."""
        lr = self.log_rate(atoms, z)
        e = np.exp(lr - lr.max())
        return e / e.sum()


def populations_dataset(
    n_genes: int = 30,
    n_atoms: int = 4,
    n_combos: int = 2,
    n_populations: int = 4,
    cells_per_group: int = 40,
    n_contexts: int = 1,
    effect_scale: float = 1.0,
    latent_scale: float = 0.8,
    library_size: float = 2000.0,
    seed: int = 0,
) -> tuple[ad.AnnData, SyntheticTruth]:
    """Counts AnnData (``obs``: ``condition``, ``cell_type``, ``population``, ``hidden_factor``) and its truth.

    Genes are named ``g0..``; atoms are the first ``n_atoms`` genes (genetic perturbations). Every
    condition (control, singles, ``n_combos`` pairs) is observed in every population and context.
    """
    if n_atoms > n_genes:
        raise ValueError(f"n_atoms={n_atoms} must be <= n_genes={n_genes} (atoms are genes)")
    rng = np.random.default_rng(seed)
    genes = tuple(f"g{i}" for i in range(n_genes))
    atoms = genes[:n_atoms]
    base = rng.normal(0.0, 1.0, n_genes)
    u = rng.normal(0.0, 0.3, n_genes)
    effects = rng.normal(0.0, effect_scale, (n_atoms, n_genes)) * (rng.random((n_atoms, n_genes)) < 0.3)
    effects[np.arange(n_atoms), np.arange(n_atoms)] += 2.0 * effect_scale  # the target gene goes up (CRISPRa-like)
    gammas = rng.normal(0.0, latent_scale, (n_atoms, n_genes)) * (rng.random((n_atoms, n_genes)) < 0.3)
    pops = [f"pop{i}" for i in range(n_populations * n_contexts)]
    latent = {p: float(z) for p, z in zip(pops, rng.normal(0.0, 1.0, len(pops)))}
    truth = SyntheticTruth(genes, atoms, base, u, effects, gammas, latent)
    pairs = [(atoms[i], atoms[j]) for i in range(n_atoms) for j in range(i + 1, n_atoms)]
    combos = [pairs[i] for i in rng.permutation(len(pairs))[:n_combos]]
    conditions: list[tuple[str, ...]] = [(), *[(a,) for a in atoms], *combos]
    xs, rows = [], []
    for ci in range(n_contexts):
        for pi in range(n_populations):
            pop = pops[ci * n_populations + pi]
            for cond in conditions:
                frac = truth.mean_fraction(cond, latent[pop])
                lib = rng.lognormal(np.log(library_size), 0.3, cells_per_group)
                xs.append(rng.poisson(lib[:, None] * frac[None, :]).astype(np.float32))
                label = "+".join(cond) if cond else "control"
                rows += [(label, f"ct{ci}", pop, latent[pop])] * cells_per_group
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "population", "hidden_factor"])
    obs.index = pd.Index([f"cell{i}" for i in range(len(obs))])
    for c in ("condition", "cell_type", "population"):
        obs[c] = pd.Categorical(obs[c])
    adata = ad.AnnData(X=np.concatenate(xs), obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.uns["synthetic_truth"] = {"latent": latent, "atoms": list(atoms), "seed": seed}
    return adata, truth
