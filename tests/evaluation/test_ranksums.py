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
