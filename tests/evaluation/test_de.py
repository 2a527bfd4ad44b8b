"""Vectorised rank-sum DE against scipy, BH against scipy, fold changes against the formula."""

import numpy as np
import pytest
import torch
from scipy.stats import false_discovery_control, mannwhitneyu

from distgen.evaluation.de import SortedControl, benjamini_hochberg, differential_expression, rank_sum_test
from distgen.evaluation.evaldata import Population


def _ties(seed, n, g, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, g, generator=gen, dtype=torch.float64) * 4 + shift).floor() / 2  # heavy ties, many zeros


@pytest.mark.parametrize("n1,n2", [(7, 31), (25, 12), (1, 9)])
def test_rank_sum_matches_scipy_with_ties(n1, n2):
    x, c = _ties(0, n1, 20, 0.4), _ties(1, n2, 20)
    c[:, 3] = 1.0
    x[:, 3] = 1.0  # a constant gene: no evidence, p = 1
    u, p = rank_sum_test(x, SortedControl(c))
    ref = mannwhitneyu(x.numpy(), c.numpy(), axis=0, method="asymptotic", use_continuity=True)
    np.testing.assert_allclose(u.numpy(), ref.statistic, rtol=0, atol=1e-9)
    ok = np.isfinite(ref.pvalue)
    np.testing.assert_allclose(p.numpy()[ok], ref.pvalue[ok], rtol=1e-9, atol=1e-12)
    assert p[3] == 1.0


def test_benjamini_hochberg_matches_scipy():
    p = torch.rand(4, 50, generator=torch.Generator().manual_seed(2), dtype=torch.float64) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p).numpy(), false_discovery_control(p.numpy(), axis=-1), atol=1e-15)


def test_de_table_shapes_lfc_and_empty_group():
    x = torch.cat([_ties(3, 10, 6, 1.0), _ties(4, 8, 6)]).float()
    codes = torch.tensor([0] * 10 + [-1] * 8)
    pop = Population.from_codes(x, codes, n_perts=2)  # perturbation 1 has no cells
    de = differential_expression(pop)
    assert de.pvalue.shape == (2, 6) and torch.isnan(de.pvalue[1]).all() and torch.isnan(de.fdr[1]).all()
    want = np.log2(np.expm1(x[:10].double().mean(0).numpy()) / np.expm1(x[10:].double().mean(0).numpy()))
    np.testing.assert_allclose(de.lfc[0].numpy(), np.nan_to_num(want, nan=0.0), rtol=1e-12)
    assert not de.significant()[1].any()


def test_rank_sum_is_the_same_for_float32_float64_and_integer_counts():
    g = torch.Generator().manual_seed(3)
    counts = torch.poisson(torch.rand(40, 7, generator=g) * 3, generator=g)  # many ties
    ctrl, x = counts[:25], counts[25:]
    ref = rank_sum_test(x.double(), SortedControl(ctrl.double()))
    for dtype in (torch.float32, torch.int64):
        u, p = rank_sum_test(x.to(dtype), SortedControl(ctrl.to(dtype)))
        torch.testing.assert_close(u, ref[0])
        torch.testing.assert_close(p, ref[1])


def test_pooled_rank_sums_match_scipy_with_zeros_negatives_and_ties():
    gen = torch.Generator().manual_seed(5)
    x = ((torch.rand(70, 9, generator=gen) * 6).floor() - 2) * (torch.rand(70, 9, generator=gen) > 0.4)  # zeros, negatives, ties
    x[:, 4] = 0.0  # an all-zero gene: p = 1
    codes = torch.tensor([0] * 12 + [1] * 20 + [2] * 7 + [-1] * 31)
    pop = Population.from_codes(x.double(), codes, n_perts=4)  # perturbation 3 has no cells
    de = differential_expression(pop, log1p=False)
    ctrl = x[codes == -1].double().numpy()
    for p in range(3):
        ref = mannwhitneyu(x[codes == p].double().numpy(), ctrl, axis=0, method="asymptotic", use_continuity=True)
        np.testing.assert_allclose(de.statistic[p].numpy(), ref.statistic, atol=1e-9)
        ok = np.isfinite(ref.pvalue)
        np.testing.assert_allclose(de.pvalue[p].numpy()[ok], ref.pvalue[ok], rtol=1e-9, atol=1e-12)
        assert de.pvalue[p, 4] == 1.0
    assert torch.isnan(de.pvalue[3]).all()


@pytest.mark.parametrize("counts", [True, False])
def test_equal_gene_columns_get_equal_fold_changes_bit_for_bit(counts):
    """Two identical genes tie exactly in cell-eval2's tables (row-by-row column means); they must tie here too, or the
    Spearman of fold changes and the top-N cuts break the tie by rounding (torch's mean(0) did, in the control mean)."""
    from distgen.evaluation.de import de_table, differential_expression

    rng = np.random.default_rng(0)
    half = rng.poisson(rng.uniform(0.5, 20.0, 150), (301, 150)).astype(np.float32)
    x = torch.from_numpy(np.concatenate([half, half], axis=1))  # gene g and gene 150 + g are the same column
    if not counts:
        x = torch.log1p(x / x.sum(1, keepdim=True).clamp_min(1) * 1e4)
    pop = Population(X=x[:120], offsets=torch.tensor([0, 60, 120]), control=x[120:])
    for lfc in (de_table(pop, pop.control, counts=counts).lfc, differential_expression(pop).lfc):
        assert torch.equal(lfc[:, :150], lfc[:, 150:])
