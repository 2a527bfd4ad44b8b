"""The mixing examples build, pre-flight, train a few steps and sample on CPU (tiny mode: seconds each)."""

import importlib.util
from pathlib import Path

import pytest
import torch

from distgen.config import load_config
from distgen.models.generator import AssemblyError, build_model

ROOT = Path(__file__).resolve().parents[2]
MIXING = ROOT / "examples" / "mixing"


def _runner():
    spec = importlib.util.spec_from_file_location("mixing_run", MIXING / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


run = _runner()

EXPECTED = {
    "pad_diffusion": ("pad_transformer", "diffusion", None, "rbf"),
    "crossdit_flow": ("cross_dit", "flow_matching", None, "energy"),
    "scdfm_kme_population": ("pad_transformer", "flow_matching", "kme", "rbf"),
    "scdfm_set_transformer_population": ("pad_transformer", "flow_matching", "set_transformer", "rbf"),
    "perturbdiff_rbf": ("cross_dit", "diffusion", None, "rbf"),
}


def test_every_required_combination_has_a_config():
    assert {p.stem for p in run.CONFIGS} >= set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mixing_config_trains_and_samples(name):
    out = run.run(MIXING / "configs" / f"{name}.yaml", steps=2, tiny=True)
    assert (out["backbone"], out["dynamics"], out["population_encoder"], out["distribution_kernel"]) == EXPECTED[name]
    assert out["sample_shape"] == (2, 8, 12) and out["nfe"] > 0


def test_swapped_component_differs_from_its_preset_in_that_node_only():
    preset = load_config("perturbdiff-small")["model"]
    mixed = load_config(MIXING / "configs" / "perturbdiff_rbf.yaml")["model"]
    diff = {k for k in set(preset) | set(mixed) if preset.get(k) != mixed.get(k)}
    assert diff == {"distribution_loss"}
    assert mixed["distribution_loss"]["kernel"]["name"] == "rbf" and preset["distribution_loss"]["kernel"]["name"] == "energy"


def test_population_condition_changes_the_prediction():
    """The set-transformer population condition is live: other control populations, other samples."""
    doc = load_config(MIXING / "configs" / "scdfm_set_transformer_population.yaml")
    doc = load_config(doc, run.tiny_overrides(doc))
    table, atoms, _ = run.load_data("tiny")
    torch.manual_seed(0)
    model = build_model(doc["model"], table.info, seen_perturbations=atoms).eval()
    model.backbone.prepare(table)  # the gene graph, built from training cells (fit does this)
    labels = run.ConditionLabels.make([[0]])
    ctrl = table.X[table.is_control][:8][None]
    mask = torch.ones(1, 8, dtype=torch.bool)
    torch.nn.init.normal_(model.backbone.pop_proj.weight)  # the projection starts near zero; make its effect visible
    pop_a = model.population_encoder(ctrl, mask)
    pop_b = model.population_encoder(ctrl + 1.0, mask)
    assert not torch.allclose(pop_a, pop_b)
    x = torch.randn(1, 8, 12)
    t = torch.full((1, 8), 0.5)
    cond_a = model.condition(labels, ctrl, mask, torch.arange(12))
    cond_b = model.condition(labels, ctrl, mask, torch.arange(12), population=pop_b)
    assert not torch.allclose(model.backbone(x, t, cond_a), model.backbone(x, t, cond_b))


def test_cross_dit_relu_head_with_velocity_flow_is_rejected_before_compute():
    doc = load_config(MIXING / "configs" / "crossdit_flow.yaml", ["model.dynamics.prediction=velocity"])
    table, atoms, _ = run.load_data("tiny")
    with pytest.raises(AssemblyError, match=r"non-negative output head.*'velocity'"):
        build_model(doc["model"], table.info, seen_perturbations=atoms)
