"""The tanh-approximate GELU: the sigmoid form used without autograd is the same function to float32 rounding."""

import torch
from torch.nn import functional as F

from distgen.backbones.gelu import TanhGELU, gelu_tanh_inference


def test_sigmoid_form_equals_the_tanh_form():
    x = torch.cat([torch.linspace(-10, 10, 200_001), torch.randn(10_000) * 3])
    torch.testing.assert_close(gelu_tanh_inference(x), F.gelu(x, approximate="tanh"), atol=5e-7, rtol=0)
    x64 = x.double()
    torch.testing.assert_close(gelu_tanh_inference(x64), F.gelu(x64, approximate="tanh"), atol=1e-14, rtol=0)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e30, -1e30])
    want = F.gelu(special, approximate="tanh")
    got = gelu_tanh_inference(special)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(got.nan_to_num(3.0), want.nan_to_num(3.0))


def test_module_trains_with_torch_gelu_and_infers_with_the_sigmoid_form():
    act = TanhGELU()
    x = torch.randn(4, 64, requires_grad=True)
    y = act(x)
    assert torch.equal(y, F.gelu(x, approximate="tanh"))  # the same kernel, so the same bits
    (g,) = torch.autograd.grad(y.sum(), x)
    (want,) = torch.autograd.grad(F.gelu(x, approximate="tanh").sum(), x)
    assert torch.equal(g, want)
    with torch.no_grad():
        torch.testing.assert_close(act(x), F.gelu(x, approximate="tanh"), atol=5e-7, rtol=0)
        assert torch.equal(act(x), gelu_tanh_inference(x))
    assert act.state_dict() == {}  # nothing to load: official weights map as before
