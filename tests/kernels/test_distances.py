"""MMD^2 and the energy distance against brute-force references, masks, chunking, gradients."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from distgen.kernels import energy_distance, kernels, mmd2
from distgen.kernels.distances import gram_sums, kernel_sum
from distgen.kernels.energy import EnergyKernel
from distgen.kernels.linear import LinearKernel
from distgen.kernels.rbf import RBFKernel


def _sets(seed=0, b=2, n=9, k=7, d=3, shift=0.7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, d, generator=g, dtype=torch.float64), torch.randn(b, k, d, generator=g, dtype=torch.float64) + shift


def _mmd_ref(x, y, kfun, unbiased):
    kxx, kyy, kxy = kfun(x, x), kfun(y, y), kfun(x, y)
    n, m = len(x), len(y)
    if unbiased:
        exx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        eyy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    else:
        exx, eyy = kxx.mean(), kyy.mean()
    return exx + eyy - 2 * kxy.mean()


@pytest.mark.parametrize("unbiased", [True, False])
def test_rbf_mmd_matches_numpy_with_fixed_bandwidths(unbiased):
    x, y = _sets()
    s2 = [0.5, 2.0]
    got = mmd2(x, y, RBFKernel(bandwidths=s2), unbiased=unbiased)
    for b in range(2):
        def kfun(a, c):
            d = cdist(a, c, "sqeuclidean")
            return np.mean([np.exp(-d / (2 * s)) for s in s2], axis=0)
        assert got[b].item() == pytest.approx(_mmd_ref(x[b].numpy(), y[b].numpy(), kfun, unbiased), rel=1e-9)


def test_median_heuristic_is_taken_from_the_real_set():
    x, y = _sets()
    got = mmd2(x, y, RBFKernel(scales=(0.5, 1.0, 2.0, 4.0)))
    for b in range(2):
        yy = cdist(y[b], y[b], "sqeuclidean")
        med = np.median(yy[~np.eye(len(yy), dtype=bool)])
        def kfun(a, c, med=med):
            d = cdist(a, c, "sqeuclidean")
            return np.mean([np.exp(-d / (2 * s * med)) for s in (0.5, 1, 2, 4)], axis=0)
        ref = _mmd_ref(x[b].numpy(), y[b].numpy(), kfun, True)
        # torch.nanmedian takes the lower of the two middle values for an even count
        assert got[b].item() == pytest.approx(ref, rel=0.05)


def test_energy_distance_is_cell_eval_formula():
    x, y = _sets()
    got = energy_distance(x, y)
    for b in range(2):
        a, c = x[b].numpy(), y[b].numpy()
        ref = 2 * cdist(a, c).mean() - cdist(a, a).mean() - cdist(c, c).mean()
        assert got[b].item() == pytest.approx(ref, rel=1e-9)
    sq = energy_distance(x, y, metric="sqeuclidean")
    torch.testing.assert_close(sq, 2 * (x.mean(1) - y.mean(1)).pow(2).sum(-1))
    torch.testing.assert_close(energy_distance(x, y, squared=False), got.sqrt())


def test_linear_kernel_biased_mmd_is_squared_mean_difference():
    x, y = _sets()
    torch.testing.assert_close(mmd2(x, y, LinearKernel(), unbiased=False), (x.mean(1) - y.mean(1)).pow(2).sum(-1))


@pytest.mark.parametrize("name", ["rbf", "energy", "imq", "linear"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_masks_equal_truncation_and_chunking_is_exact(name, unbiased):
    x, y = _sets(n=11, k=8)
    xm = torch.ones(2, 11, dtype=torch.bool)
    xm[1, 6:] = False
    ym = torch.ones(2, 8, dtype=torch.bool)
    ym[0, 5:] = False
    x_garbage = x.clone()
    x_garbage[~xm] = float("nan")
    kern = kernels.get(name)()
    full = mmd2(x_garbage, y, kern, xm, ym, unbiased=unbiased)
    chunked = mmd2(x_garbage, y, kern, xm, ym, unbiased=unbiased, chunk_size=3)
    torch.testing.assert_close(full, chunked)
    for b in range(2):
        want = mmd2(x[b : b + 1, xm[b]], y[b : b + 1, ym[b]], kern, unbiased=unbiased)
        torch.testing.assert_close(full[b : b + 1], want)


def test_gradient_finite_and_zero_on_padding_through_chunks():
    x, y = _sets(n=12, k=10)
    x = x.clone().requires_grad_(True)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 9:] = False
    for kern in (RBFKernel(), EnergyKernel()):
        x.grad = None
        mmd2(x, y, kern, mask, chunk_size=4).sum().backward()
        assert torch.isfinite(x.grad).all()
        assert x.grad[~mask].abs().max() == 0
        g_chunk = x.grad.clone()
        x.grad = None
        mmd2(x, y, kern, mask).sum().backward()
        torch.testing.assert_close(g_chunk, x.grad)


def test_energy_kernel_grad_at_identical_points_is_finite():
    x = torch.zeros(1, 4, 3, requires_grad=True)
    energy_distance(x, x.detach()).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_unbiased_needs_two_cells_and_bad_shapes_are_named():
    x, y = _sets(n=1)
    assert torch.isnan(mmd2(x, y, RBFKernel(), unbiased=True)).all()
    assert torch.isfinite(mmd2(x, y, RBFKernel(), unbiased=False)).all()
    with pytest.raises(ValueError, match=r"\[B, n, D\]"):
        mmd2(x[0], y[0], RBFKernel())
    with pytest.raises(ValueError, match="x_mask"):
        mmd2(x, y, RBFKernel(), x_mask=torch.ones(3, 3, dtype=torch.bool))


def test_kernel_describe_records_parameters():
    assert RBFKernel().describe() == {"kernel": "RBFKernel", "scales": (0.5, 1.0, 2.0, 4.0), "bandwidths": None}
    assert "_sigma2" not in RBFKernel().bind(torch.randn(1, 5, 2)).describe()


def test_a_point_is_at_distance_zero_from_itself_in_float32():
    # Norms computed apart from the matmul round differently from its diagonal; in float32 over
    # 2,000 genes that left sqrt(~1e-3) ~ 0.03 on the diagonal of the energy kernel.
    from distgen.kernels.pairwise import sq_dists

    x = torch.randn(3, 40, 2000, generator=torch.Generator().manual_seed(0)) * 3 + 5
    assert torch.diagonal(sq_dists(x, x), dim1=-2, dim2=-1).abs().max() == 0
    w = torch.ones(3, 40)
    for chunk in (None, 7):  # one block, and row blocks against the whole set
        _, diagonal = kernel_sum(EnergyKernel(), x, x, w, w, diagonal=True, chunk_size=chunk)
        assert diagonal.abs().max() == 0
    _, dxx, _, dyy, _ = gram_sums(EnergyKernel(), x, x[:, :9], w, w[:, :9], diagonal=True)
    assert dxx.abs().max() == 0 and dyy.abs().max() == 0


@pytest.mark.parametrize("chunk", [None, 5])
def test_float32_energy_distance_is_as_accurate_as_float32_allows(chunk):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 32, 2000, generator=g)
    y = torch.randn(4, 32, 2000, generator=g) + 0.3
    ref = energy_distance(x.double(), y.double())
    got = energy_distance(x, y, chunk_size=chunk)
    # ~1e-6 relative with consistent norms; the diagonal noise biased it by ~1e-4
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=0)


@pytest.mark.parametrize("name", ["rbf", "energy", "imq", "linear"])
def test_one_block_and_row_blocks_give_the_same_value_and_gradient(name):
    x, y = _sets(n=10, k=9)
    x = x.clone().requires_grad_(True)
    kern = kernels.get(name)()
    one = mmd2(x, y, kern, unbiased=False)
    (g_one,) = torch.autograd.grad(one.sum(), x)
    rows = mmd2(x, y, kern, unbiased=False, chunk_size=4)
    (g_rows,) = torch.autograd.grad(rows.sum(), x)
    torch.testing.assert_close(one, rows, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_one, g_rows, rtol=1e-10, atol=1e-12)


def test_from_gram_needs_bound_data_dependent_parameters():
    x, y = _sets()
    g, xs, ys = x @ y.transpose(-1, -2), (x * x).sum(-1), (y * y).sum(-1)
    with pytest.raises(ValueError, match="bind"):
        RBFKernel().from_gram(g, xs, ys)
    with pytest.raises(ValueError, match="bind"):
        kernels.get("imq")().from_gram(g, xs, ys)
    fixed = RBFKernel(bandwidths=[1.0, 3.0])
    torch.testing.assert_close(fixed.from_gram(g, xs, ys), fixed.gram(x, y))


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_euclidean_sum_equals_scipy_in_blocks_of_any_size(block):
    from distgen.kernels.pairwise import euclidean_sum

    g = torch.Generator().manual_seed(3)
    x = torch.randn(53, 9, generator=g, dtype=torch.float64)
    y = torch.randn(31, 9, generator=g, dtype=torch.float64) + 0.5
    xn, yn = x.numpy(), y.numpy()
    assert float(euclidean_sum(x, y, block=block)) == pytest.approx(cdist(xn, yn).sum(), rel=1e-12)
    # within-set: every ordered pair (each i != j twice) and the zero diagonal, from the upper blocks only
    assert float(euclidean_sum(x, block=block)) == pytest.approx(cdist(xn, xn).sum(), rel=1e-12)


def test_euclidean_sum_self_distance_is_exactly_zero_and_shapes_are_checked():
    from distgen.kernels.pairwise import euclidean_sum

    x = torch.full((1, 2000), 7.3, dtype=torch.float32)  # |x|^2 - 2 x.x + |x|^2 rounds to non-zero in float32
    assert float(euclidean_sum(x)) == 0.0
    x = x.expand(5, 2000).contiguous().double()  # identical rows: round-off clamped (no NaN), ~1e-7 |x| a pair in float64
    assert 0.0 <= float(euclidean_sum(x)) < 20 * 1e-6 * float(x[0].norm())
    with pytest.raises(ValueError, match=r"\[n, D\] and \[m, D\]"):
        euclidean_sum(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="block"):
        euclidean_sum(torch.zeros(3, 4), block=0)


def test_euclidean_sum_with_the_caller_s_squared_norms_gives_the_same_bits():
    """The E-distances pass each set's squared norms to its two sums (computed once): the very numbers the sums computed
    themselves, so every sum is bit for bit the one without them; norms of another size are refused, not broadcast."""
    from distgen.kernels.distances import euclidean_edistance
    from distgen.kernels.pairwise import euclidean_sum, sq_norms

    g = torch.Generator().manual_seed(5)
    x = torch.rand(301, 40, generator=g, dtype=torch.float64) * (torch.rand(301, 40, generator=g) < 0.3)
    y = torch.rand(517, 40, generator=g, dtype=torch.float64) * (torch.rand(517, 40, generator=g) < 0.3)
    x_sq, y_sq = sq_norms(x), sq_norms(y)
    assert euclidean_sum(x, y, x_sq=x_sq, y_sq=y_sq).item() == euclidean_sum(x, y).item()
    assert euclidean_sum(x, x_sq=x_sq).item() == euclidean_sum(x).item()
    n, m = x.shape[0], y.shape[0]
    by_hand = 2 * euclidean_sum(x, y) / (n * m) - euclidean_sum(x) / n**2 - euclidean_sum(y) / m**2
    assert euclidean_edistance(x, y).item() == by_hand.item()
    with pytest.raises(ValueError, match="squared norms of shape"):
        euclidean_sum(x, y, y_sq=x_sq)
    with pytest.raises(ValueError, match="no matrix"):
        euclidean_sum(x, y_sq=y_sq)


@pytest.mark.parametrize("which", ["x_sq", "y_sq", "self"])
@pytest.mark.parametrize("other", [torch.float32, torch.float16, torch.bfloat16, "meta"])
def test_euclidean_sum_refuses_squared_norms_of_another_dtype_or_device(which, other):
    """Only the norms' shape was checked. float16 / bfloat16 (or float32) norms of float64 matrices were
    summed without a word in the lower precision (x_sq: the sum moved in the 4th digit), y_sq of another dtype raised
    addmm's bare RuntimeError, and norms on another device the same; now a ValueError names both and the fix."""
    from distgen.kernels.pairwise import euclidean_sum, sq_norms

    g = torch.Generator().manual_seed(3)
    x = torch.rand(20, 5, generator=g, dtype=torch.float64)
    y = torch.rand(15, 5, generator=g, dtype=torch.float64)
    of = y if which == "y_sq" else x
    norms = sq_norms(of).to(device="meta") if other == "meta" else sq_norms(of).to(other)
    kw = {"y_sq": norms} if which == "y_sq" else {"x_sq": norms}
    with pytest.raises(ValueError, match=r"squared norms .*(torch\.float64|cpu).*sq_norms"):
        euclidean_sum(x, None if which == "self" else y, **kw)


@pytest.mark.parametrize("unbiased", [False, True])
def test_sq_energy_distance_closed_form_equals_the_pairwise_definition(unbiased):
    from distgen.kernels.distances import sq_energy_distance

    rng = np.random.default_rng(11)
    x, y = rng.normal(0, 1, (23, 6)), rng.normal(0.3, 1.5, (17, 6)) + 2.0  # offset: cancellation in the pairwise form
    d = lambda a, b: cdist(a, b, "sqeuclidean")  # noqa: E731
    within = lambda a: d(a, a).sum() / (len(a) * (len(a) - 1) if unbiased else len(a) ** 2)  # noqa: E731
    want = 2 * d(x, y).mean() - within(x) - within(y)
    got = sq_energy_distance(torch.from_numpy(x), torch.from_numpy(y), unbiased=unbiased)
    assert float(got) == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match="at least"):
        sq_energy_distance(torch.zeros(1, 6), torch.zeros(3, 6), unbiased=True)
    with pytest.raises(ValueError, match=r"\[n, D\] and \[m, D\]"):
        sq_energy_distance(torch.zeros(2, 6), torch.zeros(3, 5))


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_kernel_scales_must_be_finite_and_positive(bad):
    """An infinite bandwidth (``bandwidths: [.inf]`` passes the config's finiteness rule, whose default is null) made
    k = 1 everywhere: the MMD term was 0 and trained nothing, silently. Now refused like 0 and negatives."""
    from distgen.kernels.imq import IMQKernel
    from distgen.kernels.rbf import RBFKernel

    for make in (lambda: RBFKernel(bandwidths=[1.0, bad]), lambda: RBFKernel(scales=[bad]), lambda: IMQKernel(c2=[bad]),
                 lambda: IMQKernel(scales=[bad]), lambda: IMQKernel(beta=bad)):
        with pytest.raises(ValueError, match="finite and > 0"):
            make()
