"""Population-level spread metrics: detect collapsed between-replicate variation."""

import torch

from distgen.evaluation.spread import pairwise_mmd2, population_mmd2, replicate_coverage, spread_ratio
from distgen.kernels.distances import mmd2
from distgen.kernels.rbf import RBFKernel


def _replicates(n_rep, shift_scale, seed, n=40, d=3):
    g = torch.Generator().manual_seed(seed)
    shifts = torch.randn(n_rep, 1, d, generator=g, dtype=torch.float64) * shift_scale
    return torch.randn(n_rep, n, d, generator=g, dtype=torch.float64) + shifts


def test_pairwise_matches_single_calls():
    a, b = _replicates(3, 1.0, 0), _replicates(2, 1.0, 1)
    k = RBFKernel(bandwidths=(1.0, 4.0))
    d = pairwise_mmd2(a, b, k)
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(d[i, j], mmd2(a[i : i + 1], b[j : j + 1], k, unbiased=False)[0].clamp_min(0))


def test_collapsed_generator_is_caught_by_spread_and_coverage():
    real = _replicates(6, 2.0, 0)
    good = _replicates(6, 2.0, 1)  # same law of replicate shifts
    collapsed = _replicates(6, 0.0, 2) + real.mean((0, 1))  # every population at the average
    k = RBFKernel()
    assert 0.6 < spread_ratio(good, real, k) < 1.6
    assert spread_ratio(collapsed, real, k) < 0.4
    assert population_mmd2(collapsed, real, k) > population_mmd2(good, real, k)
    assert replicate_coverage(real + 0.0, real, k) == 1.0
    assert replicate_coverage(collapsed, real, k) < replicate_coverage(good, real, k) or replicate_coverage(good, real, k) == 1.0
