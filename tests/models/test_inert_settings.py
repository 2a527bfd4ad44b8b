"""Settings that another setting makes inert are warned about, naming both (ablation-settings round, 2026-12-07).

Each of these was accepted and read by nothing: a sweep over it gave identical runs and a table saying the setting does not
matter. The component-level sweep over every parameter is ``tests/test_settings_effect.py``; these are the combinations a
component cannot see on its own.
"""

from __future__ import annotations

import warnings

import pytest

from distgen.config import InertSettingWarning
from distgen.models.generator import build_model
from distgen.testing.fixtures import tiny_info


def _model(conditioner: dict, backbone: dict) -> list[str]:
    node = {"name": "generator", "conditioner": conditioner, "backbone": backbone,
            "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model(node, tiny_info())
    return [str(w.message) for w in caught if issubclass(w.category, InertSettingWarning)]


PAD = {"name": "pad_transformer", "d_model": 8, "heads": 2, "layers": 1, "graph": False, "dropout": 0.0,
       "use_condition_embedding": True}


def test_share_gene_embedding_off_is_inert_without_gene_tokens():
    said = _model({"name": "gene_vocab", "dim": 8, "share_gene_embedding": False}, {"name": "mlp", "hidden": 8, "depth": 1})
    assert any("share_gene_embedding=false has no effect with backbone" in m for m in said), said


def test_share_gene_embedding_off_with_gene_tokens_is_read_and_not_warned():
    assert not _model({"name": "gene_vocab", "dim": 8, "share_gene_embedding": False}, PAD)
    assert not _model({"name": "gene_vocab", "dim": 8}, {"name": "mlp", "hidden": 8, "depth": 1})  # the default says nothing


@pytest.mark.parametrize("conditioner, words", [
    ({"name": "onehot", "dim": 8, "dose_scale": 100.0}, "dose_scale=100.0 has no effect with dose: linear"),
    ({"name": "gene_vocab", "dim": 8, "dose_scale": 100.0}, "dose_scale=100.0 has no effect with dose: none"),
    ({"name": "covariate", "part_dim": 4, "dim": 8, "perturbation_table": {"G0": [1.0]}}, "perturbation_table has no effect"),
    ({"name": "covariate", "part_dim": 4, "dim": 8, "use_context": False, "context_table": {"ctxA": [1.0], "ctxB": [0.0]}},
     "context_table has no effect with use_context: false"),
])
def test_a_conditioner_setting_its_mode_does_not_read_is_warned_about(conditioner, words):
    said = _model(conditioner, {"name": "mlp", "hidden": 8, "depth": 1})
    assert any(words in m for m in said), said


def test_dose_scale_where_it_is_read_says_nothing():
    assert not _model({"name": "onehot", "dim": 8, "dose": "log", "dose_scale": 100.0}, {"name": "mlp", "hidden": 8, "depth": 1})


def test_graph_k_without_the_graph_and_deepsets_heads_without_attention_are_warned_about():
    said = _model({"name": "gene_vocab", "dim": 8}, {**PAD, "graph_k": 5})
    assert any("graph_k=5 has no effect with graph: false" in m for m in said), said
    from distgen.config import build_component

    with pytest.warns(InertSettingWarning, match="heads=2 has no effect with pool: mean"):
        build_component("encoders", {"name": "deepsets", "heads": 2}, n_genes=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSettingWarning)
        build_component("encoders", {"name": "deepsets", "pool": "attention", "heads": 2, "hidden": 8}, n_genes=12)


def test_the_cli_says_it(tmp_path):
    from distgen.cli import main

    with pytest.warns(InertSettingWarning, match="key_column='gene' has no effect with perturbation: onehot"):
        code = main(["train", "perturbdiff-small", "--out", str(tmp_path / "r"), "train.steps=1", "train.progress=false",
                     "model.conditioner.key_column=gene"])
    assert code == 0


# key_column names the key column of a table *file*; with a table given as a mapping it was read by
# nothing (embedding_table's was allow-listed in tests/test_settings_effect.py as "a mapping table has no columns").
TABLE = {"G0": [0.0, 1.0], "G1": [1.0, 0.0], "G2": [0.3, 0.3], "G3": [-1.0, 0.2]}


@pytest.mark.parametrize("conditioner", [
    {"name": "embedding_table", "dim": 8, "hidden": 8, "table": TABLE, "key_column": "gene"},
    {"name": "covariate", "part_dim": 4, "dim": 8, "perturbation": "table", "perturbation_table": TABLE, "key_column": "gene"},
])
def test_key_column_with_a_mapping_table_is_warned_about(conditioner):
    said = _model(conditioner, {"name": "mlp", "hidden": 8, "depth": 1})
    assert any("key_column='gene' has no effect with" in m and "mapping" in m for m in said), said
    rest = {k: v for k, v in conditioner.items() if k != "key_column"}
    assert not _model(rest, {"name": "mlp", "hidden": 8, "depth": 1})  # the mapping alone says nothing


@pytest.mark.parametrize("backbone, said", [
    ({"dropout": 0.0, "graph": True}, "dropout: 0.0"),
    ({"dropout": 0.1, "graph": False}, "graph: false"),
])
def test_per_cell_gene_dropout_without_dropout_or_graph_is_inert(backbone, said):
    # scdfm-small carried it at dropout 0 (round 2): per-cell and shared draws of no dropout are the same numbers
    msgs = _model({"name": "onehot", "dim": 8}, {**PAD, **backbone, "gene_dropout": "per_cell"})
    assert any("pad_transformer: gene_dropout=per_cell has no effect" in m and said in m for m in msgs), msgs


def test_per_cell_gene_dropout_read_with_graph_and_dropout_is_not_warned():
    assert not _model({"name": "onehot", "dim": 8}, {**PAD, "graph": True, "graph_k": 2, "dropout": 0.1, "gene_dropout": "per_cell"})
    assert not _model({"name": "onehot", "dim": 8}, {**PAD, "gene_dropout": "shared"})  # the default at dropout 0 says nothing


@pytest.mark.parametrize("preset", sorted(__import__("distgen.config", fromlist=["_"]).preset_names()))
def test_no_preset_builds_with_a_setting_that_has_no_effect(preset):
    # a preset is what an ablation starts from: a warning there would be in every run of every sweep
    from distgen.api import build

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build(preset, tiny_info())
    assert not [str(w.message) for w in caught if issubclass(w.category, InertSettingWarning)]
