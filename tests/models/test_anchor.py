"""``Generator(anchor="control_mean")``: the dynamics model cells relative to their control set's mean."""

import pytest
import torch
from torch import nn

from distgen.backbones.base import Backbone, Condition
from distgen.config import build_component
from distgen.models.anchor import anchor_of, control_mean
from distgen.models.generator import AssemblyError, Generator
from distgen.testing.fixtures import tiny_batch, tiny_info

INFO = tiny_info()


class Constant(Backbone):
    """Test backbone: predicts ``value`` everywhere (x0 prediction), whatever the input."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        return torch.zeros_like(x_t) + self.value


def _model(anchor: str, value: float = 0.0, **dyn) -> Generator:
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    node = {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50}, "sampler": {"name": "ddim", "steps": 5}, **dyn}
    dynamics = build_component("dynamics", node, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    return Generator(info=INFO, conditioner=cond, backbone=Constant(value), dynamics=dynamics, anchor=anchor)


def test_control_mean_ignores_padded_cells():
    control = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.allclose(control_mean(control, mask), torch.tensor([[[2.0, 3.0]]]))
    assert anchor_of("none", control, mask) is None


def test_a_zero_response_predicts_each_sets_control_mean():
    b = tiny_batch(b=3, m=6)
    mask = b.control_mask.clone()
    mask[0, -2:] = False  # padded control cells do not move the anchor
    anchored = _model("control_mean").predict(b.control, mask, b.labels)
    want = control_mean(b.control, mask).expand_as(anchored)
    assert torch.allclose(anchored, want, atol=1e-5)
    plain = _model("none").predict(b.control, mask, b.labels)
    assert torch.allclose(plain, torch.zeros_like(plain), atol=1e-5)  # without the anchor the same network gives 0


def test_training_targets_are_relative_to_the_control_mean():
    b = tiny_batch(b=3, m=6, pad_last=0)
    mean = control_mean(b.control, b.control_mask)
    batch = type(b)(target=mean.expand_as(b.target).clone(), target_mask=b.target_mask, control=b.control,
                    control_mask=b.control_mask, labels=b.labels, gene_ids=b.gene_ids)
    # every target cell equals its set's control mean: relative to it the target is 0, which the network predicts
    assert float(_model("control_mean").loss(batch).loss.detach()) < 1e-10
    assert float(_model("none").loss(batch).loss.detach()) > 0.1


def test_anchor_needs_a_signed_head_and_no_clipping():
    with pytest.raises(AssemblyError, match="anchor must be one of"):
        _model("median")
    with pytest.raises(AssemblyError, match="clip_denoised"):
        _model("control_mean", clip_denoised=1e-4)
    bb = build_component("backbones", {"name": "cross_dit", "dim": 8, "depth": 1, "heads": 2, "output": "relu", "self_conditioning": False},
                         info=INFO, n_genes=INFO.n_genes, seen_perturbations=None, cond_dim=4, population_dim=0)
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    dyn = build_component("dynamics", {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50},
                           "sampler": {"name": "ddim", "steps": 5}}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    with pytest.raises(AssemblyError, match=r"non-negative output head.*output: identity"):
        Generator(info=INFO, conditioner=cond, backbone=bb, dynamics=dyn, anchor="control_mean")
