"""Scaled dot-product attention: torch SDPA, with the CPU's reduced-precision kernels avoided.

On a CPU, ``torch.nn.functional.scaled_dot_product_attention`` in bfloat16 or float16 is several
times slower than in float32 (torch 2.13, AVX-512 with AVX512_BF16, one thread, forward and
backward: 62 ms against 14 ms at 48 sets x 8 heads x 65 tokens x 16 features; 3.5 ms against
0.8 ms at 8 heads x 128 tokens), and CPU autocast sends it to bfloat16. So ``sdpa`` runs the CPU
kernel in float32 (at least as accurate) and casts the output back to the inputs' dtype; on other
devices it is SDPA unchanged. Measured with ``benchmarks/vs_official.py --precision bf16``
(docs/benchmarks.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_REDUCED = (torch.bfloat16, torch.float16)


def sdpa(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """``softmax(q k^T / sqrt(d) [+ mask]) v`` for ``[..., L, d]`` inputs, as ``F.scaled_dot_product_attention``.

    Under CPU autocast or with reduced-precision CPU tensors the kernel runs in float32 and the
    output comes back in the dtype SDPA would have returned (bfloat16 under autocast).
    """
    if q.device.type == "cpu":
        dtype: torch.dtype | None = q.dtype if q.dtype == k.dtype == v.dtype else None
        if torch.is_autocast_enabled("cpu") and q.dtype in (torch.float32, *_REDUCED):
            dtype = torch.get_autocast_dtype("cpu")  # what autocast would run SDPA in
        if dtype in _REDUCED:
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask)
            return out.to(dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
