"""Dataset: data + split + train-fitted preprocessing, loaded once; held-out groups, their control pools, the truth."""

import numpy as np
import pytest

from distgen.config import ConfigError
from distgen.data import Dataset, data_section


@pytest.fixture
def section(tiny_adata, tiny_schema, tmp_path):
    path = tmp_path / "tiny.h5ad"
    tiny_adata.write_h5ad(path)
    return {"dataset": str(path), "schema": tiny_schema.to_dict(), "set_size": 4}


def test_held_out_context_groups_are_predicted_from_their_own_context(section):
    ds = Dataset.load({**section, "split": {"kind": "held_out_context", "test_contexts": ["ct2"], "seed": 0}})
    groups = ds.groups("test")
    assert [(g.condition, g.context) for g in groups] == sorted((g.condition, g.context) for g in groups)
    data = ds.data
    for g in groups:
        assert g.context == "ct2"
        assert set(data.contexts[g.controls]) == {"ct2"} and data.is_control[g.controls].all()
        assert set(data.conditions[g.cells]) == {g.condition} and set(data.contexts[g.cells]) == {"ct2"}
        assert set(g.controls) <= set(ds.split.train.tolist())  # no held-out controls: the training controls of ct2


def test_truth_is_the_groups_cells_then_their_control_pool_with_names_and_labels(section):
    ds = Dataset.load({**section, "split": {"kind": "combo_seen2", "seed": 0, "holdout_controls": 0.3}})
    groups, truth = ds.groups(), ds.truth()
    pool = ds.control_pool(groups)
    rows = np.concatenate([*(g.cells for g in groups), pool])
    assert truth.names.tolist() == ds.data.adata.obs_names[rows].tolist()
    assert truth.conditions.tolist() == [g.condition for g in groups for _ in g.cells] + ["control"] * len(pool)
    assert set(pool) <= set(ds.split.test.tolist())  # held-out controls come first when the split has them
    assert truth.contexts.tolist() == ds.data.contexts[rows].tolist() and truth.batches.tolist() == ds.data.batches[rows].tolist()
    train = ds.train_cells()
    assert len(train) == len(ds.split.train) and set(train.contexts) == {"ct1", "ct2"} and set(train.batches) == {"b1", "b2"}
    with pytest.raises(ConfigError, match="must be train, val or test"):
        ds.groups("holdout")


def test_labels_of_canonical_conditions(section):
    ds = Dataset.load({**section, "split": {"kind": "combo_seen2", "seed": 0}})
    lab = ds.labels(["A+B", "control"], ["ct2", "ct1"])
    idx = ds.info.perturbation_index()
    assert lab.perturbation.tolist() == [[idx["A"], idx["B"]], [-1, -1]]
    assert lab.context.tolist() == [ds.info.contexts.index("ct2"), ds.info.contexts.index("ct1")]
    with pytest.raises(KeyError, match="unknown context"):
        ds.labels(["A"], ["ct9"])


def test_a_section_is_validated_before_loading():
    with pytest.raises(ConfigError, match="neither a bundled dataset"):
        Dataset.load(data_section({"dataset": "/nonexistent.h5ad"}))
