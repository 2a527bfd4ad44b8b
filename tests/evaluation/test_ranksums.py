"""The numpy and compiled (numba) rank sums give exactly the torch path's rank sums and tie sums (hence the same p-values)."""

import numpy as np
import pytest
import torch

from distgen.evaluation import ranksums
from distgen.evaluation.de import differential_expression, pooled_rank_sums
from distgen.evaluation.evaldata import Population

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not ranksums.available(), reason="numba is not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_kernel_equals_the_torch_rank_sums_with_ties_zeros_negatives_and_empty_groups(seed, backend):
    rng = np.random.default_rng(seed)
    p, g = 7, 23
    sizes = [int(rng.integers(0, 9)) if i != 3 else 0 for i in range(p)]
    codes = np.concatenate([np.full(int(rng.integers(5, 60)), -1), *[np.full(n, i) for i, n in enumerate(sizes)]])
    x = rng.poisson(rng.uniform(0.1, 3, g), (len(codes), g)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] *= -1
    x[:, 0] = 0  # a gene that is zero everywhere
    x[:, 1] = 0.5  # and one that is constant
    pop = Population.from_codes(torch.from_numpy(x), torch.from_numpy(codes), p)
    want, got = pooled_rank_sums(pop), ranksums.rank_sums(pop, backend=backend)
    assert got is not None
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_matches_a_direct_rank_sum(backend):
    from scipy.stats import rankdata

    rng = np.random.default_rng(9)
    ctrl, pert = rng.poisson(2.0, (30, 4)).astype(np.float32), rng.poisson(3.0, (12, 4)).astype(np.float32)
    codes = np.r_[np.full(30, -1), np.zeros(12, dtype=int)]
    pop = Population.from_codes(torch.from_numpy(np.concatenate([ctrl, pert])), torch.from_numpy(codes), 1)
    u, tie = ranksums.rank_sums(pop, backend=backend)
    for g in range(4):
        both = np.r_[pert[:, g], ctrl[:, g]]
        r = rankdata(both)  # average ranks
        assert u[0, g].item() == pytest.approx(r[:12].sum() - 12 * 13 / 2)
        _, t = np.unique(both, return_counts=True)
        assert tie[0, g].item() == float((t.astype(float) ** 3).sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_values_fall_back_to_torch(backend):
    x = torch.tensor([[1.0, float("nan")], [2.0, 0.0], [0.0, 1.0], [3.0, 2.0]])
    pop = Population.from_codes(x, torch.tensor([-1, -1, 0, 0]), 1)
    assert ranksums.rank_sums(pop, backend=backend) is None
    pert_nan = Population.from_codes(x, torch.tensor([0, -1, -1, 0]), 1)
    assert ranksums.rank_sums(pert_nan, backend=backend) is None
    assert differential_expression(pop).pvalue.shape == (1, 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("buffer", [2**22, 64])
def test_shared_control_table_and_gene_blocks_give_the_torch_rank_sums(monkeypatch, buffer, backend):
    """Controls prepared once and reused for two populations; uneven group sizes (sparse and dense segments); small
    blocks of genes (``_BUFFER``) give the same numbers as one block."""
    monkeypatch.setattr(ranksums, "_BUFFER", buffer)
    rng = np.random.default_rng(11)
    g = 17
    ctrl = rng.poisson(rng.uniform(0.05, 4, g), (400, g)).astype(np.float64) * rng.choice([1.0, 0.5], (400, g))
    table = ranksums.control_table(torch.from_numpy(ctrl))
    assert table is not None
    for sizes in ([3, 250, 0, 40], [1, 1, 90]):
        x = np.concatenate([rng.poisson(rng.uniform(0.05, 4, g), (n, g)).astype(np.float64) for n in sizes])
        codes = np.repeat(np.arange(len(sizes)), sizes)
        pop = Population.from_codes(torch.from_numpy(x), torch.from_numpy(codes), len(sizes))
        pop = Population(X=pop.X, offsets=pop.offsets, control=torch.from_numpy(ctrl))
        want, got = pooled_rank_sums(pop), ranksums.rank_sums(pop, table, backend=backend)
        assert got is not None
        assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def test_auto_backend_loads_numba_only_for_large_tables_or_when_loaded(monkeypatch):
    monkeypatch.setattr(ranksums, "available", lambda: True)
    monkeypatch.delitem(__import__("sys").modules, "numba", raising=False)
    assert not ranksums._use_numba(1000, "auto")
    assert ranksums._use_numba(ranksums.NUMBA_MIN_SIZE, "auto")
    assert ranksums._use_numba(1000, "numba") and not ranksums._use_numba(10**9, "numpy")
    with pytest.raises(ValueError, match="backend"):
        ranksums._use_numba(1, "fast")


needs_numba = pytest.mark.skipif(not ranksums.available(), reason="numba is not installed")


def _counts_population(seed: int) -> Population:
    """Raw counts with ~80% zeros; equal library sizes (so equal normalised values: ties among the non-zeros),
    a gene zero everywhere, a gene zero in every cell of one perturbation, an all-zero cell, an empty perturbation."""
    rng = np.random.default_rng(seed)
    p, g = 6, 19
    sizes = [int(rng.integers(1, 40)) for _ in range(p)]
    sizes[2] = 0
    n_c = int(rng.integers(20, 80))
    codes = np.concatenate([np.full(n_c, -1), *[np.full(n, i) for i, n in enumerate(sizes)]])
    x = rng.poisson(rng.uniform(0.05, 1.5, g), (len(codes), g)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0.0
    x[:, 4] = 0.0
    x[codes == 1, 7] = 0.0
    x[n_c + 1] = 0.0  # a cell without counts (library size 0)
    x[n_c + 3 : n_c + 9, :] = x[n_c + 2]  # six copies of one cell: equal values in every gene
    return Population.from_codes(torch.from_numpy(x), torch.from_numpy(codes), p)


@needs_numba
@pytest.mark.parametrize("buffer", [2**22, 64])
@pytest.mark.parametrize("seed", range(4))
def test_normalised_rank_sums_equal_the_dense_path(monkeypatch, seed, buffer):
    """From the non-zeros only: the same rank and tie sums as the torch path on the dense log1p-CPM matrix, and the
    same per-perturbation sums of the normalised values as segment_sums, bit for bit (also over small gene blocks)."""
    from distgen.evaluation.de import log1p_, normalize_total
    from distgen.evaluation.evaldata import segment_sums

    monkeypatch.setattr(ranksums, "_BUFFER", buffer)
    pop = _counts_population(seed)
    ctrl = log1p_(normalize_total(pop.control, 1e6))
    got = ranksums.normalised_rank_sums(pop, ranksums.control_table(ctrl), 1e6, backend="numba")
    assert got is not None
    lin = normalize_total(pop.X, 1e6)
    dense = Population(X=log1p_(lin.clone()), offsets=pop.offsets, control=ctrl)
    u, tie = pooled_rank_sums(dense)
    assert torch.equal(got[0], u) and torch.equal(got[1], tie)
    assert torch.equal(got[2], segment_sums(lin, pop.offsets))


@needs_numba
def test_normalised_rank_sums_give_scipy_mannwhitneyu_p_values():
    from scipy.stats import mannwhitneyu

    from distgen.evaluation.de import de_table

    pop = _counts_population(5)
    table = de_table(pop, pop.control, counts=True, min_cpm=None)
    cpm = lambda x: np.log1p(x / np.maximum(x.sum(1, keepdims=True) / 1e6, 1e-6))  # noqa: E731
    xs, cs = cpm(pop.X.numpy().astype(np.float64)), cpm(pop.control.numpy().astype(np.float64))
    for p in (0, 1, 3):
        a = xs[int(pop.offsets[p]) : int(pop.offsets[p + 1])]
        for g in (0, 7, 11):
            if np.ptp(np.r_[a[:, g], cs[:, g]]) == 0:
                assert table.pvalue[p, g].item() == 1.0
                continue
            want = mannwhitneyu(a[:, g], cs[:, g], alternative="two-sided", method="asymptotic", use_continuity=True).pvalue
            assert table.pvalue[p, g].item() == pytest.approx(want, rel=1e-9)
    assert torch.isnan(table.pvalue[2]).all()  # the perturbation without cells


@needs_numba
@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("bad", ["negative", "fraction", "nan"])
def test_non_counts_are_left_to_the_dense_path(bad):
    """Negative, fractional or non-finite values: no sparse result (the dense path decides), and de_table still answers."""
    from distgen.evaluation.de import de_table, prepare_reference

    pop = _counts_population(1)
    x = pop.X.clone()
    x[3, 5] = {"negative": -2.0, "fraction": 0.5, "nan": float("nan")}[bad]
    pop = Population(X=x, offsets=pop.offsets, control=pop.control)
    ref = prepare_reference(pop.control, counts=True)
    assert ranksums.normalised_rank_sums(pop, ref.table, 1e6, backend="numba") is None
    assert de_table(pop, ref, counts=True).pvalue.shape == (pop.n_perts, x.shape[1])


def test_normalised_rank_sums_need_the_compiled_kernel():
    pop = _counts_population(2)
    assert ranksums.normalised_rank_sums(pop, ranksums.control_table(pop.control.to(torch.float64)), 1e6, backend="numpy") is None


@needs_numba
def test_control_table_runs_are_the_same_with_both_backends():
    rng = np.random.default_rng(3)
    ctrl = rng.poisson(0.7, (60, 9)).astype(np.float64) * rng.choice([1.0, -1.0, 0.5], (60, 9))
    ctrl[:, 0] = 0.0
    ctrl[:, 1] = -1.0
    ctrl[:, 2] = rng.normal(size=60)  # no ties, no zeros
    a = ranksums.control_table(torch.from_numpy(ctrl), backend="numpy")
    b = ranksums.control_table(torch.from_numpy(ctrl), backend="numba")
    assert a is not None and b is not None
    for name in ("sorted", "tie", "zlo", "zhi"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.tie[0] == 60.0**3 and a.zlo[0] == 0 and a.zhi[0] == 60 and a.zlo[1] == a.zhi[1] == 60
