"""Cross-DiT: joint attention over cell tokens, adaLN-Zero, masking, equivariance, heads."""

import math

import pytest
import torch

from distgen.backbones.adaln import AdaLNZero
from distgen.backbones.base import Condition
from distgen.backbones.cross_dit import CrossDiT, JointAttention

G, D = 6, 8


def _net(**kw):
    torch.manual_seed(0)
    net = CrossDiT(n_genes=G, cond_dim=4, **{"dim": D, "depth": 2, "heads": 2, **kw})
    return net


def _randomise_modulation(net):
    """adaLN-Zero makes every block the identity at init; give the modulations weights to test the blocks."""
    g = torch.Generator().manual_seed(1)
    for mod in net.modules():
        if isinstance(mod, AdaLNZero):
            mod.lin.weight.data = torch.randn(mod.lin.weight.shape, generator=g) * 0.3
    return net


def _inputs(b=2, m=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, m, G, generator=g)
    ctrl = torch.rand(b, m, G, generator=g)
    cond = Condition(gene_ids=torch.arange(G), embedding=torch.randn(b, 4, generator=g), control=ctrl,
                     control_mask=torch.ones(b, m, dtype=torch.bool))
    t = torch.rand(b, 1, generator=g).expand(b, m)
    return x, t, cond


def test_blocks_start_as_identity_so_control_has_no_effect_at_init():
    net = _net().eval()
    x, t, cond = _inputs()
    out = net(x, t, cond)
    other = Condition(**{**cond.__dict__, "control": cond.control + 1.0})
    torch.testing.assert_close(net(x, t, other), out)
    _randomise_modulation(net)
    assert not torch.allclose(net(x, t, other), net(x, t, cond)), "after training the control stream must matter"


def test_control_cells_reach_every_token_through_attention():
    net = _randomise_modulation(_net(output="identity")).eval()
    x, t, cond = _inputs()
    ctrl = cond.control.clone()
    ctrl[:, 0] += 2.0  # change only control cell 0
    out, out2 = net(x, t, cond), net(x, t, Condition(**{**cond.__dict__, "control": ctrl}))
    assert (out2 - out)[:, 1:].abs().max() > 1e-4, "cells other than 0 must see control cell 0 (attention mixes tokens)"


def test_permutation_equivariant_with_trained_modulation():
    net = _randomise_modulation(_net(output="identity")).eval()
    x, t, cond = _inputs()
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = net(x, t, cond)
    cond_p = Condition(**{**cond.__dict__, "control": cond.control[:, perm]})
    torch.testing.assert_close(net(x[:, perm], t[:, perm], cond_p), out[:, perm], atol=1e-5, rtol=1e-5)


def test_padded_tokens_are_ignored_by_real_ones():
    net = _randomise_modulation(_net(output="identity")).eval()
    x, t, cond = _inputs()
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    cond = Condition(**{**cond.__dict__, "control_mask": mask})
    out = net(x, t, cond)
    x2, ctrl2 = x.clone(), cond.control.clone()
    x2[1, 3:] = 50.0
    ctrl2[1, 3:] = -50.0
    out2 = net(x2, t, Condition(**{**cond.__dict__, "control": ctrl2}))
    torch.testing.assert_close(out2[mask], out[mask], atol=1e-5, rtol=1e-5)


def test_joint_attention_matches_explicit_softmax_attention():
    torch.manual_seed(0)
    att = JointAttention(width=8, heads=2, qk_norm=True)
    u = torch.randn(2, 5, 8)
    q, k, v = att.qkv(u).view(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    q = q / q.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * att.q_norm.weight
    k = k / k.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * att.k_norm.weight
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), -1)
    want = att.proj((w @ v).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(att(u, None), want, atol=1e-5, rtol=1e-5)


def test_streams_are_concatenated_along_features():
    net = _net()
    assert net.blocks[0].attn.qkv.in_features == 2 * D
    assert net.blocks[-1].mlp_c is None  # the last block's control MLP would be unused


def test_relu_head_is_non_negative_and_self_conditioning_is_an_input():
    net = _randomise_modulation(_net()).eval()
    x, t, cond = _inputs()
    out = net(x, t, cond)
    assert (out >= 0).all()
    torch.testing.assert_close(net(x, t, cond, x_self_cond=torch.zeros_like(x)), out)
    assert not torch.allclose(net(x, t, cond, x_self_cond=torch.ones_like(x)), out)


def test_errors_name_the_problem():
    net = _net()
    x, t, cond = _inputs()
    with pytest.raises(ValueError, match="genes"):
        net(x[..., :3], t, cond)
    with pytest.raises(ValueError, match="control cell"):
        net(x, t, Condition(**{**cond.__dict__, "control": cond.control[:, :2]}))
    with pytest.raises(ValueError, match="output"):
        CrossDiT(n_genes=G, cond_dim=4, output="tanh")
    with pytest.raises(ValueError, match="divisible"):
        CrossDiT(n_genes=G, cond_dim=4, dim=5, heads=4)
