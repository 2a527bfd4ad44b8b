"""The PAD-Transformer's speed and memory work keeps its numerics: outputs, gradients, losses and
samples against the plain unfused oracle (``pad_reference``), the inference cache, checkpointing
and ``torch.compile``."""

import copy

import pytest
import torch

from distgen.backbones.base import Condition
from distgen.backbones.differential_attention import normalised_difference
from distgen.backbones.pad_transformer import PADTransformer
from distgen.models.generator import build_model
from distgen.testing.fixtures import tiny_batch, tiny_info

from . import pad_reference as ref


def _graph(g=12, seed=0):
    adj = torch.rand(g, g, generator=torch.Generator().manual_seed(seed)) > 0.75
    return adj | adj.T


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    params = {"d_model": 16, "heads": 2, "layers": 2, "dropout": 0.0, "gene_graph": _graph(), **kw}
    return PADTransformer(tiny_info(), **params)


def _inputs(seed=0):
    b = tiny_batch(pad_last=0, seed=seed)
    t = torch.rand(3, 6, generator=torch.Generator().manual_seed(seed + 1))
    return b, t, Condition(gene_ids=b.gene_ids, control=b.control, control_mask=b.control_mask, labels=b.labels)


def _grads(out, net):
    return torch.autograd.grad(out.square().sum(), list(net.parameters()), allow_unused=True)


@pytest.mark.parametrize("attention", ["differential", "standard"])
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_gradients_match_the_unfused_oracle(attention, training):
    net = _net(attention=attention).train(training)
    b, t, cond = _inputs()
    fast, slow = net(b.target, t, cond), ref.forward(net, b.target, t, cond)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    for (name, _), gf, gs in zip(net.named_parameters(), _grads(fast, net), _grads(slow, net)):
        if gs is None:
            assert gf is None or not gf.any(), name
            continue
        torch.testing.assert_close(gf, gs, atol=1e-5, rtol=1e-4, msg=name)


def test_normalised_difference_gradients():
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.double, requires_grad=True) for _ in range(2))
    lam = torch.tensor(0.3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, lam: normalised_difference(a, b, lam, 1e-5), (a, b, lam))
    o = a - lam * b
    expect = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(normalised_difference(a, b, lam, 1e-5), expect)


def test_inference_reuses_condition_terms_until_weights_or_condition_change(monkeypatch):
    net = _net().eval()
    b, t, cond = _inputs()
    calls = []
    real = net._compute_terms
    monkeypatch.setattr(net, "_compute_terms", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        first = net(b.target, t, cond)
        again = net(b.target * 0.5, t * 0.3, cond)  # another ODE step: same condition
        assert len(calls) == 1
        torch.testing.assert_close(again, ref.forward(net, b.target * 0.5, t * 0.3, cond), atol=1e-5, rtol=1e-5)
        net(b.target, t, Condition(**vars(cond)))  # a new condition object
        assert len(calls) == 2
        net.decoder.w3.b.weight.mul_(2.0)  # weights changed (optimizer step, EMA swap, load_state_dict)
        changed = net(b.target, t, cond)
        assert len(calls) == 3 and not torch.allclose(changed, first)
    net(b.target, t, cond)  # with autograd (training-time forward): never cached
    assert len(calls) == 4


def test_losses_and_samples_match_the_oracle_backbone():
    """Generator-level: the flow-matching + MMD loss and RK4 samples, fused backbone vs the oracle."""
    info = tiny_info()
    node = {
        "name": "generator",
        "backbone": {"name": "pad_transformer", "d_model": 16, "heads": 2, "layers": 2, "dropout": 0.0, "graph": False},
        "dynamics": {"name": "flow_matching", "solver": {"name": "rk4", "steps": 4}, "clamp_min": 0.0},
        "distribution_loss": {"name": "kme", "kernel": {"name": "rbf", "scales": [0.5, 1, 2, 4]}, "unbiased": True},
        "distribution_weight": 0.5,
    }
    torch.manual_seed(0)
    fast = build_model(node, info)
    slow = copy.deepcopy(fast)
    slow.backbone.forward = lambda x_t, t, cond: ref.forward(slow.backbone, x_t, t, cond)
    batch = tiny_batch(pad_last=0)
    torch.manual_seed(3)
    lf = fast.loss(batch).loss
    torch.manual_seed(3)
    ls = slow.loss(batch).loss
    torch.testing.assert_close(lf, ls, atol=1e-5, rtol=1e-5)
    fast.eval()
    slow.eval()
    torch.manual_seed(4)
    sf = fast.predict(batch.control, batch.control_mask, batch.labels)
    torch.manual_seed(4)
    ss = slow.predict(batch.control, batch.control_mask, batch.labels)
    torch.testing.assert_close(sf, ss, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attention", ["differential", "standard"])
def test_checkpointing_gives_the_same_loss_and_gradients_with_dropout(attention):
    always, never = _net(attention=attention, dropout=0.2, checkpointing="always"), _net(attention=attention, dropout=0.2, checkpointing="never")
    never.load_state_dict(always.state_dict())
    b, t, cond = _inputs()
    outs, grads = [], []
    for net in (always, never):
        net.train()
        torch.manual_seed(7)
        out = net(b.target, t, cond)
        outs.append(out)
        grads.append(_grads(out, net))
    torch.testing.assert_close(outs[0], outs[1])
    for ga, gb in zip(*grads):
        if ga is not None or gb is not None:
            torch.testing.assert_close(ga, gb, atol=1e-6, rtol=1e-5)


def test_checkpointing_auto_switches_on_above_the_threshold():
    net = _net(checkpointing="auto")
    assert not net.uses_checkpointing(48, 64)
    assert net.uses_checkpointing(48 * 1000 * 512 // 16, 1)  # one activation of the paper's batch
    assert _net(checkpointing="always").uses_checkpointing(1, 1)
    assert not _net(checkpointing="never").uses_checkpointing(10**6, 10**3)
    with pytest.raises(ValueError, match="checkpointing must be one of"):
        _net(checkpointing="sometimes")


def test_module_with_caches_can_be_copied_and_pickled():
    import pickle

    net = _net().eval()
    b, t, cond = _inputs()
    with torch.no_grad():
        y = net(b.target, t, cond)
    clone = pickle.loads(pickle.dumps(net))
    assert clone._term_cache == {}
    with torch.no_grad():
        torch.testing.assert_close(clone(b.target, t, cond), y)
    copy.deepcopy(net)


@pytest.mark.slow
def test_compiled_trunk_matches_eager():
    """``train.compile`` compiles the trunk (optional; on the CPU it pays off only over long runs: docs/benchmarks.md)."""
    eager = _net()
    compiled = _net()
    compiled.compile()
    b, t, cond = _inputs()
    torch.testing.assert_close(compiled(b.target, t, cond), eager(b.target, t, cond), atol=1e-5, rtol=1e-5)


def test_compile_asks_inductor_for_the_decomposed_tanh_and_keeps_the_mode_and_callers_options(monkeypatch):
    from distgen.backbones.pad_transformer import INDUCTOR_OPTIONS

    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **kw: seen.append(kw) or fn)
    net = _net()
    net.compile()
    assert seen.pop() == {"options": INDUCTOR_OPTIONS} and INDUCTOR_OPTIONS == {"cpp.use_decompose_tanh": True}
    net.compile(mode="max-autotune-no-cudagraphs")  # a mode becomes its options (torch takes one or the other)
    assert seen.pop() == {"options": {"max_autotune": True, "coordinate_descent_tuning": True, **INDUCTOR_OPTIONS}}
    net.compile(options={"max_autotune": True})
    assert seen.pop() == {"options": {"max_autotune": True}}  # the caller's own options are left as given
    net.compile(backend="eager")
    assert seen.pop() == {"backend": "eager"}
