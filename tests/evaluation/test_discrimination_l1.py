"""The L1 discrimination distances (``torch.cdist`` less the excluded genes) equal the masked sum over genes they replace."""

from __future__ import annotations

import pytest
import torch

from distgen.evaluation.metrics.discrimination import effect_distances


def _masked_sum(pred, real, keep):
    """The definition: sum over the kept genes of ``p`` of ``|pred[p] - real[q]|``, one pair at a time."""
    out = torch.empty(pred.shape[0], real.shape[0], dtype=pred.dtype)
    for p in range(pred.shape[0]):
        for q in range(real.shape[0]):
            out[p, q] = (pred[p] - real[q]).abs()[keep[p]].sum()
    return out


@pytest.mark.parametrize("excluded", [0.0, 0.03, 0.5])  # a target or two per row; many (the masked broadcast)
def test_l1_distances_equal_the_masked_sum(excluded):
    g = torch.Generator().manual_seed(1)
    pred, real = torch.randn(23, 40, generator=g, dtype=torch.float64), torch.randn(19, 40, generator=g, dtype=torch.float64)
    keep = torch.rand(23, 40, generator=g) >= excluded
    keep[torch.arange(23), torch.arange(23) % 40] = False  # each perturbation's own target gene
    keep[4, :6] = False  # a combination's several atoms
    pred[2], real[3] = float("nan"), float("nan")  # undefined effects stay undefined
    real[11] = real[12]  # two equal real effects: equal distances, so a rank cannot tell them apart by rounding
    d = effect_distances(pred, real, keep, "l1")
    ref = _masked_sum(pred, real, keep)
    assert torch.equal(d.isnan(), ref.isnan())
    ok = ~ref.isnan()
    torch.testing.assert_close(d[ok], ref[ok], rtol=1e-13, atol=1e-13)
    assert torch.equal(d[:, 11].nan_to_num(-1.0), d[:, 12].nan_to_num(-1.0))


def test_l1_discrimination_ranks_are_those_of_the_definition():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(60, 30, generator=g, dtype=torch.float64)
    pred = real + 0.8 * torch.randn(60, 30, generator=g, dtype=torch.float64)
    keep = torch.ones(60, 30, dtype=torch.bool)
    keep[torch.arange(60), torch.arange(60) % 30] = False
    fast, ref = effect_distances(pred, real, keep, "l1"), _masked_sum(pred, real, keep)
    assert torch.equal((fast < fast.diagonal()[:, None]).sum(-1), (ref < ref.diagonal()[:, None]).sum(-1))
