"""Covariate conditioner: perturbation (one-hot or table) + context + batch, learned null."""

import pytest
import torch

from distgen.conditioners.covariate import CovariateConditioner
from distgen.config import build_component
from distgen.testing import tiny_info
from distgen.types import ConditionLabels

TABLE = {"G0": [1.0, 0.0], "G1": [0.0, 1.0], "G2": [1.0, 1.0], "OTHER": [2.0, 2.0]}


def _labels():
    # G0 / G0 in another context / G0 in another batch / control / G1+G2
    return ConditionLabels.make([[0], [0], [0], [], [1, 2]], context=[0, 1, 0, 0, 0], batch=[0, 0, 1, 0, 0])


def test_each_covariate_changes_the_embedding():
    torch.manual_seed(0)
    c = CovariateConditioner(tiny_info(), n_genes=12, part_dim=4)
    e = c(_labels())
    assert e.shape == (5, 12) and c.dim == 12  # dim tied to the gene count by default
    for i in (1, 2, 3, 4):
        assert not torch.allclose(e[0], e[i]), f"row {i} differs from row 0 in one covariate and must embed differently"


def test_parts_can_be_switched_off():
    torch.manual_seed(0)
    c = CovariateConditioner(tiny_info(), n_genes=12, part_dim=4, use_context=False, use_batch=False, dim=6)
    e = c(_labels())
    torch.testing.assert_close(e[0], e[1])
    torch.testing.assert_close(e[0], e[2])
    assert c.out.in_features == 4


def test_null_embedding_replaces_dropped_rows():
    c = CovariateConditioner(tiny_info(), n_genes=12, part_dim=4, dim=8)
    drop = torch.tensor([True, False, False, True, False])
    e = c(_labels(), drop)
    torch.testing.assert_close(e[0], c.null)
    torch.testing.assert_close(e[3], c.null)
    torch.testing.assert_close(e[1], c(_labels())[1])


def test_table_mode_embeds_unseen_atoms_with_a_row():
    info = tiny_info()  # atoms G0..G3; G3 has no row
    c = CovariateConditioner(info, n_genes=12, perturbation="table", perturbation_table=TABLE, part_dim=4, dim=8)
    assert c.can_embed(["G0", "g1", "G3", "OTHER"]) == [True, True, False, True]
    assert c.capabilities.supports_unseen_perturbations is True
    e = c(_labels())
    assert torch.isfinite(e).all() and not torch.allclose(e[0], e[4])
    onehot = CovariateConditioner(info, n_genes=12, seen_perturbations=["G0"], part_dim=4)
    assert onehot.can_embed(["G0", "G1"]) == [True, False]
    assert onehot.capabilities.supports_unseen_perturbations is False


def test_context_table_and_config_build():
    c = build_component(
        "conditioners",
        {"name": "covariate", "context_table": {"ctxA": [0.0, 1.0, 2.0], "ctxB": [1.0, 0.0, 0.0]}, "part_dim": 4},
        info=tiny_info(),
        n_genes=12,
    )
    assert isinstance(c.context, torch.nn.Linear) and c.context.in_features == 3
    e = c(_labels())
    assert not torch.allclose(e[0], e[1])


def test_bad_input_names_the_key():
    with pytest.raises(ValueError, match="perturbation_table"):
        CovariateConditioner(tiny_info(), n_genes=12, perturbation="table")
    with pytest.raises(ValueError, match="perturbation"):
        CovariateConditioner(tiny_info(), n_genes=12, perturbation="esm")


def test_onehot_std_sets_the_perturbation_table_scale():
    # PerturbDiff's CovEncoder keeps nn.Embedding's N(0, 1); distgen's default is N(0, 1/part_dim)
    torch.manual_seed(0)
    default = CovariateConditioner(tiny_info(), n_genes=12, part_dim=256)
    official = CovariateConditioner(tiny_info(), n_genes=12, part_dim=256, onehot_std=1.0)
    assert float(default.pert.weight.detach().std()) == pytest.approx(256**-0.5, rel=0.1)
    assert float(official.pert.weight.detach().std()) == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="onehot_std"):
        CovariateConditioner(tiny_info(), n_genes=12, part_dim=4, onehot_std=0.0)
