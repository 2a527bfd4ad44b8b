"""The trainer's optimizer: fused / multi-tensor kernels with the loop's numerics, weight-decay groups."""

import copy

import pytest
import torch
from torch import nn

from distgen.data import TableBatches
from distgen.train.optim import choose_impl, clipped_step, grad_norm, make_optimizer, optimizer_impl, param_groups
from distgen.train.options import train_options
from distgen.train.trainer import Trainer


class SmallNet(nn.Module):
    """Matrices, biases, a norm gain and a free 1-D parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3))
        self.gain = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.gain


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return SmallNet()


def run(net: nn.Module, kind: str, impl: str, steps: int = 6, weight_decay: float = 0.1, decay_norm_and_bias: bool = True) -> nn.Module:
    net = copy.deepcopy(net)
    opt = make_optimizer(net.named_parameters(), kind, lr=1e-2, weight_decay=weight_decay, decay_norm_and_bias=decay_norm_and_bias, impl=impl)
    assert optimizer_impl(opt) == impl
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=gen)
        loss = net(x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net


@pytest.mark.parametrize("kind", ["adam", "adamw"])
@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_fast_kernels_match_the_plain_loop(kind, impl):
    net = small_net()
    ref = run(net, kind, "loop")
    fast = run(net, kind, impl)
    moved = False
    for (name, a), b, p0 in zip(ref.named_parameters(), fast.parameters(), net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
        moved |= not torch.equal(a, p0)
    assert moved


def test_auto_picks_fused_where_torch_has_it_on_cpu():
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    params = list(small_net().parameters())
    expected = "fused" if "cpu" in _get_fused_kernels_supported_devices() else "foreach"
    assert choose_impl(params) == expected
    assert choose_impl(params, "loop") == "loop"
    with pytest.raises(ValueError, match="impl must be one of"):
        choose_impl(params, "fast")


def test_integer_parameters_are_not_sent_to_the_fused_kernel():
    params = [nn.Parameter(torch.zeros(3)), torch.zeros(2, dtype=torch.long)]
    assert choose_impl(params) != "fused"


def test_no_decay_on_biases_and_norms_when_asked():
    net = small_net()
    groups = param_groups(net.named_parameters(), 0.1, decay_norm_and_bias=False)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in net.named_parameters():
        assert (id(p) in decayed) == (p.ndim >= 2), name
    # behaviour: with zero gradients AdamW moves only the decayed parameters
    opt = make_optimizer(net.named_parameters(), "adamw", lr=0.5, weight_decay=0.1, decay_norm_and_bias=False)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]) == (p.ndim < 2), name
    all_groups = param_groups(net.named_parameters(), 0.1)
    assert len(all_groups) == 1 and all_groups[0]["weight_decay"] == 0.1


def test_trainer_builds_the_groups_from_the_train_option(table, make_model):
    def decay_of(opts: dict) -> tuple[dict[int, float], torch.nn.Module]:
        model = make_model()
        tr = Trainer(model, TableBatches(table, 4, 4), train_options({"steps": 1, "sets_per_batch": 4, "progress": False, "weight_decay": 0.05, **opts}))
        return {id(p): g["weight_decay"] for g in tr.optimizer.param_groups for p in g["params"]}, model

    wd, model = decay_of({"decay_norm_and_bias": False})
    assert {wd[id(p)] for p in model.parameters() if p.ndim < 2} == {0.0}
    assert {wd[id(p)] for p in model.parameters() if p.ndim >= 2} == {0.05}
    wd, model = decay_of({})
    assert set(wd.values()) == {0.05}


def _clip_run(net: nn.Module, impl: str, max_norm: float | None, folded: bool, steps: int = 5) -> tuple[nn.Module, list[float]]:
    """``steps`` AdamW steps with clipping: ``clip_grad_norm_`` then ``step`` (``folded=False``) or ``clipped_step``."""
    net = copy.deepcopy(net)
    opt = make_optimizer(net.named_parameters(), "adamw", lr=1e-2, weight_decay=0.1, impl=impl)
    gen = torch.Generator().manual_seed(2)
    norms = []
    for _ in range(steps):
        loss = net(torch.randn(32, 6, generator=gen) * 5).pow(2).mean()  # large inputs: norms well above the limit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(net.parameters())
        if folded:
            norm = grad_norm(params)
            clipped_step(opt, params, norm, max_norm)
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))
            opt.step()
        norms.append(float(norm))
        assert getattr(opt, "grad_scale", None) is None  # the fused kernel's scale is not left behind
    return net, norms


@pytest.mark.parametrize("impl", ["fused", "foreach", "loop"])
def test_clipped_step_equals_clip_grad_norm_then_step(impl):
    net = small_net()
    ref, ref_norms = _clip_run(net, impl, 0.1, folded=False)
    got, norms = _clip_run(net, impl, 0.1, folded=True)
    assert min(ref_norms) > 0.1  # clipping was active on every step
    assert norms == pytest.approx(ref_norms, rel=1e-5)
    moved = False
    for (name, a), b, p0 in zip(ref.named_parameters(), got.parameters(), net.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
        moved |= not torch.equal(a, p0)
    assert moved


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_no_limit_or_a_norm_within_it_steps_on_the_gradients_as_they_are(impl):
    net = small_net()
    for limit in (None, 1e9):
        ref, _ = _clip_run(net, impl, limit, folded=False)
        got, _ = _clip_run(net, impl, limit, folded=True)
        for a, b in zip(ref.parameters(), got.parameters()):
            assert torch.equal(a, b)  # multiplying by 1.0 (clip_grad_norm_) changes no bit; skipping it neither


def test_grad_norm_is_the_clip_norm_and_zero_without_gradients():
    net = small_net()
    assert float(grad_norm(net.parameters())) == 0.0
    net(torch.randn(8, 6)).pow(2).mean().backward()
    want = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in net.parameters()))
    assert float(grad_norm(net.parameters())) == pytest.approx(float(want), rel=1e-6)


def test_grad_norms_is_the_global_norm_bit_for_bit_with_each_gradients_norm():
    """The trainer clips with grad_norms' total (it keeps the per-gradient norms for the no-gradient check): it must be
    get_total_norm's number exactly, also with gradients of several dtypes (grouped, so reordered) and missing ones."""
    from distgen.train.optim import grad_norms

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n, dtype=dt)) for n, dt in
              ((5, torch.float32), (7, torch.float64), (3, torch.float32), (4, torch.bfloat16), (6, torch.float64))]
    for i, p in enumerate(params):
        if i != 2:  # one without a gradient
            p.grad = torch.randn_like(p) * (i + 1)
    total, per, order = grad_norms(params)
    assert torch.equal(total, torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
    assert sorted(order) == [0, 1, 3, 4] and per is not None and len(per) == 4
    for k, i in enumerate(order):
        assert torch.equal(per[k], torch.linalg.vector_norm(params[i].grad, 2.0).to(per.dtype))
    assert grad_norms([torch.nn.Parameter(torch.ones(2))])[1] is None
