"""benchmarks/edistance_floor.py: the pairs it counts are the products ``from_control`` computes, its float64 E-distances
are cell-eval 0.8.2's, and its float32 error bound holds where float32 products move the E-distance most."""

from __future__ import annotations

import torch


def test_pair_counts_count_each_cross_pair_and_the_within_blocks_on_and_above_the_diagonal():
    from benchmarks.edistance_floor import pair_counts

    # 2 cells against 3 controls: 6; the set's one 2 x 2 block: 4; the control's one 3 x 3 block: 9
    assert pair_counts(3, [2]) == 6 + 4 + 9
    # 5 rows in blocks of 2: blocks of 2, 2, 1 rows; on and above the diagonal 2*2 + 2*2 + 2*1 + 2*2 + 2*1 + 1*1 = 17
    assert pair_counts(1, [5], block=2) == 5 + 17 + 1


def _e_distance(x: torch.Tensor, c: torch.Tensor) -> float:
    """cell-eval 0.8.2's E-distance from differences of the rows (no expansion of ``|x - c|^2``: no cancellation)."""
    def mean_dist(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a[:, None] - b[None]).norm(dim=-1).mean())
    return 2 * mean_dist(x, c) - mean_dist(x, x) - mean_dist(c, c)


def test_the_float64_e_distances_are_exact_and_the_bound_covers_the_float32_change():
    from benchmarks.edistance_floor import float32_check

    g = torch.Generator().manual_seed(3)

    def cells(n: int) -> torch.Tensor:  # 1,000 plus multiples of 2^-20 in [-1, 1): centred on 1,000, exact in float32
        return 1e3 + torch.randint(-(2**20), 2**20, (n, 50), generator=g).to(torch.float64) / 2**20

    half = cells(20)
    control = torch.cat([half, 2e3 - half])  # mean exactly 1,000: the bound is the products' alone (no rounding to float32)
    sets = [cells(n) + 0.25 * k for k, n in enumerate((7, 30))]
    rows = float32_check(control, sets)
    for (e64, e32, bound), x in zip(rows, sets):
        want = _e_distance(x, control)
        assert abs(e64 - want) <= 1e-9 * abs(want)
        assert e32 != e64 and abs(e32 - e64) <= bound


def _one_gene(v: float) -> torch.Tensor:
    return torch.tensor([[v]], dtype=torch.float64)


def test_the_float32_bound_is_attained_where_a_product_rounds_a_tie_and_the_true_distance_is_zero():
    from benchmarks.edistance_floor import _sums32

    # a = b = 1 + 2^-12 (exact in float32): a.b = 1 + 2^-11 + 2^-24 lies halfway between two float32 numbers and rounds
    # to even, 1 + 2^-11 (an error of 2^-24 = u |a| |b| / (1 + 2^-11)); the float64 norms are exact, so the squared distance
    # comes out 2 * 2^-24 = 2^-23 instead of 0 and the distance 2^-11.5 instead of 0. The bound's sqrt(2 gamma_1 |a| |b|)
    # is that change to 1 part in 4,000: a bound 2x too small or too large fails here.
    s32, s64, bound = _sums32(_one_gene(1 + 2**-12), _one_gene(1 + 2**-12), False)
    assert s64 == 0.0 and s32 == 2**-11.5
    assert 1.0 <= bound / (s32 - s64) <= 1.001


def test_the_float32_bound_of_a_far_pair_is_twice_the_first_order_change():
    from benchmarks.edistance_floor import _sums32

    # a = 1 + 2^-12, b = -a: the same tie (a.b rounds to -(1 + 2^-11)), the squared distance 4 (1 + 2^-12)^2 comes out
    # 2^-23 low and the distance, 2 + 2^-11, by 2^-23 / (2 * 2) = 2^-25 (first order); the bound's eps / d is 2^-24
    s32, s64, bound = _sums32(_one_gene(1 + 2**-12), _one_gene(-(1 + 2**-12)), False)
    assert s64 == 2 + 2**-11
    assert abs(abs(s64 - s32) / 2**-25 - 1) < 1e-3
    assert 1.99 <= bound / abs(s64 - s32) <= 2.01


def test_the_float32_bound_counts_the_rounding_of_the_cells_to_float32_in_full():
    from benchmarks.edistance_floor import _sums32

    # 1 + 2^-30 rounds to 1 in float32 and b = 0 makes every product exact (the products' term is 0): the distance
    # 1 + 2^-30 comes out 1, a change of exactly the rounding 2^-30, which the bound states exactly
    s32, s64, bound = _sums32(_one_gene(1 + 2**-30), _one_gene(0.0), False)
    assert (s64, s32) == (1 + 2**-30, 1.0)
    assert bound == 2**-30


def test_a_work_folder_without_the_pair_files_and_no_shared_data_is_refused_with_the_flag_to_pass(tmp_path):
    import pytest

    from benchmarks.eval_speed_ce2 import pair_files

    with pytest.raises(SystemExit, match="lacks the kang pair files: pass --shared-data"):
        pair_files("kang", None, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_least_pairs_count_each_distinct_pair_once_and_no_self_pair():
    from benchmarks.edistance_floor import least_pairs, pair_counts

    # 2 cells against 3 controls: 6; the set's one distinct pair: 1; the control's three: 3
    assert least_pairs(3, [2]) == 6 + 1 + 3
    # 5 cells in blocks of 2 compute 17 pairs (above) where 10 distinct ones exist: 5 * 4 / 2
    assert least_pairs(1, [5]) == 5 + 10 + 0
    assert pair_counts(1, [5], block=2) - least_pairs(1, [5]) == (17 + 1) - 10


def test_sparse_check_counts_the_multiply_adds_a_sparse_product_makes_and_every_variant_gives_the_dense_products(tmp_path):
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from benchmarks.edistance_floor import sparse_check

    # genes 0..3; perturbed cells hold gene 0 twice and gene 1 once, the controls gene 0 three times and gene 1 once:
    # a sparse product multiplies 2 * 3 + 1 * 1 = 7 pairs of non-zeros of the 2 * 3 * 4 = 24 a dense one does
    x = np.array([[0, 0, 0, 0.0], [1.5, 0, 0, 0], [2.0, 3.0, 0, 0]])  # blocks of 2 rows: the last holds the third cell
    c = np.array([[1.0, 0, 0, 0], [0.5, 0, 0, 0], [4.0, 2.0, 0, 0]])
    path = str(tmp_path / "real_log.h5ad")
    ad.AnnData(sp.csr_matrix(np.vstack([x[:2], c, x[2:]]).astype(np.float32)),
               obs=pd.DataFrame({"target": ["A", "A", "non-targeting", "non-targeting", "non-targeting", "B"]},
                                index=[str(i) for i in range(6)])).write_h5ad(path)
    got = sparse_check(path, repeats=1, block=2)
    assert got["density"] == 7 / (3 * 3 * 4)
    # the last block's products (2 * 1, 2 * 0.5, 2 * 4 + 3 * 2) are small multiples of halves: exact in every order
    assert got["largest difference / largest product"] == 0.0
    assert {k for k in got if k.startswith("dense on")} == {"dense on 1 genes + CSR x CSR on 3", "dense on 2 genes + CSR x CSR on 2"}
