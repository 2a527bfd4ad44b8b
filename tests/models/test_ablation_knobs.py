"""An ablation is a one-line change: each knob below must change the training losses within 2 steps.

A knob that silently does nothing gives a wrong ablation result. Each case trains a tiny generator
for 2 steps on a two-context table, once as configured and once with one key changed, with the same
seed; the losses must differ. Keys that legitimately have no effect in a combination are refused at
load or assembly (tests beside the checks); the sweep flags variants whose results are identical.
"""

from functools import cache

import pytest
import torch

from distgen.api import build
from distgen.config import load_config
from distgen.data.batches import TableBatches
from distgen.testing import tiny_table
from distgen.train import fit
from distgen.types import CellTable, ConditionLabels

BASE = {
    "model": {
        "name": "generator",
        "conditioner": {"name": "onehot", "dim": 8},
        "backbone": {"name": "mlp", "hidden": 32, "depth": 1},
        "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 2}},
        "coupling": {"name": "independent"},
        "distribution_loss": {"name": "kme", "kernel": {"name": "rbf"}},
        "distribution_weight": 0.5,
        "p_drop_condition": 0.2,
    },
    "train": {"seed": 0, "steps": 2, "sets_per_batch": 4, "lr": 3e-2, "warmup_steps": 0, "progress": False},
    "data": {"set_size": 8, "matcher": "same_batch"},
}

KNOBS = [
    "model.coupling.name=exact_ot",
    "model.coupling.name=sinkhorn",
    "model.distribution_weight=2.0",
    "model.distribution_loss.kernel.name=energy",
    "model.distribution_loss.unbiased=false",
    "model.dynamics.path.name=cosine",
    "model.dynamics.time_sampler.name=logit_normal",
    "model.p_drop_condition=0.6",
    "model.condition_dropout=batch",
    "model.input_scale=0.5",
    "model.backbone.hidden=16",
    "data.matcher=random",
    "data.matcher_params={replacement: true}",
    "data.sampling=cell",
    "data.set_size=6",
    "train.lr=1e-2",
    "train.seed=1",
]


def two_context_table() -> CellTable:
    """``tiny_table`` with its cells split over two contexts and two batches whose controls differ."""
    t = tiny_table(n_per_condition=12)
    n = t.X.shape[0]
    ctx = torch.arange(n) % 2
    x = t.X + 2.0 * ctx[:, None].float()  # the contexts' cells (controls included) differ
    labels = ConditionLabels(t.labels.perturbation, t.labels.dose, ctx, (torch.arange(n) // 2) % 2)
    return CellTable(x, labels, t.info)


@cache
def losses(overrides: tuple[str, ...] = ()) -> list[float]:
    doc = load_config(BASE, list(overrides))
    table = two_context_table()
    model = build(doc, table.info)
    result = fit(model, table, config=doc)
    assert result is not None
    return result.losses


def test_the_base_is_deterministic():
    assert losses() == losses.__wrapped__()


@pytest.mark.parametrize("knob", KNOBS)
def test_changing_a_knob_changes_the_losses_within_two_steps(knob):
    base, changed = losses(), losses((knob,))
    assert len(base) == len(changed) == 2
    assert base != changed, f"{knob} left the first 2 training losses unchanged: {base}"


def test_the_matcher_changes_the_control_cells_the_batches_carry():
    table = two_context_table()
    sets = {m: TableBatches(table, 8, 4, m, 0).batch(0).control for m in ("random", "same_context", "same_batch")}
    assert not torch.equal(sets["random"], sets["same_context"])
    assert not torch.equal(sets["same_context"], sets["same_batch"])
