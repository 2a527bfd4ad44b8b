"""Cross-DiT work savers give the outputs (and gradients) of the plain per-cell computation.

The savers: time embedding and adaLN modulation once per set, the zero self-conditioning half of
the input projection skipped, condition-only terms kept across sampling steps. The reference below
is the plain computation written out from the network's own layers: a time vector per cell, the
input ``[x_t ; 0]`` through the whole input projection, everything recomputed on every call.
"""

import pytest
import torch
from torch.nn import functional as F

from distgen.backbones.base import Condition
from distgen.backbones.cross_dit import CrossDiT, per_set_time

from .cross_dit_helpers import random_inputs, randomise_adaln

G, D, B, M = 7, 16, 3, 5


def _net(**kw):
    torch.manual_seed(0)
    net = CrossDiT(n_genes=G, cond_dim=4, **{"dim": D, "depth": 3, "heads": 2, "output": "identity", **kw})
    return randomise_adaln(net)


def _inputs(seed=0, drop=None):
    return random_inputs(B, M, G, seed, drop=drop)


def _reference(net, x, t, cond, x_sc=None):
    """The plain computation: per-cell time, full input projection, nothing kept."""
    c = net.embed_time(t.contiguous())  # [B, m, d]: one row per cell
    e = net.cov(cond.embedding)
    if cond.drop is not None:
        e = torch.where(cond.drop[:, None], net.null.expand_as(e), e)
    c = c + e[:, None, :]
    hp = net.in_p(torch.cat([x, torch.zeros_like(x) if x_sc is None else x_sc], -1))
    hc = net.in_c(cond.control)
    for block in net.blocks:
        hp, hc = block(hp, hc, c, None)
    return net.head(hp, c)


@pytest.mark.parametrize("with_estimate", [False, True])
@pytest.mark.parametrize("drop", [None, torch.tensor([True, False, True])])
def test_outputs_equal_the_plain_computation(with_estimate, drop):
    net = _net().eval()
    x, t, cond = _inputs(drop=drop)
    x_sc = torch.rand_like(x) if with_estimate else None
    with torch.no_grad():
        want = _reference(net, x, t, cond, x_sc)
        got = net(x, t, cond, x_self_cond=x_sc)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_gradients_equal_the_plain_computation():
    net = _net().train()
    x, t, cond = _inputs()
    target = torch.randn(B, M, G)
    F.mse_loss(net(x, t, cond), target).backward()
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    F.mse_loss(_reference(net, x, t, cond), target).backward()
    want = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-5, msg=name)
    assert got["in_p.weight"][:, G:].abs().max() == 0  # the absent estimate's half gets no gradient either way


def test_per_cell_times_keep_per_cell_vectors():
    net = _net().eval()
    x, _, cond = _inputs()
    t = torch.rand(B, M)  # flow matching with a time per cell
    assert not per_set_time(t) and per_set_time(t[:, :1].expand(B, M)) and per_set_time(t[:, :1].repeat(1, M))
    with torch.no_grad():
        torch.testing.assert_close(net(x, t, cond), _reference(net, x, t, cond), atol=1e-6, rtol=1e-6)


def test_condition_terms_are_kept_across_sampling_steps_and_follow_weight_updates():
    net = _net().eval()
    x, t, cond = _inputs()
    calls = []
    net.in_c.register_forward_hook(lambda *_: calls.append("in_c"))
    net.cov.register_forward_hook(lambda *_: calls.append("cov"))
    null = Condition(**{**cond.__dict__, "drop": torch.ones(B, dtype=torch.bool)})
    with torch.inference_mode():
        first = [net(x, t, cond), net(x, t, null)]
        again = [net(x + 0.1, t * 0.5, cond), net(x + 0.1, t * 0.5, null), net(x, t, cond), net(x, t, null)]
    assert calls.count("in_c") == 1, "a condition and its null share the control cells: one projection per sampling run"
    assert calls.count("cov") == 2, "one covariate projection per condition object"
    torch.testing.assert_close(again[2], first[0], atol=0, rtol=0)
    torch.testing.assert_close(again[3], first[1], atol=0, rtol=0)
    with torch.no_grad():
        net.in_c.weight.add_(0.5)  # an optimizer step changes the weights in place
        updated = net(x, t, cond)
        torch.testing.assert_close(updated, _reference(net, x, t, cond), atol=1e-6, rtol=1e-6)
        cond.control.mul_(2.0)  # the same control tensor changed in place
        torch.testing.assert_close(net(x, t, cond), _reference(net, x, t, cond), atol=1e-6, rtol=1e-6)


def test_nothing_is_kept_in_training_and_copies_start_empty():
    import copy

    net = _net().train()
    x, t, cond = _inputs()
    with torch.no_grad():  # the self-conditioning pass of a training step
        net(x, t, cond)
    assert not net._cache
    net.eval()
    with torch.inference_mode():
        net(x, t, cond)
    assert net._cache
    assert not copy.deepcopy(net)._cache  # EMA copies and pickles carry no cached tensors
