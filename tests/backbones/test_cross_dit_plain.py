"""The Cross-DiT against a plain implementation written out from its parameters.

``plain`` below reads only the state dict (and the network's time embedding, which none of the work
savers touches) and spells every block out: LayerNorm, adaLN modulation, one joint attention with
RMS qk-norm and explicit softmax, the full output projection (both streams' halves, the control half
then dropped), gated residuals, tanh-GELU MLPs, the head. The network's own savers (per-set
modulation, the last block's control half of the projection not computed, the self-conditioning
pass's condition terms reused by the gradient pass) must give its outputs and gradients.
"""

import math

import pytest
import torch

from distgen.backbones.base import Condition
from distgen.backbones.cross_dit import CrossDiT

from .cross_dit_helpers import random_inputs, randomise_adaln

G, D, H, B, M, DEPTH = 9, 16, 2, 3, 5, 3


def _net(block="parallel", output="relu", **kw):
    torch.manual_seed(0)
    net = CrossDiT(n_genes=G, cond_dim=4, dim=D, depth=DEPTH, heads=H, block=block, output=output, **kw)
    return randomise_adaln(net)


def _inputs(seed=0, mask=None):
    return random_inputs(B, M, G, seed, mask=mask, drop=torch.tensor([False, True, False]))


def _ln(x):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-6)


def _rms(x, w):
    return x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * w


def _lin(p, name, x):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _mlp(p, name, x):
    h = _lin(p, f"{name}.0", x)
    h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    return _lin(p, f"{name}.2", h)


def plain(net, x, t, cond, x_sc=None, parallel=True):
    """The network's function from its parameters, every step written out, per-cell ``c``."""
    p = dict(net.named_parameters())
    e = _lin(p, "cov", cond.embedding)
    e = torch.where(cond.drop[:, None], p["null"].expand_as(e), e)
    c = net.embed_time(t.contiguous()) + e[:, None, :]  # [B, m, d]
    sc = torch.zeros_like(x) if x_sc is None else x_sc
    hp = _lin(p, "in_p", torch.cat([x, sc], -1)) + p["token"]
    hc = _lin(p, "in_c", cond.control) + p["token"]
    silu_c = c * torch.sigmoid(c)
    mask = cond.control_mask
    for i in range(DEPTH):
        b = f"blocks.{i}"
        mp = _lin(p, f"{b}.ada_p.lin", silu_c).chunk(6, -1)
        mc = _lin(p, f"{b}.ada_c.lin", silu_c).chunk(2 if i == DEPTH - 1 else 6, -1)
        np_, nc = _ln(hp), _ln(hc)
        u = torch.cat([np_ * (1 + mp[1]) + mp[0], nc * (1 + mc[1]) + mc[0]], -1)
        q, k, v = _lin(p, f"{b}.attn.qkv", u).view(B, M, 3, H, 2 * D // H).unbind(2)  # [B, m, h, hd]
        q, k = _rms(q, p[f"{b}.attn.q_norm.weight"]), _rms(k, p[f"{b}.attn.k_norm.weight"])
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(2 * D // H)
        s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
        o = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v).reshape(B, M, 2 * D)
        a = _lin(p, f"{b}.attn.proj", o)
        dp, dc = a[..., :D], a[..., D:]
        hp = hp + mp[2] * dp
        hp = hp + mp[5] * _mlp(p, f"{b}.mlp_p", (np_ if parallel else _ln(hp)) * (1 + mp[4]) + mp[3])
        if i < DEPTH - 1:
            hc = hc + mc[2] * dc
            hc = hc + mc[5] * _mlp(p, f"{b}.mlp_c", (nc if parallel else _ln(hc)) * (1 + mc[4]) + mc[3])
    sh, scale = _lin(p, "head.ada.lin", silu_c).chunk(2, -1)
    out = _lin(p, "head.lin", _ln(hp) * (1 + scale) + sh)
    return out.relu() if net.output == "relu" else out


@pytest.mark.parametrize("block", ["parallel", "sequential"])
@pytest.mark.parametrize("padded", [False, True])
def test_outputs_and_gradients_equal_the_plain_network(block, padded):
    net = _net(block=block, token_bias="shared").train()
    mask = None
    if padded:
        mask = torch.ones(B, M, dtype=torch.bool)
        mask[0, -2:] = False
    x, t, cond = _inputs(mask=mask)
    x_sc = torch.rand_like(x)
    target = torch.rand(B, M, G)
    got_out = net(x, t, cond, x_self_cond=x_sc)
    ((got_out - target) ** 2).mean().backward()
    got = {n: q.grad.clone() for n, q in net.named_parameters() if q.grad is not None}
    net.zero_grad(set_to_none=True)
    want_out = plain(net, x, t, cond, x_sc, parallel=block == "parallel")
    ((want_out - target) ** 2).mean().backward()
    want = {n: q.grad for n, q in net.named_parameters() if q.grad is not None}
    torch.testing.assert_close(got_out, want_out, atol=2e-6, rtol=1e-5)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=2e-6, rtol=1e-4, msg=name)


def _self_conditioned_step(net, x, t, cond, target):
    """A training step's two calls: the estimate without autograd, then the pass that is differentiated."""
    with torch.no_grad():
        est = net(x, t, cond)
    out = net(x, t, cond, x_self_cond=est)
    ((out - target) ** 2).mean().backward()
    return est, out


def test_self_conditioning_step_equals_the_plain_network():
    net = _net(token_bias="shared").train()
    x, t, cond = _inputs()
    target = torch.rand(B, M, G)
    est, out = _self_conditioned_step(net, x, t, cond, target)
    got = {n: q.grad.clone() for n, q in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    with torch.no_grad():
        want_est = plain(net, x, t, cond)
    want_out = plain(net, x, t, cond, want_est)
    ((want_out - target) ** 2).mean().backward()
    torch.testing.assert_close(est, want_est, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(out, want_out, atol=2e-6, rtol=1e-5)
    for name, q in net.named_parameters():
        torch.testing.assert_close(got[name], q.grad, atol=2e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("change", ["other_time", "other_condition", "weights_updated"])
def test_a_call_after_another_time_condition_or_weights_equals_the_plain_network(change):
    net = _net(token_bias="shared").train()
    x, t, cond = _inputs()
    with torch.no_grad():
        net(x, t, cond)  # a call before: nothing of it may leak into the next (no cache of condition terms)
        if change == "weights_updated":
            net.blocks[0].ada_p.lin.weight.add_(0.5)
            net.in_c.weight.mul_(1.5)
    if change == "other_time":
        t = t * 0.5
    if change == "other_condition":
        cond = Condition(**{**cond.__dict__, "drop": torch.tensor([True, False, False])})
    got = net(x, t, cond)
    torch.testing.assert_close(got, plain(net, x, t, cond), atol=2e-6, rtol=1e-5)


def test_qk_norm_gradients_equal_the_plain_formula_and_pass_gradcheck():
    from distgen.backbones.cross_dit import QKNorm, _RMSNorm

    norm = QKNorm(6, eps=1e-6).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6, dtype=torch.float64))
    x = torch.randn(2, 5, 3, 6, dtype=torch.float64).permute(0, 2, 1, 3).requires_grad_()  # a strided view, as q and k are
    w = norm.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: _RMSNorm.apply(x, w, 1e-6), (x, w))
    g = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    got = torch.autograd.grad(norm(x), (x, norm.weight), g)
    want = torch.autograd.grad(_rms(x, norm.weight), (x, norm.weight), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(norm(x), _rms(x, norm.weight), atol=1e-12, rtol=1e-10)
