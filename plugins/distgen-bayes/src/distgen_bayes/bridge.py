"""torch <-> JAX without copies where DLPack allows (same device, contiguous, supported dtype)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def to_jax(t: Tensor | np.ndarray, dtype: torch.dtype = torch.float32) -> Any:
    """A JAX array viewing ``t`` through DLPack (float tensors cast to ``dtype`` first).

    Falls back to a host copy when DLPack cannot share the buffer (e.g. a CUDA tensor and a
    CPU-only jaxlib).
    """
    import jax
    import jax.numpy as jnp

    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    t = t.detach()
    if t.is_floating_point():
        t = t.to(dtype)
    t = t.contiguous()
    try:
        return jax.dlpack.from_dlpack(t)
    except Exception:  # any DLPack refusal: copy through the host instead
        return jnp.asarray(t.cpu().numpy())


def to_torch(x: Any) -> Tensor:
    """A torch tensor viewing JAX array ``x`` through DLPack (host copy if that is refused)."""
    try:
        return torch.from_dlpack(x)
    except Exception:  # DLPack refused: host copy
        return torch.as_tensor(np.asarray(x))
