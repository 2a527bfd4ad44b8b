"""Numerical extremes and degenerate expression at loading (the numerical-extremes round of 2026-12-06, docs/reliability.md).

Each case was loaded without a word or with an error the user could not act on before: float16 counts whose cell totals
pass float16's range, values logged twice or three times, counts of one gene, float64 values past float32's range.
"""

from __future__ import annotations

import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data.counts import LIBRARY_COL
from distgen.data.dataset import PerturbationData
from distgen.data.schema import PerturbationSchema
from distgen.errors import InputDataError
from distgen.logscale import extra_log1p

SCHEMA = PerturbationSchema(perturbation_col="perturbation", control_labels=["NT"], context_cols=["cell_type"])


def counts_file(seed: int = 0, n_genes: int = 30, n: int = 20) -> ad.AnnData:
    """Poisson counts: 30 controls and 4 perturbations x ``n`` cells in each of two cell types."""
    rng = np.random.default_rng(seed)
    mu = rng.gamma(1.5, 3.0, n_genes)
    xs, labels, contexts = [], [], []
    for ctx in ("A", "B"):
        for p, size in [("NT", 30), ("G0", n), ("G1", n), ("G2", n), ("G0+G1", n)]:
            effect = np.ones(n_genes)
            for atom in p.split("+") if p != "NT" else ():
                effect[int(atom[1:]) % n_genes] = 0.1
            xs.append(rng.poisson(mu * effect, (size, n_genes)))
            labels += [p] * size
            contexts += [ctx] * size
    obs = pd.DataFrame({"perturbation": labels, "cell_type": contexts}, index=[f"c{i}" for i in range(len(labels))])
    a = ad.AnnData(X=np.concatenate(xs).astype(np.float32), obs=obs)
    a.var_names = [f"G{i}" for i in range(n_genes)]
    return a


def log_normalised(x: np.ndarray, target: float = 1e4) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * target).astype(np.float32)


def load(adata: ad.AnnData, **schema) -> PerturbationData:
    return PerturbationData.from_anndata(adata, PerturbationSchema(**{**SCHEMA.__dict__, **schema}) if schema else SCHEMA)


def test_float16_counts_past_its_range_keep_their_library_sizes():
    # float16 sums overflowed at 65,504: the library column was inf, and distgen run refused its own column
    # ("obs['distgen_library_size'] ... values are missing, infinite or negative; fill in those cells' sizes")
    a = counts_file()
    a.X = (a.X * 1000).astype(np.float16)
    assert np.isfinite(a.X).all()
    want = a.X.astype(np.float64).sum(1)
    assert want.max() > np.finfo(np.float16).max
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "overflow encountered in reduce"
        data = load(a)
    np.testing.assert_allclose(data.adata.obs[LIBRARY_COL].to_numpy(), want, rtol=1e-12)
    same = counts_file()
    same.X = a.X.astype(np.float32)
    np.testing.assert_array_equal(data.table.X.numpy(), load(same).table.X.numpy())


@pytest.mark.parametrize("times", [2, 3])
def test_values_logged_more_than_once_are_refused_with_the_expm1_that_undoes_it(times):
    a = counts_file()
    x = log_normalised(a.X)
    for _ in range(times - 1):
        x = np.log1p(x)
    a.X = x
    undo = "np.expm1(" * (times - 1) + "adata.X" + ")" * (times - 1)
    with pytest.raises(InputDataError, match=rf"log-transformed {times} times.*adata\.X = {re.escape(undo)}"):
        load(a)
    a.X = x.copy()
    for _ in range(times - 1):  # the fix the message gives loads the once-logged values
        a.X = np.expm1(a.X)
    np.testing.assert_allclose(load(a).table.X.numpy(), log_normalised(counts_file().X), atol=1e-4)


def test_values_logged_once_on_a_gene_subset_are_not_taken_for_twice():
    a = counts_file(n_genes=60)
    a.X = log_normalised(a.X)
    a = a[:, :25].copy()  # a gene selection after normalising: no constant totals, whole ratios still
    load(a)
    rng = np.random.default_rng(3)
    for _ in range(50):  # continuous values (imputed, denoised) are neither once nor twice logged counts
        m = rng.gamma(rng.uniform(0.2, 3), rng.uniform(0.1, 3), (200, 40)) * (rng.random((200, 40)) < 0.6)
        assert extra_log1p(m) == 0 and extra_log1p(np.log1p(m)) == 0


@pytest.mark.filterwarnings("ignore:.*have no expression at all")
def test_counts_of_one_gene_are_refused():
    # normalize_total over one gene made every cell with a count log1p(1e4) and the rest 0, trained and scored so
    a = counts_file()[:, :1].copy()
    with pytest.raises(InputDataError, match=r"counts of 1 gene: .*every cell with a count would read log1p\(target_sum\)"):
        load(a)
    a.X = log_normalised(counts_file().X)[:, :1]  # the fix: normalised over every gene, then one kept
    assert load(a).table.X.shape[1] == 1


def test_float64_values_past_float32_s_range_are_refused():
    a = counts_file()
    a.X = a.X.astype(np.float64) * 1e300  # whole numbers, read as counts: inf in the float32 table, then NaN
    with pytest.raises(InputDataError, match=r"beyond float32's range"):
        load(a)


def test_counts_past_int32_and_float32_exactness_give_the_same_table():
    a = counts_file()
    want = load(a).table.X.numpy()
    for x in (sp.csr_matrix(a.X.astype(np.int64) * 2**28), a.X.astype(np.int64) * 2**20, a.X.astype(np.float16)):
        b = a.copy()
        b.X = x
        np.testing.assert_allclose(load(b).table.X.numpy(), want, rtol=0, atol=1e-6)
