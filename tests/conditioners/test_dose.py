"""Dose encodings: log scaling and the learned Hill dose-response."""

import math

import pytest
import torch

from distgen.conditioners.dose import DoseEncoding, hill, log_dose


def test_log_dose_values():
    torch.testing.assert_close(log_dose(torch.tensor([0.0, 1.0, 9.0]), scale=1.0), torch.tensor([0.0, math.log(2), math.log(10)]))
    torch.testing.assert_close(log_dose(torch.tensor([10.0]), scale=10.0), torch.tensor([math.log(2)]))


def test_hill_is_half_at_ec50_zero_at_zero_and_monotone():
    d = torch.tensor([0.0, 0.1, 1.0, 2.0, 10.0])
    h = hill(d, torch.tensor(2.0), torch.log(torch.tensor(2.0)))
    assert h[0] == 0 and abs(float(h[3]) - 0.5) < 1e-6
    assert (h[1:].diff() > 0).all()


def test_learned_mode_starts_as_hill_with_slope_one_and_ec50_scale():
    enc = DoseEncoding(dim=3, mode="learned", scale=4.0)
    w = enc.weight(torch.randn(1, 3, 3), torch.tensor([[4.0, 12.0, 0.0]]))
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.75, 0.0]]), atol=1e-4, rtol=1e-4)


def test_learned_curve_depends_on_atom_embedding_and_trains():
    enc = DoseEncoding(dim=3, mode="learned")
    torch.nn.init.normal_(enc.curve.weight)
    emb = torch.randn(1, 2, 3)
    w = enc.weight(emb, torch.tensor([[1.5, 1.5]]))
    assert not torch.allclose(w[0, 0], w[0, 1])
    enc(emb, torch.tensor([[1.5, 1.5]])).sum().backward()
    assert enc.curve.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode,expected", [("none", 1.0), ("linear", 3.0), ("log", math.log(4.0))])
def test_fixed_modes_scale_embedding(mode, expected):
    emb = torch.ones(1, 1, 2)
    torch.testing.assert_close(DoseEncoding(2, mode)(emb, torch.tensor([[3.0]])), torch.full((1, 1, 2), expected))


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        DoseEncoding(2, "sqrt")


@pytest.mark.parametrize("mode", ["none", "linear", "log", "learned"])
def test_gene_vocab_says_whether_it_reads_the_dose(mode):
    """``capabilities.reads_dose`` follows ``dose``: the pre-flight names a model trained on doses that ignores them."""
    import dataclasses

    from distgen.conditioners.base import conditioners
    from distgen.conditioners.dose import dose_blind
    from distgen.testing.fixtures import tiny_info, tiny_labels

    c = conditioners.get("gene_vocab")(tiny_info(), dim=8, dose=mode)
    labels = tiny_labels(4)
    changed = not torch.allclose(c(labels), c(dataclasses.replace(labels, dose=labels.dose * 3.0)))
    assert c.capabilities.reads_dose is changed is (mode != "none")
    assert dose_blind(torch.nn.ModuleList([c])) == (["GeneVocabConditioner (dose: none)"] if mode == "none" else None)


@pytest.mark.parametrize("mode", ["none", "linear", "log", "learned"])
def test_onehot_reads_the_dose_as_its_dose_option_says(mode):
    """``onehot`` multiplied by the raw dose only (sci-Plex's 10-10,000 nM gave vectors 1,000x apart); ``dose: log`` and
    ``learned`` as the other conditioners read it, ``none`` dose-blind (the pre-flight names it)."""
    import dataclasses

    from distgen.conditioners.base import conditioners
    from distgen.conditioners.dose import dose_blind
    from distgen.testing.fixtures import tiny_info, tiny_labels

    c = conditioners.get("onehot")(tiny_info(), dim=8, dose=mode, use_context=False)
    labels = tiny_labels(4)
    changed = not torch.allclose(c(labels), c(dataclasses.replace(labels, dose=labels.dose * 3.0)))
    assert c.capabilities.reads_dose is changed is (mode != "none")
    assert dose_blind(torch.nn.ModuleList([c])) == (["OneHotConditioner (dose: none)"] if mode == "none" else None)  # its mode named
    if mode == "log":  # each atom's vector times log1p(dose / scale), before pooling: the same embedding as linear at that weight
        lin = conditioners.get("onehot")(tiny_info(), dim=8, use_context=False)
        lin.load_state_dict(c.state_dict())
        torch.testing.assert_close(c.embed(labels), lin.embed(dataclasses.replace(labels, dose=log_dose(labels.dose))))


def test_onehot_default_reads_the_dose_linearly_as_before_and_keeps_its_checkpoint_keys():
    from distgen.conditioners.base import conditioners
    from distgen.testing.fixtures import tiny_info, tiny_labels

    c = conditioners.get("onehot")(tiny_info(), dim=8)
    labels = tiny_labels(4)
    ids = labels.perturbation
    rows = c.pert(ids.clamp_min(0)) * labels.dose[..., None] * (ids >= 0)[..., None]
    torch.testing.assert_close(c.embed(labels), rows.sum(1) + c.context(labels.context))
    assert set(c.state_dict()) == {k for k in c.state_dict() if not k.startswith("dose.")}  # no dose parameter unless learned
