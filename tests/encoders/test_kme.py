"""Kernel mean embedding: exact MMD by the kernel trick, explicit features that approximate it."""

import pytest
import torch

from distgen.config import build_component
from distgen.encoders.kme import KernelMeanEmbedding
from distgen.kernels import kernels


def _sets(b=2, m=7, n=9, g=5, seed=0, shift=0.5):
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(b, m, g, generator=gen, dtype=torch.float64)
    q = torch.randn(b, n, g, generator=gen, dtype=torch.float64) + shift
    return p, q


def _ones(x):
    return torch.ones(x.shape[:2], dtype=torch.bool)


def _energy_distance(x, y):
    """2 E|x-y| - E|x-x'| - E|y-y'| (V-statistics), computed directly with cdist."""
    return 2 * torch.cdist(x, y).mean((-1, -2)) - torch.cdist(x, x).mean((-1, -2)) - torch.cdist(y, y).mean((-1, -2))


def _rbf_mmd2(x, y, s2, unbiased):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * s2))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = x.shape[-2], y.shape[-2]
    if unbiased:
        sxx = (kxx.sum((-1, -2)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
        syy = (kyy.sum((-1, -2)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))
    else:
        sxx, syy = kxx.mean((-1, -2)), kyy.mean((-1, -2))
    return sxx + syy - 2 * kxy.mean((-1, -2))


def test_default_kernel_is_energy_and_nests_in_configs():
    enc = build_component("encoders", {"name": "kme"}, n_genes=5)
    assert type(enc.kernel) is kernels.get("energy")
    enc2 = build_component("encoders", {"name": "kme", "kernel": {"name": "rbf", "scales": [0.5, 1, 2, 4]}, "unbiased": True}, n_genes=5)
    assert enc2.kernel.scales == (0.5, 1.0, 2.0, 4.0) and enc2.map == "rff"


def test_energy_distance_is_exact_biased_and_zero_for_same_set():
    p, q = _sets()
    enc = KernelMeanEmbedding(n_genes=5, kernel=kernels.build("energy"), unbiased=False)
    torch.testing.assert_close(enc.distance(p, _ones(p), q, _ones(q)), _energy_distance(p, q))
    torch.testing.assert_close(enc.distance(p, _ones(p), p, _ones(p)), torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("unbiased", [True, False])
def test_rbf_distance_matches_hand_computed_mmd(unbiased):
    p, q = _sets()
    enc = KernelMeanEmbedding(n_genes=5, kernel=kernels.build("rbf", bandwidths=[2.0]), unbiased=unbiased)
    torch.testing.assert_close(enc.distance(p, _ones(p), q, _ones(q)), _rbf_mmd2(p, q, 2.0, unbiased))


def test_padded_cells_do_not_change_the_distance():
    p, q = _sets()
    enc = KernelMeanEmbedding(n_genes=5, kernel=kernels.build("energy"), unbiased=True)
    padded = torch.cat([p, torch.full_like(p[:, :3], 50.0)], 1)
    mask = torch.cat([_ones(p), torch.zeros(2, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(enc.distance(padded, mask, q, _ones(q)), enc.distance(p, _ones(p), q, _ones(q)))


def test_unbiased_needs_two_real_cells():
    p, q = _sets()
    mask = _ones(p)
    mask[1, 1:] = False
    enc = KernelMeanEmbedding(n_genes=5, kernel=kernels.build("energy"), unbiased=True)
    with pytest.raises(ValueError, match=">= 2 real cells"):
        enc.distance(p, mask, q, _ones(q))


def test_random_fourier_features_approximate_rbf_mmd():
    p, q = _sets(m=40, n=40, shift=1.0)
    torch.manual_seed(0)
    enc = KernelMeanEmbedding(n_genes=5, kernel=kernels.build("rbf", bandwidths=[4.0]), features=8192, seed=1).double()
    enc.calibrate(p, _ones(p))
    approx = (enc(p, _ones(p)) - enc(q, _ones(q))).pow(2).sum(-1)
    exact = _rbf_mmd2(p, q, 4.0, unbiased=False)
    assert torch.allclose(approx, exact, rtol=0.15, atol=5e-3), (approx, exact)


def test_nystroem_features_are_exact_when_landmarks_span_the_data():
    p, q = _sets(m=6, n=6)
    both = torch.cat([p.flatten(0, 1), q.flatten(0, 1)])[None]  # 24 cells
    enc = KernelMeanEmbedding(n_genes=5, kernel=kernels.build("energy"), features=24, unbiased=False).double()
    enc.calibrate(both, _ones(both))
    emb = (enc(p, _ones(p)) - enc(q, _ones(q))).pow(2).sum(-1)
    torch.testing.assert_close(emb, _energy_distance(p, q), rtol=1e-6, atol=1e-8)


def test_calibration_is_saved_with_the_weights():
    p, _ = _sets()
    enc = KernelMeanEmbedding(n_genes=5, features=8).double()
    z = enc(p, _ones(p))
    other = KernelMeanEmbedding(n_genes=5, features=8).double()
    other.load_state_dict(enc.state_dict())
    torch.testing.assert_close(other(p, _ones(p)), z)


def test_bad_parameters_name_the_key():
    with pytest.raises(ValueError, match="feature_map"):
        KernelMeanEmbedding(n_genes=5, feature_map="fourier")
    with pytest.raises(ValueError, match="rff"):
        KernelMeanEmbedding(n_genes=5, kernel=kernels.build("energy"), feature_map="rff")


def test_the_default_kernel_is_named_in_the_resolved_config():
    """kernel's default was None (energy inside the constructor), so a run's config.yaml read `kernel: null` and named no
    kernel; `population_encoder.kernel.name=energy` then read as a change that changed nothing (component-matrix walk,
    2026-12-06). The default is now the energy kernel itself; a saved `kernel: null` still builds it."""
    from distgen.config import resolve_node

    assert resolve_node("encoders", {"name": "kme"})["kernel"] == {"name": "energy", "exponent": 1.0}
    for node in ({"name": "kme"}, {"name": "kme", "kernel": None}, {"name": "kme", "kernel": "energy"}):
        assert type(build_component("encoders", node, n_genes=3).kernel).__name__ == "EnergyKernel"
    assert type(KernelMeanEmbedding(3, kernel="rbf").kernel).__name__ == "RBFKernel"
