"""A group's generated cells depend on the seed and its own labels, not on which other groups are predicted beside it.

Before, group ``i`` of ``Dataset.groups(part)`` was drawn under a seed from ``(seed, i)``: a condition predicted
without another that sorts before it (or later, beside a new one) got other cells, and its ``--counts`` other
library sizes (docs/training.md, "Reproducibility").
"""

import dataclasses

import numpy as np
import pytest
import torch

import distgen
from distgen.data.groups import group_seed
from distgen.pipeline.countspace import prediction_counts
from distgen.pipeline.predict import predict

DOC = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                 "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
       "train": {"seed": 1}}


@pytest.fixture(scope="module")
def setup():
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, hvg=32, set_size=4).capped(12)
    model = distgen.build(DOC, data)
    groups = data.groups("test")
    assert len({g.condition for g in groups}) >= 3
    return data, model, groups


def _without(data, condition):
    """``data`` whose test part lacks ``condition``'s cells (its controls and other conditions kept)."""
    test = data.split.test.numpy()
    keep = test[np.asarray(data.data.conditions, dtype=str)[test] != condition]
    return dataclasses.replace(data, split=dataclasses.replace(data.split, test=torch.from_numpy(keep)))


def _by_condition(cells):
    return {c: cells.X[torch.from_numpy(cells.conditions == c)] for c in set(cells.conditions[~cells.is_control].tolist())}


def test_a_condition_gets_the_same_cells_whether_or_not_another_is_predicted(setup):
    data, model, groups = setup
    full = _by_condition(predict(model, data, "test", seed=3, preflight=False))
    first = groups[0].condition  # sorts first: every other group moved one place up
    sub = _by_condition(predict(model, _without(data, first), "test", seed=3, preflight=False))
    assert set(sub) == set(full) - {first}
    for c in sub:
        assert torch.equal(sub[c], full[c]), c
    other = _by_condition(predict(model, data, "test", seed=4, preflight=False))
    assert not any(torch.equal(other[c], full[c]) for c in full)  # the seed still matters


def test_drawn_library_sizes_do_not_depend_on_the_other_groups(setup):
    data, model, groups = setup
    first = groups[0].condition
    sub_data = _without(data, first)
    full, _ = prediction_counts(data, predict(model, data, "test", seed=3, preflight=False), "test", "poisson", seed=3)
    sub, _ = prediction_counts(sub_data, predict(model, sub_data, "test", seed=3, preflight=False), "test", "poisson", seed=3)
    full, sub = _by_condition(full), _by_condition(sub)
    for c in sub:
        assert torch.equal(sub[c], full[c]), c


def test_group_seeds_are_apart_for_other_labels_streams_and_seeds():
    base = group_seed(0, "A+B", "k562", "b1", 1)
    assert base == group_seed(0, "A+B", "k562", "b1", 1) and 0 <= base < 2**63
    others = {group_seed(0, "A+B", "k562", "b2", 1), group_seed(0, "A+B", "hela", "b1", 1), group_seed(0, "A", "k562", "b1", 1),
              group_seed(0, "A+B", "k562", "b1", 2), group_seed(1, "A+B", "k562", "b1", 1), group_seed(0, "A+B\x1fk562", "", "b1", 1)}
    assert base not in others and len(others) == 6
