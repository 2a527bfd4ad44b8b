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


def _block_reference(block, hp, hc, c, parallel):
    """The block written out from PerturbDiff's equations (per stream: h + g_a attn(.) + g_m mlp(mod(LN(input or mid))))."""
    ln = torch.nn.functional.layer_norm
    d = hp.shape[-1]
    mp = block.ada_p.lin(torch.nn.functional.silu(c)).chunk(6, -1)
    mc = block.ada_c.lin(torch.nn.functional.silu(c)).chunk(6, -1)
    a_in = torch.cat([ln(hp, (d,), eps=1e-6) * (1 + mp[1]) + mp[0], ln(hc, (d,), eps=1e-6) * (1 + mc[1]) + mc[0]], -1)
    dp, dc = block.attn(a_in, None).chunk(2, -1)
    out = []
    for h, m, delta, mlp in ((hp, mp, dp, block.mlp_p), (hc, mc, dc, block.mlp_c)):
        mid = h + m[2] * delta
        src = h if parallel else mid
        out.append(mid + m[5] * mlp(ln(src, (d,), eps=1e-6) * (1 + m[4]) + m[3]))
    return out


@pytest.mark.parametrize("kind", ["parallel", "sequential"])
def test_block_computes_its_declared_form(kind):
    from distgen.backbones.cross_dit import MMBlock

    torch.manual_seed(0)
    block = MMBlock(D, 2, 4.0, True, last=False, block=kind)
    for mod in (block.ada_p, block.ada_c):
        mod.lin.weight.data.normal_(0, 0.5)
        mod.lin.bias.data.normal_(0, 0.5)
    hp, hc, c = torch.randn(2, 5, D), torch.randn(2, 5, D), torch.randn(2, 5, D)
    got = block(hp, hc, c, None)
    want = _block_reference(block, hp, hc, c, kind == "parallel")
    torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1], want[1], atol=1e-5, rtol=1e-5)
    other = _block_reference(block, hp, hc, c, kind != "parallel")
    assert (got[0] - other[0]).abs().max() > 1e-3, "the two block forms must be different networks"


def test_parallel_is_the_default_and_sequential_is_an_option():
    assert all(b.parallel for b in _net().blocks)
    assert not any(b.parallel for b in _net(block="sequential").blocks)
    with pytest.raises(ValueError, match="block"):
        _net(block="joint")


def test_step_time_input_recovers_the_integer_ddpm_step_from_float32_time():
    from distgen.backbones.cross_dit import diffusion_step

    n = torch.arange(1000)
    t = (1 - (n.double() + 1) / 1000).float()  # how dynamics/diffusion hands a step to the backbone
    assert torch.equal(diffusion_step(t, 1000), n.double())
    assert diffusion_step(torch.tensor([0.55555]), 1000).item() == pytest.approx(443.45, abs=1e-3)  # continuous times pass through


def test_time_embedding_reads_the_step_or_the_scaled_time():
    net = _net()
    t = torch.tensor([[0.9, 0.25]])
    torch.testing.assert_close(net.embed_time(t), net.time(torch.tensor([[99.0, 749.0]])))
    scaled = _net(time_input="scaled", time_scale=1000.0)
    scaled.load_state_dict(net.state_dict())
    torch.testing.assert_close(scaled.embed_time(t), net.time(torch.tensor([[900.0, 250.0]])))


def test_dropped_conditions_use_the_null_vector_in_the_network_width():
    net = _randomise_modulation(_net(output="identity")).eval()
    x, t, cond = _inputs()
    drop = torch.tensor([True, False])
    out = net(x, t, Condition(**{**cond.__dict__, "drop": drop}))
    moved = Condition(**{**cond.__dict__, "drop": drop, "embedding": cond.embedding + 5.0})
    out2 = net(x, t, moved)
    torch.testing.assert_close(out2[0], out[0])  # the dropped set ignores its embedding
    assert (out2[1] - out[1]).abs().max() > 1e-4
    plain = _randomise_modulation(_net(output="identity", null_condition=False)).eval()
    assert plain.null is None


def test_official_control_init_is_the_xavier_bound_of_a_2g_input_layer():
    # the official control layer reads [x_ctrl ; 0] (2G inputs): Xavier bound sqrt(6 / (2G + d)), not sqrt(6 / (G + d))
    g, d = 50, 16
    torch.manual_seed(0)
    own = CrossDiT(n_genes=g, cond_dim=8, dim=d, depth=2, heads=2)
    torch.manual_seed(0)
    official = CrossDiT(n_genes=g, cond_dim=8, dim=d, depth=2, heads=2, control_init="official")
    a, b = own.state_dict(), official.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == ["in_c.weight"]  # same draws everywhere else
    torch.testing.assert_close(b["in_c.weight"], a["in_c.weight"] * math.sqrt((g + d) / (2 * g + d)))
    assert float(b["in_c.weight"].abs().max()) <= math.sqrt(6 / (2 * g + d))
    assert float(a["in_c.weight"].abs().max()) > math.sqrt(6 / (2 * g + d))  # the own-fan-in bound is wider and is reached
    with pytest.raises(ValueError, match="control_init"):
        CrossDiT(n_genes=g, cond_dim=8, dim=d, depth=1, heads=2, control_init="zeros")


def test_shared_token_bias_is_the_same_function_as_the_folded_one_with_one_parameter_more():
    torch.manual_seed(0)
    folded = CrossDiT(n_genes=12, cond_dim=8, dim=16, depth=2, heads=2)
    torch.manual_seed(0)
    shared = CrossDiT(n_genes=12, cond_dim=8, dim=16, depth=2, heads=2, token_bias="shared")
    assert folded.token is None and shared.token is not None
    torch.testing.assert_close(shared.token.detach(), folded.in_p.bias.detach())  # the same N(0, 1) draw
    assert not shared.in_p.bias.any() and not shared.in_c.bias.any()  # the input biases start at 0, as the code's
    x, t = torch.rand(2, 5, 12), torch.rand(2, 5)
    cond = Condition(gene_ids=torch.arange(12), embedding=torch.randn(2, 8), control=torch.rand(2, 5, 12), control_mask=torch.ones(2, 5, dtype=torch.bool))
    for blk in shared.blocks:  # non-zero modulation, so that every token reaches the head
        torch.nn.init.normal_(blk.ada_p.lin.weight, std=0.1)
        torch.nn.init.normal_(blk.ada_c.lin.weight, std=0.1)
    folded.load_state_dict({k: v for k, v in shared.state_dict().items() if k != "token"})
    with torch.no_grad():
        folded.in_p.bias += shared.token
        folded.in_c.bias += shared.token
    torch.testing.assert_close(shared(x, t, cond), folded(x, t, cond))
    out = shared(x, t, cond).sum()
    out.backward()
    torch.testing.assert_close(shared.token.grad, shared.in_p.bias.grad + shared.in_c.bias.grad)  # one parameter for both streams
    with pytest.raises(ValueError, match="token_bias"):
        CrossDiT(n_genes=12, cond_dim=8, dim=16, depth=1, heads=2, token_bias="split")


def test_each_time_input_refuses_the_other_inputs_parameter():
    # time_scale was read only under time_input: scaled, timesteps only under step; the other was accepted and ignored
    with pytest.raises(ValueError, match=r"time_scale=2000\.0 multiplies t only with time_input: scaled.*no effect"):
        _net(time_scale=2000.0)
    with pytest.raises(ValueError, match=r"timesteps=500 is read only with time_input: step.*no effect"):
        _net(time_input="scaled", timesteps=500)
    t = torch.tensor([[0.25]])
    assert torch.equal(_net(time_input="scaled").embed_time(t), _net(time_input="scaled", time_scale=1000.0).embed_time(t))
    assert not torch.equal(_net(time_input="scaled").embed_time(t), _net(time_input="scaled", time_scale=10.0).embed_time(t))


def test_qk_norm_under_bf16_autocast_gives_torchs_numbers_without_its_warning():
    """Under bf16 autocast (precision: auto on CUDA, bf16 on CPU) the queries are bf16 and the RMSNorm gain float32:
    torch computes in float32 and warns "Mismatch dtype between input and weight", which distgen run kept as a note of
    the run. The qk-norm gives the same bf16 numbers without the warning, and is nn.RMSNorm in float32."""
    import warnings

    from distgen.backbones.cross_dit import QKNorm

    torch.manual_seed(0)
    ours, theirs = QKNorm(8, eps=1e-6), torch.nn.RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 5, 8)
    assert torch.equal(ours(x), theirs(x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expected = theirs(x.bfloat16())
    assert any("Mismatch dtype" in str(w.message) for w in caught)  # what torch says (the reason for QKNorm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ours(x.bfloat16())
        attn = JointAttention(16, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attn(torch.randn(2, 5, 16), None)
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
