"""distgen.attention.sdpa: SDPA, with the CPU kernel run in float32 where torch's reduced-precision one is slow."""

import pytest
import torch
import torch.nn.functional as F

from distgen.attention import sdpa


def _qkv(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 2, 7, 8, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("masked", [False, True])
def test_under_cpu_autocast_the_kernel_runs_in_float32_and_returns_bf16(masked):
    q, k, v = (x.requires_grad_() for x in _qkv())
    mask = torch.rand(3, 1, 1, 7, generator=torch.Generator().manual_seed(1)) > 0.3 if masked else None
    if mask is not None:
        mask[:, ..., 0] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa(q, k, v, attn_mask=mask)
        plain = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # autocast's bf16 kernel
    assert out.dtype == plain.dtype == torch.bfloat16
    # float32 inputs are used as they are (autocast would round them to bf16 first); the output is rounded once
    want = F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), attn_mask=mask).to(torch.bfloat16)
    assert torch.equal(out, want)
    rq, rk, rv = (x.detach().to(torch.bfloat16) for x in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # inputs already in bf16 (a linear layer's output under autocast)
        got = sdpa(rq, rk, rv, attn_mask=mask)
    assert torch.equal(got, F.scaled_dot_product_attention(rq.float(), rk.float(), rv.float(), attn_mask=mask).to(torch.bfloat16))
    torch.testing.assert_close(out.float(), plain.float(), atol=2e-2, rtol=2e-2)  # the same function in another precision
    out.float().sum().backward()
    assert all(x.grad is not None and x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all() for x in (q, k, v))


def test_reduced_precision_tensors_without_autocast_keep_their_dtype():
    q, k, v = _qkv(torch.bfloat16)
    out = sdpa(q, k, v)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, F.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_precision_is_plain_sdpa(dtype):
    q, k, v = _qkv(dtype)
    assert torch.equal(sdpa(q, k, v), F.scaled_dot_product_attention(q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if dtype == torch.float64:  # autocast leaves float64 alone; so does sdpa
            assert sdpa(q, k, v).dtype == torch.float64


def test_mixed_dtypes_without_autocast_are_refused_as_by_sdpa():
    q, k, v = _qkv()
    with pytest.raises(RuntimeError):
        sdpa(q.to(torch.bfloat16), k, v)


def test_long_wide_attention_keeps_the_bf16_kernel_under_autocast():
    from distgen.attention import BF16_MIN_HEAD_DIM, BF16_MIN_KEYS

    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 1, BF16_MIN_KEYS, BF16_MIN_HEAD_DIM, generator=g) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(sdpa(q, k, v), F.scaled_dot_product_attention(q, k, v))
        short = sdpa(q[..., :-1, :], k[..., :-1, :], v[..., :-1, :])  # one key fewer: the float32 kernel
    assert torch.equal(short, F.scaled_dot_product_attention(q[..., :-1, :], k[..., :-1, :], v[..., :-1, :]).to(torch.bfloat16))
