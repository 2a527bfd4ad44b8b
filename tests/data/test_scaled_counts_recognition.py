"""``expression.scaled_counts`` (helper 206): counts normalised per cell whose smallest count is above 6 (a deep cell, a
panel of highly expressed genes) were not recognised, so their refusal as "normalised but not log-transformed" got the
hint for log values ("do not apply sc.pp.log1p to them"), whose fix is the opposite of the right one."""

import numpy as np
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
