"""The plugin passes distgen's kernel contract and is a Laplacian kernel (run with the plugin installed)."""

import torch

import distgen
from distgen.config import build_component
from distgen.testing import KernelContract


class TestLaplacianContract(KernelContract):
    names = ["laplacian"]


def test_discovered_through_its_entry_point():
    info = distgen.get_registry("kernels").info("laplacian")
    assert (info.provider, info.version) == ("my-distgen-kernel", "0.1.0")
    assert info.capabilities.conditionally_pd is False  # positive definite outright


def test_values_against_the_formula():
    k = build_component("kernels", {"name": "laplacian", "sigma": 2.0})
    x = torch.tensor([[[0.0, 0.0], [1.0, -2.0]]])
    y = torch.tensor([[[0.0, 1.0]]])
    # |x0 - y|_1 = 1, |x1 - y|_1 = 1 + 3 = 4
    torch.testing.assert_close(k.gram(x, y), torch.exp(-torch.tensor([[[0.5], [2.0]]])))


def test_median_heuristic_is_scale_equivariant():
    x = torch.randn(1, 20, 5, generator=torch.Generator().manual_seed(0))
    k = build_component("kernels", {"name": "laplacian"})
    torch.testing.assert_close(k.gram(3 * x, 3 * x), k.gram(x, x), atol=1e-6, rtol=1e-5)


def test_usable_inside_an_encoder_by_name():
    enc = build_component("encoders", {"name": "kme", "kernel": {"name": "laplacian"}}, n_genes=5)
    x = torch.randn(1, 30, 5, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(1, 30, dtype=torch.bool)
    near, far = enc.distance(x + 0.1, mask, x, mask), enc.distance(x + 2.0, mask, x, mask)
    assert float(far) > float(near)

