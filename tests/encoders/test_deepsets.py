"""DeepSets encoder: pooling variants, masks, set-size behaviour."""

import pytest
import torch

from distgen.encoders.deepsets import DeepSetsEncoder, masked_max

G = 5


def _enc(pool, **kw):
    torch.manual_seed(0)
    return DeepSetsEncoder(n_genes=G, dim=4, hidden=8, depth=2, pool=pool, heads=2, **kw).eval()


def test_masked_max_ignores_padding_and_handles_empty_sets():
    h = torch.tensor([[[1.0, 5.0], [3.0, 2.0], [100.0, 100.0]], [[7.0, 7.0], [8.0, 8.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(masked_max(h, mask), torch.tensor([[3.0, 5.0], [0.0, 0.0]]))


@pytest.mark.parametrize("pool", ["mean", "max", "attention"])
def test_mask_permutation_and_duplication(pool):
    enc = _enc(pool)
    x = torch.rand(2, 6, G)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    z = enc(x, mask)
    x2 = x.clone()
    x2[~mask] = 1e6
    torch.testing.assert_close(enc(x2, mask), z)
    perm = torch.randperm(6)
    torch.testing.assert_close(enc(x[:, perm], mask[:, perm]), z, atol=1e-5, rtol=1e-5)
    # mean / max / attention pooling see the empirical distribution: a doubled set embeds alike
    torch.testing.assert_close(enc(x[1:, :3].repeat(1, 2, 1), torch.ones(1, 6, dtype=torch.bool)), z[1:], atol=1e-5, rtol=1e-5)


def test_mean_pool_is_not_max_pool():
    x = torch.rand(1, 6, G)
    ones = torch.ones(1, 6, dtype=torch.bool)
    assert not torch.allclose(_enc("mean")(x, ones), _enc("max")(x, ones))


def test_distance_zero_for_same_population_and_positive_otherwise():
    enc = _enc("mean")
    x = torch.rand(2, 6, G)
    ones = torch.ones(2, 6, dtype=torch.bool)
    d_same = enc.distance(x, ones, x.flip(1), ones)
    d_diff = enc.distance(x, ones, x + 1.0, ones)
    assert d_same.abs().max() < 1e-8 and (d_diff > 0).all()


def test_frozen_and_validation():
    assert not any(p.requires_grad for p in _enc("attention", frozen=True).parameters())
    with pytest.raises(ValueError, match="pool must be one of"):
        DeepSetsEncoder(n_genes=G, pool="sum")
