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


@pytest.mark.parametrize("override, key", [("data.hvg=48", "data.hvg=48"), ("data.split.seed=1", "data.split")])
def test_a_data_setting_the_dataset_does_not_hold_is_refused(loaded, override, key):
    _, data = loaded
    doc = load_config("perturbdiff-small", [*TINY, override])
    model = distgen.build(doc["model"], data)
    with pytest.raises(ConfigError, match=rf"{key}.* differs from the Dataset's .*load the Dataset from the config's data: section"):
        distgen.fit(model, data, config=doc)


def test_the_config_the_dataset_was_loaded_from_trains(loaded):
    doc, data = loaded
    model = distgen.build(doc["model"], data)
    distgen.fit(model, data, config=doc)
