"""gene_vocab: perturbations embedded by gene name, tied to a backbone's gene tokens when possible."""

import pytest
import torch
from torch import nn

from distgen.conditioners.gene_vocab import GeneVocabConditioner, gene_lookup
from distgen.types import ConditionLabels, DataInfo

GENES = ("AAA", "BBB", "CCC", "DDD", "EEE")


def _info(perts=("CCC", "AAA", "drugX")):
    return DataInfo(genes=GENES, perturbations=perts)


def _cond(info=None, **kw):
    torch.manual_seed(0)
    return GeneVocabConditioner(info or _info(), dim=4, use_context=False, **kw)


def test_gene_lookup_exact_then_case_insensitive():
    assert gene_lookup(["CCC", "ccc", "zzz"], GENES) == [2, 2, -1]
    assert gene_lookup(["ccc"], GENES, case_sensitive=True) == [-1]


def test_single_is_the_gene_row_whatever_the_atom_order():
    c = _cond()
    e = c(ConditionLabels.make([[0], [1]]))  # atoms CCC, AAA
    torch.testing.assert_close(e[0], c.own.weight[2])
    torch.testing.assert_close(e[1], c.own.weight[0])
    # the same gene under another atom order gets the same row
    c2 = _cond(_info(("AAA", "CCC")))
    c2.own.weight.data.copy_(c.own.weight.data)
    torch.testing.assert_close(c2(ConditionLabels.make([[1]]))[0], e[0])


def test_pairs_pool_sum_and_mean():
    c_sum, c_mean = _cond(pool="sum"), _cond(pool="mean")
    pair, s0, s1 = ConditionLabels.make([[0, 1]]), ConditionLabels.make([[0]]), ConditionLabels.make([[1]])
    torch.testing.assert_close(c_sum(pair), c_sum(s0) + c_sum(s1))
    torch.testing.assert_close(c_mean(pair), (c_mean(s0) + c_mean(s1)) / 2)


def test_control_and_non_gene_atoms_embed_to_zero_before_covariates():
    c = _cond()
    e = c(ConditionLabels.make([[], [2]]))  # control; drugX is no gene
    assert e.abs().max() == 0


def test_can_embed_untied_only_seen_genes():
    c = _cond(seen_perturbations=["CCC"])
    assert c.can_embed(["CCC", "AAA", "EEE", "drugX", "NOT_A_GENE"]) == [True, False, False, False, False]


def test_tied_table_embeds_every_vocabulary_gene_and_trains_the_shared_table():
    c = _cond(seen_perturbations=["CCC"])
    shared = nn.Embedding(len(GENES), 6)
    c.tie_gene_embedding(shared, 6)
    assert c.tied and c.own is None
    assert c.can_embed(["CCC", "AAA", "EEE", "drugX"]) == [True, True, True, False]
    # the shared table is not re-registered under the conditioner (the backbone owns it)
    assert all(not k.startswith("_shared") for k in c.state_dict())
    e = c(ConditionLabels.make([[1]]))  # AAA, never perturbed in training
    assert e.shape == (1, 4)
    e.sum().backward()
    assert shared.weight.grad[0].abs().sum() > 0 and shared.weight.grad[1:].abs().sum() == 0


def test_share_gene_embedding_false_keeps_own_table():
    c = _cond(share_gene_embedding=False)
    c.tie_gene_embedding(nn.Embedding(len(GENES), 4), 4)
    assert not c.tied and c.own is not None


@pytest.mark.parametrize("dose", ["linear", "log", "learned"])
def test_dose_changes_embedding(dose):
    c = _cond(dose=dose)
    lo = c(ConditionLabels.make([[0]], dose=[[0.5]]))
    hi = c(ConditionLabels.make([[0]], dose=[[5.0]]))
    assert not torch.allclose(lo, hi)
