"""The example plugin passes distgen's encoder contract and behaves like a sliced W2."""

import torch

import distgen
from distgen.config import build_component
from distgen.testing import EncoderContract, tiny_info


class TestSlicedWassersteinContract(EncoderContract):
    names = ["sliced_wasserstein"]


def test_discovered_through_entry_point():
    info = distgen.get_registry("encoders").info("sliced_wasserstein")
    assert info.provider == "distgen-example"
    assert info.version == "0.1.0"


def test_built_from_config_by_name_alone():
    enc = build_component("encoders", {"name": "sliced_wasserstein", "n_projections": 4, "n_quantiles": 3}, n_genes=12)
    assert enc.dim == 12


def test_distance_matches_1d_wasserstein_of_shifted_populations():
    # In 1-D every projection is +-1; shifting a population by c gives W2^2 = c^2 exactly.
    enc = build_component("encoders", {"name": "sliced_wasserstein", "n_projections": 3, "n_quantiles": 50}, n_genes=1)
    x = torch.randn(1, 200, 1, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, 200, dtype=torch.bool)
    d = enc.distance(x + 0.7, mask, x, mask)
    torch.testing.assert_close(d, torch.tensor([0.49]), atol=1e-4, rtol=1e-4)


def test_distance_grows_with_separation():
    enc = build_component("encoders", {"name": "sliced_wasserstein"}, n_genes=len(tiny_info().genes))
    x = torch.randn(1, 64, 12, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(1, 64, dtype=torch.bool)
    ds = [float(enc.distance(x + s, mask, x, mask)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert ds[0] < 1e-10 and ds[1] < ds[2] < ds[3]
