"""Hypothesis properties of the distances: floor on identical sets, symmetry, permutation invariance, sign."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from distgen.kernels import energy_distance, kernels, mmd2

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def two_sets(draw):
    n, k, d = draw(st.integers(2, 7)), draw(st.integers(2, 7)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.1, 10.0, allow_subnormal=False))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, d, generator=g, dtype=torch.float64) * scale
    y = torch.randn(1, k, d, generator=g, dtype=torch.float64) * scale + draw(st.floats(-3, 3, allow_subnormal=False))
    return x, y


KERNELS = st.sampled_from(["rbf", "energy", "imq", "linear"])


def _fixed(name):
    # symmetry needs hyper-parameters that do not depend on which set is "real"
    return {"rbf": {"bandwidths": (0.5, 2.0)}, "imq": {"c2": (1.0,)}}.get(name, {})


@SETTINGS
@given(two_sets(), KERNELS)
def test_biased_mmd_is_zero_on_identical_sets_and_nonnegative(xy, name):
    x, y = xy
    k = kernels.get(name)(**_fixed(name))
    torch.testing.assert_close(mmd2(x, x.clone(), k, unbiased=False), torch.zeros(1, dtype=torch.float64), atol=1e-9, rtol=0)
    assert mmd2(x, y, k, unbiased=False).item() >= -1e-9


@SETTINGS
@given(two_sets(), KERNELS)
def test_symmetric_and_permutation_invariant(xy, name):
    x, y = xy
    k = kernels.get(name)(**_fixed(name))
    for unbiased in (True, False):
        a = mmd2(x, y, k, unbiased=unbiased)
        torch.testing.assert_close(a, mmd2(y, x, k, unbiased=unbiased), atol=1e-9, rtol=1e-9)
        px, py = torch.randperm(x.shape[1]), torch.randperm(y.shape[1])
        torch.testing.assert_close(a, mmd2(x[:, px], y[:, py], k, unbiased=unbiased), atol=1e-9, rtol=1e-9)


@SETTINGS
@given(two_sets())
def test_unbiased_mmd_floor_on_identical_populations(xy):
    """The U-statistic of a set against itself is its estimator floor: -(2/n) (mean off-diagonal k - 1) <= 0 for RBF."""
    x, _ = xy
    v = mmd2(x, x.clone(), kernels.get("rbf")(bandwidths=(1.0,)), unbiased=True).item()
    assert v <= 1e-12


@SETTINGS
@given(two_sets(), st.sampled_from(["euclidean", "sqeuclidean"]))
def test_energy_distance_zero_symmetric_nonnegative(xy, metric):
    x, y = xy
    assert abs(energy_distance(x, x.clone(), metric=metric).item()) < 1e-9
    e = energy_distance(x, y, metric=metric)
    assert e.item() >= -1e-9
    torch.testing.assert_close(e, energy_distance(y, x, metric=metric), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(energy_distance(x, y, metric=metric, squared=False) ** 2, e.clamp_min(0), atol=1e-9, rtol=1e-7)
