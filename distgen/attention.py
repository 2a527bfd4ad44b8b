"""Scaled dot-product attention: torch SDPA, with the CPU's slow reduced-precision kernel avoided.

On a CPU, ``torch.nn.functional.scaled_dot_product_attention`` in bfloat16 is several times slower
than in float32 for short sequences and narrow heads, and CPU autocast sends it to bfloat16. Forward
and backward, one thread, torch 2.13, AVX-512 with AVX512_BF16 (bf16 time / fp32 time at about equal
work): 5.0x at 32 keys x 16 features per head, 1.9x at 64 x 64, 1.6x at 128 x 128, 1.3x at 256 x 64,
1.0x at 512 x 64, 0.78x at 1,024 x 64, 0.70x at 1,024 x 128. So ``sdpa`` runs the CPU kernel in
float32 (at least as accurate) below ``BF16_MIN_KEYS`` keys or ``BF16_MIN_HEAD_DIM`` features per head
and casts the output back to the dtype SDPA would have returned; longer, wider attention and other
devices get SDPA unchanged. scDFM's reduced step under bf16 autocast: 1.31 s -> 0.77 s CPU time
(``benchmarks/vs_official.py --precision bf16``, docs/benchmarks.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_REDUCED = (torch.bfloat16, torch.float16)
BF16_MIN_KEYS = 512  #: from this many keys ...
BF16_MIN_HEAD_DIM = 64  #: ... and this many features per head, torch's bf16 CPU kernel is as fast as float32 or faster


def sdpa(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """``softmax(q k^T / sqrt(d) [+ mask]) v`` for ``[..., L, d]`` inputs, as ``F.scaled_dot_product_attention``.

    Under CPU autocast or with reduced-precision CPU tensors, short or narrow attention runs in float32
    and the output comes back in the dtype SDPA would have returned (bfloat16 under autocast).
    """
    if q.device.type == "cpu" and (k.shape[-2] < BF16_MIN_KEYS or q.shape[-1] < BF16_MIN_HEAD_DIM):
        dtype: torch.dtype | None = q.dtype if q.dtype == k.dtype == v.dtype else None
        if torch.is_autocast_enabled("cpu") and q.dtype in (torch.float32, *_REDUCED):
            dtype = torch.get_autocast_dtype("cpu")  # what autocast would run SDPA in
        if dtype in _REDUCED:
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask)
            return out.to(dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
