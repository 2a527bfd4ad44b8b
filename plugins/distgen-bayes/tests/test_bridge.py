"""torch <-> JAX through DLPack shares buffers instead of copying."""

from __future__ import annotations

import numpy as np
import torch

from distgen_bayes.bridge import to_jax, to_torch


def test_round_trip_shares_memory() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    j = to_jax(t)
    assert j.shape == (3, 4)
    np.testing.assert_array_equal(np.asarray(j), t.numpy())
    assert j.unsafe_buffer_pointer() == t.data_ptr()  # no copy into JAX
    back = to_torch(j)
    assert back.data_ptr() == j.unsafe_buffer_pointer()  # no copy back
    torch.testing.assert_close(back, t)


def test_casts_float64_and_keeps_integers() -> None:
    j = to_jax(torch.ones(2, dtype=torch.float64))
    assert str(j.dtype) == "float32"
    k = to_jax(np.array([1, 2], dtype=np.int32))
    assert str(k.dtype) == "int32" and np.asarray(k).tolist() == [1, 2]
