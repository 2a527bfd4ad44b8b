"""Values as a notebook hands them to the config and the Python API (hostile-input round of 2026-12-06).

A text where a list belongs, numpy scalars and arrays, seeds that are not whole numbers: each is read as meant or
refused naming the key and the fix, never read as something else.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import distgen
from distgen.config import ConfigError, plain_values, signature_schema
from distgen.data.section import data_section
from distgen.train.options import train_options


@pytest.mark.parametrize("key, value", [("test_conditions", "KLF1+MAP2K6"), ("test_contexts", "AB"), ("test_batches", "d3")])
def test_a_split_list_written_as_one_text_is_refused_with_the_list_to_write(key, value):
    # the split's signature held one annotation only imported under TYPE_CHECKING, so none of its keys was type checked:
    # 'KLF1+MAP2K6' was read as the held-out conditions 'K', 'L', 'F'... and contexts 'AB' held out contexts A and B
    with pytest.raises(ConfigError, match=rf"data\.split\.{key}: expected Sequence\[str\] \| None, got str.*Write a list, even of one item: \[" + re.escape(repr(value)) + r"\]"):
        data_section({"split": {"kind": "combo_seen2", key: value}})


def test_the_split_s_numbers_are_type_checked_too():
    with pytest.raises(ConfigError, match=r"data\.split\.seed: expected int, got str '1'"):
        data_section({"split": {"kind": "combo_seen2", "seed": "1"}})
    with pytest.raises(ConfigError, match=r"data\.split\.test_frac: expected float"):
        data_section({"split": {"kind": "random_conditions", "test_frac": "0.2"}})


def test_one_unresolvable_annotation_leaves_the_other_parameters_checked():
    def component(data: Unknown, width: int = 4, names: list[str] | None = None) -> None:  # type: ignore[name-defined]  # noqa: F821
        """Annotations are text here (PEP 563): ``Unknown`` cannot be resolved, like a name imported under TYPE_CHECKING."""

    schema = signature_schema(component)
    assert schema["width"][0] is int and schema["names"][0] == (list[str] | None)


def test_a_control_label_written_as_one_text_gets_the_list_to_write():
    with pytest.raises(ConfigError, match=r"data\.schema\.control_labels: .*Write a list, even of one item: \['control'\]"):
        data_section({"schema": {"control_labels": "control"}})


def test_numpy_scalars_and_arrays_are_the_plain_values():
    doc = plain_values({"a": np.int64(3), "b": [np.float32(0.5), np.bool_(True)], "c": np.array(["x", "y"]), "d": (1, 2)})
    assert doc == {"a": 3, "b": [0.5, True], "c": ["x", "y"], "d": (1, 2)}
    assert type(doc["a"]) is int and type(doc["b"][0]) is float and type(doc["b"][1]) is bool and type(doc["c"][0]) is str
    opts = train_options({"seed": np.int64(3), "steps": np.int32(2), "lr": np.float64(1e-3)})
    assert (opts.seed, opts.steps, opts.lr) == (3, 2, 1e-3) and type(opts.seed) is int  # "expected int, got int64" before
    ds = data_section({"split": {"kind": "held_out_context", "test_contexts": np.array(["ct1"])}})
    assert ds.split == {"kind": "held_out_context", "test_contexts": ["ct1"]}


@pytest.fixture(scope="module")
def small():
    doc = distgen.load_config("perturbdiff-small", ["model.backbone.dim=8", "model.backbone.depth=1", "data.set_size=8"])
    return doc, distgen.load_data(**{**doc["data"], "split": {"kind": "combo_seen2", "test_conditions": np.array(["KLF1+MAP2K6"])}})


@pytest.mark.filterwarnings("ignore:predict. this Generator was built")
def test_a_seed_must_be_a_whole_number_in_build_and_predict(small):
    doc, data = small
    for bad in ("3", 3.7, True):  # "3" and 3.7 built seed 3's weights; fit refuses both
        with pytest.raises(ConfigError, match=r"build: seed must be a whole number"):
            distgen.build(doc, data, seed=bad)
    with pytest.raises(ConfigError, match=r"build: the config's train\.seed must be a whole number, got str 'abc'"):
        distgen.build({**doc, "train": {**doc["train"], "seed": "abc"}}, data)  # a ValueError from int() before
    model = distgen.build(doc, data, seed=np.int64(3))
    same = distgen.build(doc, data, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values(), strict=True))
    with pytest.raises(ConfigError, match=r"predict: seed must be a whole number, got float 2\.5"):  # predicted seed 2's cells
        distgen.predict(model, data, seed=2.5, max_cells=4)
    assert torch.equal(distgen.predict(model, data, seed=np.int64(2), max_cells=4).X, distgen.predict(model, data, seed=2, max_cells=4).X)


def test_predicting_with_a_model_never_trained_is_warned_about_until_it_is_trained_or_loaded(small):
    from distgen.errors import DistgenRuntimeWarning

    doc, data = small
    model = distgen.build(doc, data)  # its cells were scored as a model's without a word
    with pytest.warns(DistgenRuntimeWarning, match=r"never trained nor given weights.*distgen\.fit\(model, data"):
        distgen.predict(model, data, max_cells=4)
    loaded = distgen.build(doc, data)
    loaded.load_state_dict(model.state_dict())  # weights of the user's own
    distgen.fit(model, data, config=doc, steps=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenRuntimeWarning)
        distgen.predict(model, data, max_cells=4)
        distgen.predict(loaded, data, max_cells=4)


def test_a_misspelt_split_kind_given_as_a_string_is_not_looked_for_as_a_file():
    with pytest.raises(ConfigError, match=r"data\.split: there is no split file 'combo_sen2'; did you mean the split kind 'combo_seen2'"):
        data_section({"split": "combo_sen2"})  # FileNotFoundError: [Errno 2] No such file or directory: 'combo_sen2'
    data_section({"split": "/tmp/no/such/dir/split.json"})  # a real path: its absence is named when it is read


def test_a_sweep_grid_of_numpy_values_expands_as_its_list():
    from distgen.pipeline.grid import expand

    as_numpy = expand({"train.seed": np.arange(2), "model.distribution_weight": np.array([0.0, 0.5])})
    as_lists = expand({"train.seed": [0, 1], "model.distribution_weight": [0.0, 0.5]})
    assert [(r.variant, r.overrides) for r in as_numpy] == [(r.variant, r.overrides) for r in as_lists]  # "must be a list" before


def test_max_cells_is_a_whole_number_and_lists_of_names_are_lists(small):
    _doc, data = small
    with pytest.raises(ConfigError, match=r"max_cells_per_condition must be a whole number of cells >= 1 or null, got 2\.5"):
        data.capped(2.5)  # kept 2 cells per condition without a word
    assert data.capped(np.int64(3)).max_cells == 3
    for key in ("metric_names", "baselines"):  # 'mse' was read as the metrics 'm', 's', 'e' ("unknown metrics component 'm'")
        with pytest.raises(ConfigError, match=rf"evaluate: {key} is a list, got the text 'mse'; write \['mse'\]"):
            distgen.evaluate(None, data, **{key: "mse"})
    with pytest.raises(ConfigError, match=r"sweep: metrics is a list, got the text 'mse'"):
        distgen.sweep("perturbdiff-small", out="unused", metrics="mse")


def test_seen_perturbations_given_as_one_text_is_refused(small):
    doc, data = small
    with pytest.raises(ConfigError, match=r"build: seen_perturbations is a list of atoms, got the text 'KLF1'; write \['KLF1'\]"):
        distgen.build(doc, data, seen_perturbations="KLF1")  # built a model that had seen the atoms 'K', 'L', 'F' and '1'


def test_load_run_sampling_given_as_one_text_is_refused_with_the_list_to_write():
    with pytest.raises(ConfigError, match=r"load_run: sampling is a list, got the text 'model\.dynamics\.sampler\.eta=0\.5'; write \["):
        distgen.load_run("no-such-run", sampling="model.dynamics.sampler.eta=0.5")  # "--sampling ... got 'm'" before


def test_an_anndata_given_where_predict_and_fit_take_a_dataset_is_refused_naming_the_way(small):
    # unseen-data round (Zhao 2021): distgen.predict(run.model, adata) of a backed or in-memory AnnData ended in
    # "AttributeError: 'AnnData' object has no attribute 'capped'" (and fit in another AttributeError)
    import anndata as ad

    doc, data = small
    model = distgen.build(doc, data)
    adata = ad.AnnData(np.zeros((3, 2), dtype=np.float32))
    for call in (lambda: distgen.predict(model, adata, max_cells=2), lambda: distgen.predict(model, adata),
                 lambda: distgen.fit(model, adata, steps=1)):
        with pytest.raises(TypeError, match=r"must be a Dataset \(distgen\.load_data.*got an AnnData.*--data"):
            call()


def test_what_fit_and_predict_take_is_said_truly_when_given_something_else(small):
    """Review of the AnnData refusal: fit takes a Dataset, a CellTable or Cells (d385726 said so for an AnnData), but the
    first pass told it "must be the Dataset distgen.load_data returns"; and distgen.predict given another object (here the
    training CellTable) lost the pipeline's words on generating from one's own control cells (model.predict on tensors)."""
    import anndata as ad

    doc, data = small
    model = distgen.build(doc, data)
    adata = ad.AnnData(np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(TypeError, match=r"fit: data must be a Dataset \(distgen\.load_data\), a CellTable or Cells, got an AnnData"):
        distgen.fit(model, adata, steps=1)
    for call in (lambda: distgen.predict(model, data.train_table), lambda: distgen.predict(model, data.train_table, max_cells=2)):
        with pytest.raises(TypeError, match=r"predict: data must be a Dataset .*got CellTable; to generate from control cells of "
                                            r"your own, call model\.predict\(control, mask, labels\)"):
            call()
