"""Dataset: data + split + train-fitted preprocessing, loaded once; held-out groups, their control pools, the truth."""

import numpy as np
import pytest

from distgen.config import ConfigError
from distgen.data import Dataset, data_section

from .conftest import make_adata

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor"}


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
    lab = ds.labels(["A+B", "control"], ["ct2", "ct1"], ["b2", "b1"])
    idx = ds.info.perturbation_index()
    assert lab.perturbation.tolist() == [[idx["A"], idx["B"]], [-1, -1]]
    assert lab.context.tolist() == [ds.info.contexts.index("ct2"), ds.info.contexts.index("ct1")]
    assert lab.batch.tolist() == [ds.info.batches.index("b2"), ds.info.batches.index("b1")]
    with pytest.raises(KeyError, match="unknown context"):
        ds.labels(["A"], ["ct9"], ["b1"])
    with pytest.raises(ValueError, match=r"the data has 2 batches \(b1, b2\); give the batch"):
        ds.labels(["A"], ["ct1"])  # no silent first batch


@pytest.fixture
def donors(tmp_path):
    """Conditions control, A, B in two cell types and three donors; donor b3 has no control cell in ct2."""
    a = make_adata(n_per_group=6, conditions=("control", "A", "B"), batches=("b1", "b2", "b3"), n_genes=8)
    a = a[~((a.obs["condition"] == "control") & (a.obs["cell_type"] == "ct2") & (a.obs["donor"] == "b3"))].copy()
    path = tmp_path / "donors.h5ad"
    a.write_h5ad(path)
    split = {"kind": "random_conditions", "test_conditions": ["B"], "seed": 0, "holdout_controls": 0.3}
    return Dataset.load({"dataset": str(path), "schema": SCHEMA, "set_size": 4, "split": split})


def test_groups_are_split_by_batch_and_predicted_from_controls_of_their_context_and_batch(donors):
    ds, data = donors, donors.data
    groups = ds.groups()
    assert [(g.condition, g.context, g.batch) for g in groups] == [("B", c, b) for c in ("ct1", "ct2") for b in ("b1", "b2", "b3")]
    test, train = ds.split.test.numpy(), ds.split.train.numpy()

    def own(rows, g):
        return rows[data.is_control[rows] & (data.contexts[rows] == g.context) & (data.batches[rows] == g.batch)]

    for g in groups:
        assert set(data.batches[g.cells]) == {g.batch} and set(data.contexts[g.cells]) == {g.context}
        assert set(data.conditions[g.cells]) == {"B"} and data.is_control[g.controls].all()
        if not g.other_batches:  # held-out controls of the context and batch when the split has some, else training ones
            assert sorted(g.controls.tolist()) == (own(test, g) if own(test, g).size else own(train, g)).tolist()
    assert any(set(g.controls) <= set(test) for g in groups) and {len(g.cells) for g in groups} == {6}


def test_a_batch_without_controls_in_its_context_borrows_the_other_batches_pools_and_says_so(donors):
    groups = donors.groups()
    borrowed = [g for g in groups if g.other_batches]
    assert [(g.context, g.batch) for g in borrowed] == [("ct2", "b3")]
    lent = np.unique(np.concatenate([g.controls for g in groups if g.context == "ct2" and not g.other_batches]))
    assert sorted(borrowed[0].controls.tolist()) == lent.tolist()  # what the truth holds of ct2: the baselines' pool too
    assert set(donors.data.contexts[borrowed[0].controls]) == {"ct2"}
    assert any("b3 in ct2" in n and "other batches" in n for n in donors.notes())


def test_the_cap_holds_per_condition_and_context_over_its_batches(donors):
    full = {(g.context, g.batch): g.cells for g in donors.groups()}
    capped = donors.capped(5).groups()
    for ctx in ("ct1", "ct2"):
        mine = [g for g in capped if g.context == ctx]
        assert sum(len(g.cells) for g in mine) == 5
        assert all(set(g.cells) <= set(full[(ctx, g.batch)]) for g in mine)
    assert [(g.context, g.batch, g.cells.tolist()) for g in capped] == [(g.context, g.batch, g.cells.tolist()) for g in donors.capped(5).groups()]


def test_one_batch_keeps_one_group_per_condition_and_context(tmp_path):
    path = tmp_path / "one.h5ad"
    make_adata(n_per_group=6, conditions=("control", "A", "B"), batches=("b1",), n_genes=8).write_h5ad(path)
    ds = Dataset.load({"dataset": str(path), "schema": SCHEMA, "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["B"], "seed": 0}})
    data = ds.data
    groups = ds.groups()
    assert [(g.condition, g.context, g.batch, g.other_batches) for g in groups] == [("B", "ct1", "b1", False), ("B", "ct2", "b1", False)]
    for g in groups:
        train = ds.split.train.numpy()
        assert sorted(g.controls.tolist()) == train[data.is_control[train] & (data.contexts[train] == g.context)].tolist()
    assert ds.labels(["B"], ["ct1"]).batch.tolist() == [0]  # one batch: it may go unsaid


def test_a_section_is_validated_before_loading():
    with pytest.raises(ConfigError, match="neither a bundled dataset"):
        Dataset.load(data_section({"dataset": "/nonexistent.h5ad"}))


def test_matcher_params_are_checked_against_the_matcher_at_load():
    # a preset's matcher_params (same_batch's replacement) carried over to another matcher failed at fit as an internal TypeError
    from distgen.config import ConfigError
    from distgen.data.section import data_section

    with pytest.raises(ConfigError, match=r"unknown key 'replacement'.*data.matcher='nearest'.*data.matcher_params=null"):
        data_section({"matcher": "nearest", "matcher_params": {"replacement": True}})
    with pytest.raises(ConfigError, match=r"unknown matcher 'nearst'\. Did you mean 'nearest'\? Available: nearest"):
        data_section({"matcher": "nearst"})
    assert data_section({"matcher": "nearest", "matcher_params": {"k": 3}}).matcher_params == {"k": 3}
    assert data_section({"matcher": "same_batch", "matcher_params": {"replacement": True}}).matcher == "same_batch"


def test_an_unknown_sampling_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"data\.sampling must be one of condition, cell, partition"):
        data_section({"sampling": "cells"})
    assert data_section({"sampling": "partition"}).sampling == "partition"


def test_a_home_relative_dataset_path_is_expanded(tmp_path, monkeypatch):
    """`dataset: ~/x.h5ad` in a config file was refused as "neither a bundled dataset nor an existing .h5ad path"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x.h5ad").write_bytes(b"")
    (tmp_path / "split.json").write_text("{}")
    ds = data_section({"dataset": "~/x.h5ad", "split": "~/split.json"})
    assert (ds.dataset, ds.split) == (str(tmp_path / "x.h5ad"), str(tmp_path / "split.json"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"'nothere\.h5ad' is neither .* read from the working directory, " + str(tmp_path)):
        data_section({"dataset": "nothere.h5ad"})


def test_a_split_kind_given_as_a_string_is_a_config_error_that_says_how():
    """`data.split=combo_seen2` was read as a file: FileNotFoundError "'combo_seen2' does not exist" (exit 1)."""
    with pytest.raises(ConfigError, match=r"'combo_seen2' is a split kind.*data.split=\{kind: combo_seen2\}"):
        data_section({"split": "combo_seen2"})
