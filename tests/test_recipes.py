"""Every config under recipes/ loads, validates and builds on data of the shape it is meant for."""

from pathlib import Path

import pytest

from distgen.api import build
from distgen.config import load_config
from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.synthetic import populations_dataset

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


@pytest.fixture(scope="module")
def populations():
    adata, _ = populations_dataset(n_genes=12, n_atoms=2, n_combos=1, n_populations=3, cells_per_group=8, seed=0)
    schema = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",),
                                batch_col="population", perturbation_type="genetic", scale="counts")
    return PerturbationData.from_anndata(adata, schema)


def test_there_are_recipes():
    assert RECIPES, "recipes/ holds no configs"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_builds(path, populations):
    doc = load_config(str(path))
    model = build(doc, populations.info, seen_perturbations=list(populations.info.perturbations))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_population_spread_recipe_samples_without_guidance(populations):
    doc = load_config(str(Path(__file__).resolve().parent.parent / "recipes" / "population_spread.yaml"))
    preset = load_config("perturbdiff-small")
    assert preset["model"]["dynamics"]["guidance"] != 1.0  # the recipe differs from the preset exactly here
    model = build(doc, populations.info, seen_perturbations=list(populations.info.perturbations))
    assert model.dynamics.guidance == 1.0 and not model.dynamics.capabilities.guidance
    assert doc["data"]["matcher"] == "same_batch"


def test_cell_type_transfer_recipe_anchors_on_the_control_mean_and_reads_the_context_from_its_cells(populations):
    doc = load_config(str(Path(__file__).resolve().parent.parent / "recipes" / "cell_type_transfer.yaml"))
    model = build(doc, populations.info, seen_perturbations=list(populations.info.perturbations))
    assert model.anchor.kind == "control_mean" and model.input_scale == 1.0
    assert model.conditioner.context is None  # no context embedding that a held-out context could not train
    assert model.backbone.capabilities.output_range == "real" and model.dynamics.clip_denoised is None
    assert model.dynamics.guidance == 1.0 and not model.dynamics.capabilities.guidance
    assert doc["data"]["control_sets"] == "none"
    assert type(model.dynamics.sampler).__name__ == "DDIM" and model.dynamics.sampler.steps == 100


def test_combination_recipe_anchors_on_the_additive_prediction(populations):
    doc = load_config(str(Path(__file__).resolve().parent.parent / "recipes" / "combination_additive.yaml"))
    model = build(doc, populations.info, seen_perturbations=list(populations.info.perturbations))
    assert model.anchor.kind == "additive" and model.anchor.effects.shape == (populations.info.n_perturbations, populations.info.n_genes)
    assert model.backbone.capabilities.output_range == "real" and model.dynamics.clip_denoised is None
    assert model.dynamics.guidance == 1.0 and model.anchor.reference == "training"
    model.prepare(populations.table)
    assert bool(model.anchor.fitted.any())  # the synthetic populations have singles: effects are fitted
    assert bool(model.anchor.control_fitted.any())  # and their controls give the training control means
