"""Exact and Sinkhorn minibatch OT couplings (POT)."""

import itertools

import numpy as np
import pytest
import torch

from distgen.config import build_component
from distgen.couplings.exact_ot import ExactOTCoupling
from distgen.couplings.sinkhorn import SinkhornCoupling, sample_permutation


def _cost(x0, x1):
    return (x1 - x0).pow(2).sum(-1).sum(-1)


def test_exact_matches_brute_force_optimum():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(1, 6, 3, generator=g), torch.randn(1, 6, 3, generator=g)
    out = ExactOTCoupling().pair(x0, x1, torch.ones(1, 6, dtype=torch.bool))
    c = ((x1[0, :, None] - x0[0, None]) ** 2).sum(-1).numpy()  # c[i, j]: target i, source j
    best = min(c[np.arange(6), list(p)].sum() for p in itertools.permutations(range(6)))
    assert float(_cost(out, x1)) == pytest.approx(best, rel=1e-6)


def test_exact_recovers_a_shuffled_copy():
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(2, 8, 4, generator=g)
    x0 = x1[:, torch.randperm(8, generator=g)]
    out = ExactOTCoupling().pair(x0, x1, torch.ones(2, 8, dtype=torch.bool))
    torch.testing.assert_close(out, x1)


def test_masked_cells_stay_and_do_not_take_part():
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(1, 6, 2, generator=g)
    x0 = torch.randn(1, 6, 2, generator=g)
    mask = torch.tensor([[True, True, True, True, False, False]])
    for cp in (ExactOTCoupling(), SinkhornCoupling(reg=0.01)):
        out = cp.pair(x0, x1, mask)
        torch.testing.assert_close(out[0, 4:], x0[0, 4:])
        assert sorted(out[0, :4, 0].tolist()) == sorted(x0[0, :4, 0].tolist())


def test_sinkhorn_small_reg_is_near_exact_and_beats_independent():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(4, 16, 5, generator=g), torch.randn(4, 16, 5, generator=g)
    mask = torch.ones(4, 16, dtype=torch.bool)
    exact = float(_cost(ExactOTCoupling().pair(x0, x1, mask), x1).sum())
    torch.manual_seed(0)
    sk = float(_cost(SinkhornCoupling(reg=0.01, num_itermax=5000).pair(x0, x1, mask), x1).sum())
    indep = float(_cost(x0, x1).sum())
    assert exact <= sk + 1e-6
    assert sk < exact * 1.15
    assert exact < 0.8 * indep


def test_sinkhorn_is_seeded_and_random_for_large_reg():
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(1, 12, 3, generator=g), torch.randn(1, 12, 3, generator=g)
    mask = torch.ones(1, 12, dtype=torch.bool)
    cp = SinkhornCoupling(reg=10.0)
    torch.manual_seed(5)
    a = cp.pair(x0, x1, mask)
    torch.manual_seed(5)
    b = cp.pair(x0, x1, mask)
    torch.manual_seed(6)
    c = cp.pair(x0, x1, mask)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_sample_permutation_of_a_permutation_plan():
    perm = np.array([2, 0, 3, 1])
    plan = np.zeros((4, 4))
    plan[np.arange(4), perm] = 0.25
    assert sample_permutation(plan, np.random.default_rng(0)).tolist() == perm.tolist()


def test_built_by_name_with_validation():
    assert isinstance(build_component("couplings", {"name": "exact_ot"}), ExactOTCoupling)
    assert build_component("couplings", {"name": "sinkhorn", "reg": 0.1}).reg == 0.1
    with pytest.raises(ValueError, match="reg"):
        SinkhornCoupling(reg=0.0)
