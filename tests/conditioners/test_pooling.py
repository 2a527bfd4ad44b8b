"""Pooling over combinations of any arity."""

import pytest
import torch

from distgen.conditioners.pooling import SlotPool
from distgen.types import PAD


def test_sum_and_mean_over_real_slots():
    emb = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    ids = torch.tensor([[0, 1, PAD]])
    torch.testing.assert_close(SlotPool(2, "sum")(emb, ids), torch.tensor([[4.0, 6.0]]))
    torch.testing.assert_close(SlotPool(2, "mean")(emb, ids), torch.tensor([[2.0, 3.0]]))


def test_attention_pool_any_arity_permutation_invariant_padding_blind():
    torch.manual_seed(0)
    pool = SlotPool(4, "attention", heads=2).eval()
    emb = torch.randn(3, 4, 4)
    ids = torch.tensor([[0, 1, 2, PAD], [5, PAD, PAD, PAD], [PAD, PAD, PAD, PAD]])
    out = pool(emb, ids)
    assert torch.isfinite(out).all()
    assert out[2].abs().max() == 0, "control (no atoms) pools to zero"
    perm = torch.tensor([2, 0, 1, 3])
    torch.testing.assert_close(pool(emb[:, perm], ids[:, perm]), out, atol=1e-5, rtol=1e-5)
    emb2 = emb.clone()
    emb2[ids < 0] = 1e4
    torch.testing.assert_close(pool(emb2, ids), out)
    # a triple is not the sum of its parts: attention models interactions
    assert not torch.allclose(out[0], sum(pool(emb[:1, i : i + 1], ids[:1, i : i + 1])[0] for i in range(3)))


def test_bad_pool():
    with pytest.raises(ValueError, match="pool must be one of"):
        SlotPool(2, "max")
