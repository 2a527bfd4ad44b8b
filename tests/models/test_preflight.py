"""Pre-flight: which test perturbations can the chosen conditioner embed? Stop before training if some cannot."""

import pytest
import torch

from distgen.config import build_component
from distgen.models.generator import build_model
from distgen.models.preflight import PreflightError, conditions_of, preflight, registered_name
from distgen.testing.fixtures import tiny_info, tiny_table
from distgen.types import DataInfo

GENES = tuple(f"g{i}" for i in range(30))
INFO = DataInfo(genes=GENES, perturbations=GENES[:20] + ("drugA",))


def _cond(name, seen, **kw):
    torch.manual_seed(0)
    return build_component("conditioners", {"name": name, "dim": 4, **kw}, info=INFO, seen_perturbations=seen)


def test_onehot_message_counts_and_suggests_gene_vocab():
    test = [f"g{i}" for i in range(20)]
    seen = [f"g{i}" for i in range(13)]
    with pytest.raises(PreflightError) as err:
        preflight(_cond("onehot", seen), test)
    msg = str(err.value)
    assert msg.startswith("7 of 20 test perturbations are not embeddable by onehot; use gene_vocab or provide an embedding table")
    assert "g13" in msg and "g19" in msg and "g12" not in msg


def test_combination_is_embeddable_only_if_every_atom_is():
    rep = preflight(_cond("onehot", ["g0", "g1"]), ["g0+g1", "g0+g5", "control"], strict=False)
    assert rep.conditions == ("g0+g1", "g0+g5")
    assert rep.embeddable == (True, False)
    assert rep.missing_atoms == ("g5",) and rep.not_embeddable == ("g0+g5",)


def test_non_gene_atoms_need_an_embedding_table():
    rep = preflight(_cond("onehot", ["g0"]), ["drugA"], info=INFO, strict=False)
    assert not rep.ok and "provide an embedding table (embedding_table)" in rep.message()


def test_untied_gene_vocab_explains_the_tie():
    with pytest.raises(PreflightError, match="gene-token table of the backbone"):
        preflight(_cond("gene_vocab", ["g0"]), ["g3"])


def test_embedding_table_covering_the_test_set_passes():
    table = {g: [float(i), 1.0] for i, g in enumerate(GENES[:20])}
    rep = preflight(_cond("embedding_table", ["g0"], table=table), [f"g{i}" for i in range(20)])
    assert rep.ok and rep.message() == "" and rep.component == "embedding_table"


def test_generator_uses_its_conditioner_and_celltable_input():
    info = tiny_info()
    model = build_model(
        {"name": "generator", "conditioner": {"name": "onehot", "dim": 4}, "backbone": {"name": "mlp", "hidden": 8, "depth": 1},
         "dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 1}}},
        info, seen_perturbations=["G0", "G1"],
    )
    table = tiny_table()  # conditions: G0, G1, G2, G0+G1
    assert set(conditions_of(table)) == {"G0", "G1", "G2", "G0+G1"}
    rep = preflight(model, table, strict=False)
    assert rep.component == "onehot" and rep.n_missing == 1 and rep.missing_atoms == ("G2",)


def test_models_without_conditioner_use_can_predict():
    from distgen.models.generator import build_model as build

    rep = preflight(build({"name": "control"}, tiny_info()), ["G0", "G2+G3"], strict=False)
    assert rep.component == "control" and rep.ok


def test_missing_controls_in_a_test_context():
    info = tiny_info()
    model = build_model(
        {"name": "generator", "conditioner": {"name": "onehot", "dim": 4}, "backbone": {"name": "mlp", "hidden": 8, "depth": 1},
         "dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 1}}}, info,
    )
    with pytest.raises(PreflightError, match=r"test context\(s\) \['ctxB'\] have none"):
        preflight(model, ["G0"], control_contexts=["ctxA"], test_contexts=["ctxA", "ctxB"])


def test_registered_name_falls_back_to_class_name():
    assert registered_name(_cond("onehot", None), "conditioners") == "onehot"
    assert registered_name(object(), "conditioners") == "object"


def test_unseen_single_split_on_norman_onehot_fails_gene_vocab_table_passes():
    import numpy as np

    from distgen.data import PerturbationData, make_split
    from distgen.datasets import NORMAN_SCHEMA, norman_k562

    data = PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA)
    split = make_split(data, "unseen_single", seed=0, test_frac=0.3)
    train_atoms = sorted({a for c in split.train_conditions for a in data.atoms_of(c)})
    info = data.info
    onehot = build_component("conditioners", {"name": "onehot", "dim": 4}, info=info, seen_perturbations=train_atoms)
    with pytest.raises(PreflightError, match=r"^\d+ of \d+ test perturbations are not embeddable by onehot"):
        preflight(onehot, split)
    rng = np.random.default_rng(0)
    table = {a: rng.normal(size=3).tolist() for a in info.perturbations}
    emb = build_component("conditioners", {"name": "embedding_table", "dim": 4, "table": table}, info=info, seen_perturbations=train_atoms)
    assert preflight(emb, split).ok


def test_a_backbone_with_its_own_perturbation_tokens_decides():
    model = build_model(
        {"name": "generator",
         "backbone": {"name": "pad_transformer", "d_model": 8, "heads": 2, "layers": 1, "graph": False},
         "dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 1}}},
        tiny_info(), seen_perturbations=["G0"],
    )
    rep = preflight(model, ["G0", "G3", "G1+G2"])
    assert rep.ok and rep.component == "pad_transformer"
    # reading the conditioner's embedding too, an unseen onehot row makes the atom unembeddable
    model2 = build_model(
        {"name": "generator", "conditioner": {"name": "onehot", "dim": 4},
         "backbone": {"name": "pad_transformer", "d_model": 8, "heads": 2, "layers": 1, "graph": False, "use_condition_embedding": True},
         "dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 1}}},
        tiny_info(), seen_perturbations=["G0"],
    )
    rep2 = preflight(model2, ["G0", "G3"], strict=False)
    assert rep2.component == "pad_transformer + onehot" and rep2.missing_atoms == ("G3",)
