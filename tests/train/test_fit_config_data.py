"""``distgen.fit(model, dataset, config=doc)``: a ``data:`` setting the Dataset does not hold is refused (2026-12-07).

The Dataset holds the cells, so the config's ``data.dataset``, ``schema``, ``split`` and ``hvg`` were read by nothing
when the Dataset had been loaded otherwise: ``fit(..., config=load_config(P, ["data.hvg=64"]))`` trained on the Dataset's
500 genes without a word, and an ablation over the split or the gene panel through the Python API measured nothing.
The set-sampling keys were already refused (``_check_sampling``).
"""

from __future__ import annotations

import pytest

import distgen
from distgen.config import ConfigError, load_config

TINY = ["model.backbone.depth=1", "model.backbone.dim=16", "model.backbone.heads=2", "model.conditioner.part_dim=8",
        "train.steps=1", "train.progress=false", "train.sets_per_batch=2", "data.set_size=4", "data.hvg=32"]


@pytest.fixture(scope="module")
def loaded():
    doc = load_config("perturbdiff-small", TINY)
    return doc, distgen.load_data(**doc["data"])


# Round 2: the Dataset's training cells given as a CellTable (data.train_table, as examples/swap_dynamics.py does) were
# trained on whatever the config's data: section said (the table path read only its set-sampling keys).
@pytest.mark.parametrize("given, said", [("dataset", "the Dataset's .*load the Dataset"),
                                         ("train_table", ".* of the Dataset whose training cells were given .*load the data")])
@pytest.mark.parametrize("override, key", [("data.hvg=48", "data.hvg=48"), ("data.split.seed=1", "data.split")])
def test_a_data_setting_the_dataset_does_not_hold_is_refused(loaded, override, key, given, said):
    _, data = loaded
    doc = load_config("perturbdiff-small", [*TINY, override])
    model = distgen.build(doc["model"], data)
    with pytest.raises(ConfigError, match=rf"{key}.* differs from {said} from the config's data: section"):
        distgen.fit(model, data if given == "dataset" else data.train_table, config=doc)


def test_the_config_the_dataset_was_loaded_from_trains(loaded):
    doc, data = loaded
    model = distgen.build(doc["model"], data)
    distgen.fit(model, data, config=doc)


# The same data written otherwise is the Dataset's and trains; a real difference the key-by-key
# comparison let through (a split argument only the config sets) is refused.
def _split_file(data, tmp_path):
    return data.split.save(tmp_path / "split.json")


@pytest.mark.parametrize("spelled", ["split_file", "split_defaults", "schema_defaults", "schema_one_field"])
def test_the_dataset_written_otherwise_trains(loaded, tmp_path, spelled):
    from distgen.data import bundled

    doc, data = loaded
    section = {
        "split_file": {"split": _split_file(data, tmp_path)},
        "split_defaults": {"split": {**doc["data"]["split"], "test_frac": 0.2, "val_frac": 0.1, "holdout_controls": 0.0}},
        "schema_defaults": {"schema": bundled.NORMAN_SCHEMA.to_dict()},
        "schema_one_field": {"schema": {"perturbation_col": bundled.NORMAN_SCHEMA.perturbation_col}},
    }[spelled]
    model = distgen.build(doc["model"], data)
    distgen.fit(model, data, config={**doc, "data": {**doc["data"], **section}})


def test_a_relative_path_to_the_datasets_file_trains(tmp_path, monkeypatch):
    from distgen.data import bundled

    bundled.norman_k562().write_h5ad(tmp_path / "cells.h5ad")
    doc = load_config("perturbdiff-small", TINY)
    data = distgen.load_data(**{**doc["data"], "dataset": str(tmp_path / "cells.h5ad"),
                                "schema": bundled.NORMAN_SCHEMA.to_dict()})
    monkeypatch.chdir(tmp_path)
    doc = {**doc, "data": {**doc["data"], "dataset": "./cells.h5ad", "schema": bundled.NORMAN_SCHEMA.to_dict()}}
    distgen.fit(distgen.build(doc["model"], data), data, config=doc)


@pytest.mark.parametrize("change", [{"test_frac": 0.5}, {"holdout_controls": 0.3}])
def test_a_split_argument_only_the_config_sets_is_refused(loaded, change):
    doc, data = loaded
    model = distgen.build(doc["model"], data)
    bad = {**doc, "data": {**doc["data"], "split": {**doc["data"]["split"], **change}}}
    with pytest.raises(ConfigError, match=r"data\.split.* differs from the Dataset's"):
        distgen.fit(model, data, config=bad)


def test_a_dataset_loaded_with_more_split_arguments_than_the_config_trains():
    """examples/quickstart.py: the preset's data section, the split refined by load_data (test_frac), fit with the preset."""
    doc = load_config("perturbdiff-small", TINY)
    data = distgen.load_data(**{**doc["data"], "split": {**doc["data"]["split"], "test_frac": 0.9}})
    distgen.fit(distgen.build(doc["model"], data), data, config=doc)


def test_a_dataset_loaded_from_a_split_file_holds_the_arguments_that_made_it(loaded, tmp_path):
    doc, data = loaded
    from_file = distgen.load_data(**{**doc["data"], "split": _split_file(data, tmp_path)})
    distgen.fit(distgen.build(doc["model"], from_file), from_file, config=doc)  # the config's split arguments make its cells
    other = {**doc, "data": {**doc["data"], "split": {**doc["data"]["split"], "seed": 3}}}
    with pytest.raises(ConfigError, match=r"data\.split.* differs from the Dataset's"):
        distgen.fit(distgen.build(doc["model"], from_file), from_file, config=other)


def test_the_tables_dataset_loaded_from_the_config_trains(loaded):
    doc, data = loaded
    model = distgen.build(doc["model"], data)
    distgen.fit(model, data.train_table, config=doc)


def test_the_train_table_pickles_and_its_copy_in_another_process_is_not_checked(loaded):
    # review of round 2: meta['from_dataset'] was a weakref.ref, which pickle refuses: torch.save(data.train_table) and a
    # DataLoader(SetSampler(data.train_table), num_workers=k) under spawn/forkserver (macOS's default) raised
    # "cannot pickle 'weakref.ReferenceType' object". A pickled table's copy has no Dataset (another process has none).
    import copy
    import io
    import pickle

    import torch

    _, data = loaded
    table = data.train_table
    back = pickle.loads(pickle.dumps(table))
    torch.save(table, io.BytesIO())
    assert torch.equal(back.X, table.X) and back.meta["scale"] == table.meta["scale"]
    other = load_config("perturbdiff-small", [*TINY, "data.hvg=48"])
    distgen.fit(distgen.build(other["model"], data), back, config=other)  # unknown origin: trained as given
    kept = copy.deepcopy(table)  # a copy in this process still knows its Dataset
    with pytest.raises(ConfigError, match=r"data\.hvg=48.* of the Dataset whose training cells were given"):
        distgen.fit(distgen.build(other["model"], data), kept, config=other)


# The table holds a weak reference to its Dataset (pickling, memory); a Dataset garbage-collected before fit
# (fit(model, distgen.load_data(...).train_table, config=doc)) left the config's data keys unchecked: data.hvg=48 beside
# a table of 32 genes trained without a word. The table now keeps the Dataset's data: section and split to check against.
def _orphan_table(data):
    import dataclasses
    import gc

    from distgen.data.prepared import ORIGIN

    gone = dataclasses.replace(data)  # the same cells, a Dataset of its own that nothing else references
    table = gone.train_table
    del gone
    gc.collect()
    assert table.meta[ORIGIN]() is None
    return table


@pytest.mark.parametrize("override, key", [("data.hvg=48", "data.hvg=48"), ("data.split.test_frac=0.5", "data.split")])
def test_a_table_whose_dataset_is_gone_is_still_checked(loaded, override, key):
    _, data = loaded
    other = load_config("perturbdiff-small", [*TINY, override])
    with pytest.raises(ConfigError, match=rf"{key}.* differs from .* of the Dataset whose training cells were given"):
        distgen.fit(distgen.build(other["model"], data), _orphan_table(data), config=other)


def test_a_table_whose_dataset_is_gone_trains_under_the_config_it_was_loaded_from(loaded, tmp_path):
    doc, data = loaded
    distgen.fit(distgen.build(doc["model"], data), _orphan_table(data), config=doc)
    by_file = {**doc, "data": {**doc["data"], "split": _split_file(data, tmp_path)}}  # its split's cells, from a file
    distgen.fit(distgen.build(doc["model"], data), _orphan_table(data), config=by_file)


def test_a_split_that_needs_the_gone_datasets_cells_to_check_is_refused_clearly(loaded):
    """Split arguments other than the Dataset's that might still make its split (a kind that does not read them) can only be
    told apart by making the split from the cells, which went with the Dataset."""
    doc, data = loaded
    other = {**doc, "data": {**doc["data"], "split": {**doc["data"]["split"], "seed": 7}}}
    with pytest.raises(ConfigError, match=r"data\.split.* cannot be checked.* garbage-collected.*Keep the Dataset"):
        distgen.fit(distgen.build(doc["model"], data), _orphan_table(data), config=other)
