"""Tiny seeded model + data for trainer tests (built-in components only)."""

import pytest
import torch

from distgen.models.generator import build_model
from distgen.testing.fixtures import tiny_table

#: The smallest generator: one-hot conditions, a one-layer MLP, two Euler steps (configs of run-folder tests use it).
TINY_GENERATOR = {
    "name": "generator",
    "conditioner": {"name": "onehot", "dim": 8},
    "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
    "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}},
}
MODEL = {**TINY_GENERATOR, "p_drop_condition": 0.2}


@pytest.fixture
def table():
    return tiny_table()


@pytest.fixture
def make_model(table):
    def make(seed: int = 0):
        torch.manual_seed(seed)
        return build_model(MODEL, table.info)

    return make


def same_params(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
