"""The PAD-Transformer's token and edge lists from the host's copy of the ids: same results, no device read.

``SetBatch.host_ids`` carries the CPU gene and perturbation ids of a batch made on the host to the device;
the PAD-Transformer builds its unique token list and the gene encoder's edge lists from them in numpy.
The former path (everything on the ids' device, ``torch.unique`` and ``repeat_interleave`` by tensor) is
kept for conditions the host knows nothing about; both must give the same numbers bit for bit.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from distgen.api import build
from distgen.backbones.base import Condition
from distgen.backbones.pad_transformer import PADTransformer
from distgen.encoders.kme import KernelMeanEmbedding
from distgen.testing.fixtures import tiny_batch, tiny_info, tiny_table
from distgen.train import fit


def _graph(g=12, seed=0):
    adj = torch.rand(g, g, generator=torch.Generator().manual_seed(seed)) > 0.75
    return adj | adj.T


def _cond(batch):
    return Condition(gene_ids=batch.gene_ids, control=batch.control, control_mask=batch.control_mask, labels=batch.labels,
                     control_full=batch.control_full, host_ids=batch.host_ids)


def _no_host(monkeypatch):
    monkeypatch.setattr(Condition, "host_tokens", lambda self: None)  # the former path: lists built on the device


def test_a_batch_carries_the_hosts_ids_to_a_device_and_through_cpu_column_choices():
    b = tiny_batch()
    d = b.to("meta")  # a device whose tensors cannot be read: the copies must come from the host
    gene_ids, pert = d.host_tokens()
    assert (gene_ids == b.gene_ids.numpy()).all() and (pert == b.labels.perturbation.numpy()).all()
    cols = torch.tensor([1, 4, 7])
    sub = d.select_genes(cols)
    assert sub.gene_ids.device.type == "meta" and (sub.host_tokens()[0] == b.gene_ids[cols].numpy()).all()
    assert d.select_genes(cols.to("meta")).host_tokens() is None  # columns known only on the device: no host copy
    # a batch whose ids or labels were replaced another way has no (stale) host copy
    assert dataclasses.replace(d, gene_ids=d.gene_ids.clone()).host_tokens() is None
    assert dataclasses.replace(d, labels=b.labels.to("meta")).host_tokens() is None
    cond = _cond(d)
    assert (cond.host_tokens()[0] == b.gene_ids.numpy()).all()
    assert Condition(gene_ids=d.gene_ids, labels=d.labels).host_tokens() is None


@pytest.mark.parametrize("encoding", ["gene", "table"])
@pytest.mark.parametrize("gene_dropout", ["per_cell", "shared"])
def test_host_lists_give_the_former_outputs_and_gradients_bit_for_bit(encoding, gene_dropout, monkeypatch):
    info = tiny_info()
    if encoding == "table":
        info = dataclasses.replace(info, perturbation_type="chemical")
    b = tiny_batch().select_genes(torch.tensor([0, 2, 3, 5, 8, 9, 11]))
    t = torch.rand(3, 6, generator=torch.Generator().manual_seed(2))

    def run():
        torch.manual_seed(0)
        net = PADTransformer(info, d_model=16, heads=2, layers=2, dropout=0.2, gene_graph=_graph(), gene_dropout=gene_dropout,
                             perturbation_encoding=encoding).train()
        torch.manual_seed(1)  # the dropout draws
        out = net(b.target, t, _cond(b))
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters() if p.grad is not None]

    out, grads = run()
    with monkeypatch.context() as mp:
        _no_host(mp)
        out0, grads0 = run()
    assert torch.equal(out, out0)
    assert len(grads) == len(grads0) and all(torch.equal(g, g0) for g, g0 in zip(grads, grads0, strict=True))


def test_training_steps_lose_the_same_with_and_without_the_hosts_ids(monkeypatch):
    # scDFM's recipe in small: per-cell gene dropout, gene subsampling, the unbiased MMD, condition dropout
    small = ["model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.dropout=0.1",
             "model.backbone.gene_dropout=per_cell", "model.genes_per_step=8", "model.predict_genes=8"]

    def losses():
        torch.manual_seed(0)
        model = build("scdfm-small", tiny_info(), overrides=small)
        opts = {"steps": 4, "log_every": 100, "checkpoint_every": 100, "progress": False, "sets_per_batch": 2}
        return fit(model, tiny_table(), opts, set_size=4).losses

    new = losses()
    with monkeypatch.context() as mp:
        _no_host(mp)
        old = losses()
    assert len(new) == 4 and new == old  # floats: equal bit for bit


@pytest.mark.parametrize("host", [True, False])
def test_gene_ids_outside_the_panel_are_refused_on_either_path(host, monkeypatch):
    if not host:
        _no_host(monkeypatch)
    net = PADTransformer(tiny_info(), d_model=16, heads=2, layers=1, dropout=0.0, gene_graph=_graph()).eval()
    b = tiny_batch().select_genes(torch.tensor([0, 3, 5, 7]))
    bad = _cond(b)
    bad.gene_ids = torch.tensor([0, 3, 5, 12])
    with pytest.raises(ValueError, match=r"gene_ids must be \[L\]=4 ids into the 12 genes"):
        net(b.target, torch.rand(3, 6), bad)


def test_the_unbiased_mmd_checks_a_device_mask_without_reading_it():
    enc = KernelMeanEmbedding(3, unbiased=True)
    x = torch.rand(2, 4, 3)
    few = torch.tensor([[True, True, False, False], [True, False, False, False]])
    with pytest.raises(ValueError, match="needs >= 2 real cells per set, but a set of p has 1"):
        enc.distance(x, few, x, few)
    # on a device the check is asserted asynchronously: a meta tensor has no data, so reading it would raise
    meta = x.to("meta")
    enc.distance(meta, few.to("meta"), meta, few.to("meta"))
