"""A model is used only on data with the vocabularies it was built for (genes in order, atoms, contexts, batches);
wrong objects given to the API get a message.

The Python API takes a model and a ``Dataset`` separately, so nothing stopped a model built (or a baseline
fitted) on one file from predicting or training on another whose genes come in another order: the columns were
read against the wrong gene names and the output labelled with the new ones, silently. The labels' atom, context
and batch ids index the dataset's own vocabularies, so a different perturbation vocabulary shifts them the same way.
"""

import numpy as np
import pytest

import distgen
from distgen.config import ConfigError
from distgen.data.synthetic import populations_dataset
from distgen.models.baselines.additive import AdditiveBaseline

MODEL = {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
         "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}}
SPLIT = {"kind": "random_conditions", "seed": 0}
DATA = {"set_size": 4}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    a, _ = populations_dataset(n_genes=12, n_atoms=4, n_combos=2, n_populations=1, cells_per_group=12, seed=0)
    a.write_h5ad(root / "base.h5ad")
    a[:, np.random.default_rng(1).permutation(a.n_vars)].copy().write_h5ad(root / "permuted.h5ad")
    a[~a.obs["condition"].astype(str).str.contains("g0")].copy().write_h5ad(root / "fewer_atoms.h5ad")
    return root


def _load(files, name):
    return distgen.load_data(str(files / name), split=SPLIT, **DATA)


def _doc():
    return {"model": MODEL, "data": DATA, "train": {"steps": 1, "sets_per_batch": 1, "progress": False}}


def test_a_model_predicts_on_the_data_it_was_built_for(files):
    base = _load(files, "base.h5ad")
    cells = distgen.predict(distgen.build(_doc(), base), base)
    assert tuple(cells.genes) == base.info.genes


def test_predicting_on_the_same_genes_in_another_order_is_refused(files):
    base, permuted = _load(files, "base.h5ad"), _load(files, "permuted.h5ad")
    assert set(permuted.info.genes) == set(base.info.genes) and permuted.info.genes != base.info.genes
    model = distgen.build(_doc(), base)
    with pytest.raises(ConfigError, match=r"predict: .*genes: the same 12 in another order"):
        distgen.predict(model, permuted)


def test_training_on_data_with_other_vocabularies_is_refused(files):
    base, permuted, fewer = _load(files, "base.h5ad"), _load(files, "permuted.h5ad"), _load(files, "fewer_atoms.h5ad")
    model = distgen.build(_doc(), base)
    with pytest.raises(ConfigError, match=r"fit: .*genes: the same 12 in another order"):
        distgen.fit(model, permuted, config=_doc())
    with pytest.raises(ConfigError, match=r"fit: .*perturbations: 1 of the model's missing here \('g0'\)"):
        distgen.fit(model, fewer, config=_doc())


def test_a_baseline_fitted_on_one_file_refuses_another(files):
    base, permuted = _load(files, "base.h5ad"), _load(files, "permuted.h5ad")
    baseline = AdditiveBaseline().fit(base.train_table)
    distgen.predict(baseline, base)  # its own data
    with pytest.raises(ConfigError, match="genes: the same 12 in another order"):
        distgen.predict(baseline, permuted)


def test_wrong_objects_get_a_message_not_an_attribute_error(files):
    """build/predict given an AnnData or a path failed with AttributeError ('AnnData' object has no attribute 'n_genes');
    overrides given as one string were read character by character ("override 't' must look like dotted.key=value")."""
    import anndata as ad

    base = _load(files, "base.h5ad")
    adata = ad.read_h5ad(files / "base.h5ad")
    with pytest.raises(TypeError, match=r"build: data must be a Dataset .* got AnnData"):
        distgen.build(_doc(), adata)
    model = distgen.build(_doc(), base)
    with pytest.raises(TypeError, match=r"predict: data must be a Dataset .* got str"):
        distgen.predict(model, str(files / "base.h5ad"))
    with pytest.raises(TypeError, match=r"overrides must be a list of 'key=value' strings, got the string 'train.seed=1'"):
        distgen.build(_doc(), base, overrides="train.seed=1")
