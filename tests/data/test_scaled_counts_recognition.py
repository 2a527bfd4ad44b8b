"""``expression.scaled_counts``: counts normalised per cell are recognised when a cell's smallest count is above 6 (a deep
cell, a panel of highly expressed genes), so their refusal as "normalised but not log-transformed" keeps the advice to
apply sc.pp.log1p; log values (rounded to a few decimals or at bfloat16's precision included) are not, so theirs keeps
the hint for log values ("do not apply sc.pp.log1p to them"), whose fix is the opposite."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.expression import scaled_counts


def _deep_counts(shape, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.poisson(rng.uniform(8, 10, (1, shape[1])), shape).astype(np.float64)
    return np.maximum(x, 7)  # every cell's smallest count above 6


def _median_normalised(x):
    totals = x.sum(1, keepdims=True)
    return (x / totals * np.median(totals)).astype(np.float32)


def test_deep_counts_normalised_per_cell_are_scaled_counts_and_their_logs_are_not():
    x = _deep_counts((200, 300))
    assert scaled_counts(_median_normalised(x))
    assert scaled_counts((x / x.sum(1, keepdims=True) * 1e4).astype(np.float32))
    assert not scaled_counts(np.log1p(_median_normalised(x)))
    assert not scaled_counts(np.log2(x / (x.sum(1, keepdims=True) / x.sum(1).mean()) + 1).astype(np.float32))  # scater's


def test_deep_counts_normalised_to_the_median_total_keep_the_log1p_advice(tiny_adata):
    x = _deep_counts(tiny_adata.shape)
    x[:3, 0] = 40  # a few values past 20 once normalised: under 1% of them
    tiny_adata.X = _median_normalised(x)
    assert 0 < (tiny_adata.X >= 20).sum() < 0.01 * (tiny_adata.X != 0).sum()
    with pytest.raises(ValueError, match=r"not log-transformed\. Apply sc\.pp\.log1p yourself") as e:
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))
    assert "do not apply sc.pp.log1p" not in str(e.value), str(e.value)


def _deep_logcounts(seed=5, shape=(200, 300)):
    """scater-like ``logcounts`` (log2 of counts over size factors, + 1) of deep cells: many distinct values per cell."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(rng.uniform(8, 300, (1, shape[1])), shape).astype(np.float64)
    sf = x.sum(1) / x.sum(1).mean()
    return x, np.log2(1 + x / sf[:, None])


@pytest.mark.parametrize("decimals", [1, 2])
def test_log_values_rounded_to_a_few_decimals_are_not_scaled_counts(decimals):
    """Log values stored rounded (1 or 2 decimals, as some tools and data portals write them) are all whole multiples of
    the rounding step (0.1, 0.01), which in a deep cell is also the smallest gap between its values: the rounding's step,
    not the cell's."""
    x, logcounts = _deep_logcounts()
    assert not scaled_counts(np.round(logcounts, decimals).astype(np.float32))
    cpm = x / x.sum(1, keepdims=True) * 1e6
    assert not scaled_counts(np.round(np.log1p(cpm), decimals).astype(np.float32))
    assert not scaled_counts(np.round(np.log2(cpm + 1)).astype(np.float32))  # whole-number log2: the step 1 is no scaling either
    assert scaled_counts((x / x.sum(1, keepdims=True) * 1e4).astype(np.float32))  # the deep counts themselves still are


def test_rounded_log2_values_above_the_log_range_keep_the_do_not_log_again_hint(tiny_adata):
    """Deep cells' scater logcounts stored to two decimals, a few past 20 (a tiny size factor), are refused with the hint
    not to apply sc.pp.log1p (which would log log values twice), not with that advice alone."""
    _, logcounts = _deep_logcounts(shape=(tiny_adata.n_obs, 300))
    logcounts[0, :3] = [20.5, 21.0, 21.6]
    adata = ad.AnnData(np.round(logcounts, 2).astype(np.float32), obs=tiny_adata.obs,
                       var=pd.DataFrame(index=["A", "B", "C", "D", "E"] + [f"g{i}" for i in range(295)]))
    assert 0 < (adata.X >= 20).sum() < 0.01 * (adata.X != 0).sum()
    with pytest.raises(ValueError, match="not log-transformed") as e:
        PerturbationData.from_anndata(adata, PerturbationSchema(context_cols=("cell_type",)))
    assert "do not apply sc.pp.log1p" in str(e.value), str(e.value)


def _at_bfloat16_precision(x):
    """``x`` rounded to bfloat16 (8 significant bits: a tensor of a model trained in bfloat16), back in float32."""
    import torch

    return torch.tensor(x).to(torch.bfloat16).float().numpy()


def test_log_values_at_bfloat16_precision_are_not_scaled_counts():
    """bfloat16 keeps 8 significant bits, so the values of a cell between 2**e and 2**(e+1) are whole multiples of
    2**(e-7): log1p of CPM (about 7 to 13) lies on a grid of 1/32 to 1/16, whose step the smallest gap gives and which
    divides every value, as the decimal grid of rounded values does."""
    x, _ = _deep_logcounts()
    log_cpm = np.log1p(x / x.sum(1, keepdims=True) * 1e6)
    assert not scaled_counts(log_cpm.astype(np.float32))
    assert not scaled_counts(_at_bfloat16_precision(log_cpm))
    assert scaled_counts((x / x.sum(1, keepdims=True) * 1e4).astype(np.float32))


def test_bfloat16_log_values_above_the_log_range_keep_the_do_not_log_again_hint(tiny_adata):
    """Such values with a few past 20 are refused with the hint not to apply sc.pp.log1p (which would log log values
    twice), as the same values in float32 are."""
    x, _ = _deep_logcounts(shape=(tiny_adata.n_obs, 300))
    log_cpm = np.log1p(x / x.sum(1, keepdims=True) * 1e6)
    log_cpm[0, :3] = [20.5, 21.0, 21.5]  # on bfloat16's grid of 1/8 there
    var = pd.DataFrame(index=["A", "B", "C", "D", "E"] + [f"g{i}" for i in range(295)])
    for values in (log_cpm.astype(np.float32), _at_bfloat16_precision(log_cpm)):
        adata = ad.AnnData(values, obs=tiny_adata.obs, var=var)
        assert 0 < (adata.X >= 20).sum() < 0.01 * (adata.X != 0).sum()
        with pytest.raises(ValueError, match="not log-transformed") as e:
            PerturbationData.from_anndata(adata, PerturbationSchema(context_cols=("cell_type",)))
        assert "do not apply sc.pp.log1p" in str(e.value), str(e.value)


def _wide_counts(shape=(200, 300), seed=7):
    """Deep counts of 7 to about 700 per gene: most cells hold odd counts above 256, which need more than bfloat16's 8
    significant bits."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.poisson(rng.uniform(20, 600, (1, shape[1])), shape), 7).astype(np.float64)


@pytest.mark.parametrize("factor", [0.125, 2.0**-10, 0.50002, 0.12501, 4.0002])
def test_counts_scaled_by_a_power_of_two_or_near_one_are_scaled_counts(factor):
    """A cell's step that is a power of two is bfloat16's grid only when its values fit bfloat16's 8 significant bits:
    counts over exactly 8 (a cell of 80,000 counts normalised to 10,000) keep odd counts above 256, and a factor near a
    power of two (0.50002) is none; in float32 and float64 alike."""
    x = _wide_counts()
    for dtype in (np.float32, np.float64):
        assert scaled_counts((x * factor).astype(dtype)), (factor, dtype)
    assert scaled_counts((_deep_counts((200, 300)) * 0.50002).astype(np.float32))  # counts under 256, factor not 2**k


@pytest.mark.parametrize("factor", [0.99997, 1.00005, 0.099996])
def test_counts_scaled_by_a_factor_near_a_decimal_grid_step_are_scaled_counts(factor):
    """A step within float32's precision of 1, 0.1, 0.01 or 0.001 is the grid of whole or rounded values; 0.99997 (a cell
    whose total is within 0.01% of the median's) is the cell's own: its values (7 to about 25 counts) lie 2e-4 and more
    off the whole numbers, which float32 resolves to 2e-6 there (a tolerance of 1e-4 took it for the grid of 1)."""
    x = _deep_counts((200, 300))
    for dtype in (np.float32, np.float64):
        assert scaled_counts((x * factor).astype(dtype)), (factor, dtype)


def test_dense_log_values_rounded_to_three_decimals_are_not_scaled_counts():
    """In a cell with values 0.001 apart and a smallest value under 1, the step the smallest gap gives is 0.001, which
    every value rounded to three decimals fits: the rounding's step, not the cell's (the 0.01-grid rule that makes a cell
    abstain does not cover this grid, whose multiples hold real steps such as 0.125)."""
    from distgen.data.expression import _cell_scaled

    rng = np.random.default_rng(11)
    cells = np.round(np.sort(rng.uniform(0.5, 4.0, (20, 3000)), axis=1), 3)
    assert all((np.diff(np.unique(c)).min() == pytest.approx(0.001)) for c in cells)
    assert [_cell_scaled(c.astype(np.float32).astype(np.float64)) for c in cells] == [False] * 20
    assert not scaled_counts(cells.astype(np.float32))


def test_counts_of_3_to_256_over_an_exact_power_of_two_cannot_be_told_from_bfloat16_log_values():
    """Counts of 3 to 256 over 8 fit bfloat16's 8 significant bits, as bfloat16 log values do, and their step 1/8 is that
    grid's: such a cell reads as not scaled (docs/data.md says so). One count needing 9 bits (an odd one above 256) tells
    them apart; so does a smallest count of 1 or 2, and only those: the counts tried are 1 to 6 (and the smallest gap's),
    so the step 1/(3 * 8), the first that is no power of two and fits every count, is tried only when the smallest count
    times 3 is at most 6."""
    from distgen.data.expression import _cell_scaled

    rng = np.random.default_rng(13)
    counts = rng.integers(7, 257, 400).astype(np.float64)
    assert _cell_scaled(counts / 8) is False
    assert _cell_scaled(np.append(counts, 257.0) / 8) is True
    assert _cell_scaled(np.append(counts, 258.0) / 8) is False  # 2 x 129: 8 bits
    for smallest in (1, 2):
        assert _cell_scaled(np.append(counts, float(smallest)) / 8) is True, smallest
    for smallest in (3, 4, 5, 6):
        assert _cell_scaled(np.append(counts, float(smallest)) / 8) is False, smallest


def _log_values_at_float16(seed=5):
    x, logcounts = _deep_logcounts(seed)
    cpm = x / x.sum(1, keepdims=True) * 1e6
    return [v.astype(np.float16).astype(np.float32) for v in (logcounts, np.log1p(cpm), np.log1p(cpm / 100))]


def test_log_values_at_float16_precision_are_not_scaled_counts():
    """float16 keeps 11 significant bits: its grid lies 1,024 to 2,047 steps into a cell's smallest value, past the 1,000
    steps a scaled count may be, so a cell of float16 log values reads as scaled only when its smallest value stands
    alone near the bottom of its binade (a few cells in 200 on some data); the whole answer is not scaled."""
    from distgen.data.expression import _cell_scaled

    for x in _log_values_at_float16():
        cells = [_cell_scaled(r[r > 0].astype(np.float64)) for r in x]
        assert sum(c is True for c in cells) <= 0.02 * len(cells)
        assert not scaled_counts(x)


def test_counts_scaled_per_cell_at_float16_or_bfloat16_precision_are_scaled_counts_and_keep_the_log1p_advice(tiny_adata):
    """float16 stores a scaled count within ``2**-11`` of itself (5e-4 a value), wider than float32's tolerance once a count
    is above 2: such cells are judged at float16's precision, found from the values themselves (every value fits 11
    significant bits) as bfloat16's is (8 bits). They were not recognised (the refusal then led with the log1p advice by
    the refusal's other rule only); shallow bfloat16 scaled counts were not either."""
    import torch

    x = _deep_counts(tiny_adata.shape)
    cp10k = x / x.sum(1, keepdims=True) * 1e4
    float16 = cp10k.astype(np.float16)
    assert scaled_counts(float16) and scaled_counts(float16.astype(np.float32))
    rng = np.random.default_rng(3)
    shallow = rng.poisson(rng.gamma(0.5, 1.0, (200, 2000))).astype(np.float64)  # overdispersed: 5 or more distinct counts
    shallow = shallow[shallow.sum(1) > 0]
    bf16 = torch.tensor(shallow / shallow.sum(1, keepdims=True) * 1e4, dtype=torch.float32).to(torch.bfloat16).float().numpy()
    assert scaled_counts(bf16)
    assert not scaled_counts(np.log1p(cp10k).astype(np.float16))
    tiny_adata.X = float16.astype(np.float32)
    with pytest.raises(ValueError, match=r"not log-transformed\. Apply sc\.pp\.log1p yourself"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))


def test_counts_at_float16_precision_are_told_only_while_the_largest_count_is_at_most_256():
    """The precision limit: a count ``c`` held at float16 lies within ``c * 2**-10`` of whole, so past a quarter count
    (``MAX_PRECISION_SLACK``: ``c`` over 256) float16 cannot tell it from a value between two counts, and such a cell is
    not read as scaled (float32 values of the same counts are). The limit is on the count (a value over the cell's step),
    not on the values' spread: a cell whose smallest count is 3 is past it at 100 times its smallest value."""
    from distgen.data.expression import _cell_scaled

    rng = np.random.default_rng(11)
    counts = np.concatenate([[1.0, 2.0, 3.0], rng.integers(4, 200, 40).astype(np.float64)])
    factor = 1e4 / 3217.0
    at16 = lambda c: (c * factor).astype(np.float16).astype(np.float64)  # noqa: E731
    at32 = lambda c: (c * factor).astype(np.float32).astype(np.float64)  # noqa: E731
    assert _cell_scaled(at16(counts)) is True
    deep = np.append(counts, 900.0)
    assert _cell_scaled(at32(deep)) is True
    assert _cell_scaled(at16(deep)) is False
    assert _cell_scaled(at16(np.append(counts, 256.0))) is True and _cell_scaled(at16(np.append(counts, 257.0))) is False
    from3 = np.concatenate([[3.0, 4.0, 5.0], rng.integers(6, 250, 40).astype(np.float64)])
    assert _cell_scaled(at16(from3)) is True
    assert _cell_scaled(at16(np.append(from3, 300.0))) is False  # 100 times the smallest value, 300 counts
    assert _cell_scaled(at32(np.append(from3, 300.0))) is True
