"""Synthetic populations: the hidden factor shapes each population's response, as documented."""

import numpy as np

from distgen.data import PerturbationData, PerturbationSchema, make_split
from distgen.data.synthetic import populations_dataset


def test_shapes_and_truth():
    a, truth = populations_dataset(n_genes=20, n_atoms=3, n_combos=1, n_populations=3, cells_per_group=30, seed=0)
    assert a.n_vars == 20 and a.n_obs == (1 + 3 + 1) * 3 * 30
    assert set(a.obs["population"]) == set(truth.latent)
    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), batch_col="population"))
    assert data.scale == "counts" and len(data.info.perturbations) == 3
    make_split(data, "held_out_batch", seed=0).check_leakage(data)


def test_population_means_follow_the_hidden_factor():
    a, truth = populations_dataset(n_genes=25, n_atoms=2, n_combos=0, n_populations=6, cells_per_group=400, latent_scale=1.0, seed=1)
    x = a.X / a.X.sum(1, keepdims=True)
    obs = a.obs
    for atom in truth.atoms:
        for pop, z in truth.latent.items():
            sel = ((obs["condition"] == atom) & (obs["population"] == pop)).to_numpy()
            emp = x[sel].mean(0)
            np.testing.assert_allclose(emp, truth.mean_fraction((atom,), z), atol=0.01)
        # populations differ in response: mean fractions vary with z beyond sampling noise
        means = np.stack([truth.mean_fraction((atom,), z) for z in truth.latent.values()])
        assert means.std(0).max() > 0.005


def test_deterministic():
    a, _ = populations_dataset(seed=4)
    b, _ = populations_dataset(seed=4)
    c, _ = populations_dataset(seed=5)
    assert np.array_equal(a.X, b.X) and not np.array_equal(a.X, c.X)
