"""Kernels and distances on CUDA give the CPU numbers (skipped without a GPU)."""

import pytest
import torch

from distgen.kernels import energy_distance, kernels, mmd2


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["rbf", "energy", "imq", "linear"])
def test_cuda_matches_cpu(name):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 300, 50, generator=g), torch.randn(3, 200, 50, generator=g) + 0.3
    k = kernels.get(name)()
    cpu = mmd2(x, y, k, chunk_size=64)
    gpu = mmd2(x.cuda(), y.cuda(), k, chunk_size=64).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(energy_distance(x.cuda(), y.cuda()).cpu(), energy_distance(x, y), atol=1e-4, rtol=1e-4)
