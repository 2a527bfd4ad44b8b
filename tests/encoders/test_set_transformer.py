"""Set Transformer encoder and the masked attention blocks it is built from."""

import math

import pytest
import torch

from distgen.encoders.attention import masked_attention
from distgen.encoders.set_transformer import SetTransformerEncoder

G = 6


def _enc(**kw):
    torch.manual_seed(0)
    return SetTransformerEncoder(n_genes=G, **{"dim": 5, "hidden": 8, "heads": 2, "layers": 2, "n_inducing": 3, **kw}).eval()


def test_masked_attention_matches_attention_over_real_keys_only():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, generator=g) for _ in range(3))
    mask = torch.tensor([[True, False, True], [True, True, False]])
    out = masked_attention(q, k, v, mask, heads=1)
    for b in range(2):
        kk, vv = k[b][mask[b]], v[b][mask[b]]
        w = torch.softmax(q[b] @ kk.T / math.sqrt(4), -1)
        torch.testing.assert_close(out[b], w @ vv)


def test_masked_attention_empty_set_is_zero_not_nan():
    q = k = v = torch.randn(2, 3, 4)
    mask = torch.tensor([[False, False, False], [True, True, True]])
    out = masked_attention(q, k, v, mask, heads=2)
    assert torch.isfinite(out).all()
    assert out[0].abs().max() == 0


@pytest.mark.parametrize("kw", [{}, {"n_inducing": 0}, {"n_seeds": 3}])
def test_padded_cells_with_huge_values_do_not_change_output(kw):
    enc = _enc(**kw)
    x = torch.rand(3, 7, G)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 4:] = False
    mask[2, 1:] = False
    z = enc(x, mask)
    x2 = x.clone()
    x2[~mask] = 1e6
    torch.testing.assert_close(enc(x2, mask), z)
    # and equals encoding the real cells alone, unpadded
    torch.testing.assert_close(enc(x[:1, :4], mask[:1, :4]), z[:1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"n_inducing": 0}])
def test_permutation_invariant_and_invariant_to_duplicating_the_set(kw):
    enc = _enc(**kw)
    x = torch.rand(2, 5, G)
    ones = torch.ones(2, 5, dtype=torch.bool)
    z = enc(x, ones)
    perm = torch.randperm(5)
    torch.testing.assert_close(enc(x[:, perm], ones), z, atol=1e-5, rtol=1e-5)
    # attention pooling normalises weights, so an empirical distribution and its 2x copy embed alike
    torch.testing.assert_close(enc(torch.cat([x, x], 1), torch.ones(2, 10, dtype=torch.bool)), z, atol=1e-5, rtol=1e-5)


def test_empty_set_embeds_finite():
    enc = _enc()
    z = enc(torch.rand(2, 4, G), torch.tensor([[False] * 4, [True] * 4]))
    assert torch.isfinite(z).all()


def test_frozen_has_no_trainable_parameters_but_distance_has_input_gradient():
    enc = _enc(frozen=True)
    assert not any(p.requires_grad for p in enc.parameters())
    p = torch.rand(2, 4, G, requires_grad=True)
    enc.distance(p, torch.ones(2, 4, dtype=torch.bool), torch.rand(2, 3, G), torch.ones(2, 3, dtype=torch.bool)).sum().backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="divisible"):
        SetTransformerEncoder(n_genes=G, hidden=10, heads=4)
    with pytest.raises(ValueError, match="built for 6 genes"):
        _enc()(torch.rand(1, 3, 4), torch.ones(1, 3, dtype=torch.bool))


def test_learns_to_tell_populations_apart_by_spread_not_mean():
    """Same mean, different variance: a mean embedding cannot separate them; a trained set transformer can."""
    torch.manual_seed(0)
    enc = SetTransformerEncoder(n_genes=2, dim=4, hidden=16, heads=2, layers=1, n_inducing=4)
    head = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)
    mask = torch.ones(16, 20, dtype=torch.bool)

    def batch():
        y = (torch.arange(16) % 2).float()
        x = torch.randn(16, 20, 2) * (0.3 + 1.7 * y)[:, None, None]
        return x, y

    for _ in range(150):
        x, y = batch()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(enc(x, mask))[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch()
    with torch.no_grad():
        acc = ((head(enc(x, mask))[:, 0] > 0).float() == y).float().mean()
    assert acc >= 0.9
