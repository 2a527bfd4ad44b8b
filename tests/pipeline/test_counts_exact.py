"""``--counts`` writes a real cell's counts as stored (prediction round, 2026-12-06, left over): rebuilt from the float32 log
values, a count of 5e7 came back as 49,999,976. In memory the counts of ``LARGE_COUNT`` or more are kept at load
(``distgen.data.counts.LARGE_COUNTS_LAYER``); with ``--data`` a file of counts is read again as stored."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.data.counts import LARGE_COUNT, large_counts, stored_counts

from .test_predict_round import train_tiny

GENES = [f"G{i}" for i in range(20)]
BIG = 5e7


def _counts(path, big=None, deep=12_345_678):
    """Raw counts of controls and P1, P2, P1+P2 in cell types A and B; every control holds ``big`` (default ``BIG``, 5e7)
    counts of G0 (and ``deep`` more of G1 in B: float32 holds 12,345,678)."""
    big = BIG if big is None else big
    rng = np.random.default_rng(0)
    base = rng.gamma(1.0, 1.0, len(GENES)) + 0.05
    rows, labels, types = [], [], []
    for ct in ("A", "B"):
        for lab in ["control"] * 30 + [p for p in ("P1", "P2", "P1+P2") for _ in range(10)]:
            row = rng.poisson(base / base.sum() * rng.uniform(1000, 4000)).astype(np.float64)
            if lab == "control":
                row[0] = big
                row[1] += deep if ct == "B" else 0
            rows.append(row)
            labels.append(lab)
            types.append(ct)
    obs = pd.DataFrame({"condition": labels, "cell_type": types}, index=[f"c{i}" for i in range(len(labels))])
    ad.AnnData(X=np.asarray(rows, dtype=np.float32), obs=obs, var=pd.DataFrame(index=GENES)).write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    return train_tiny(root, _counts(root / "train.h5ad"))


def _real_rows(path, kind_value):
    a = ad.read_h5ad(path)
    x = np.asarray(a.X.toarray() if hasattr(a.X, "toarray") else a.X)
    return x[(a.obs["target"] == "non-targeting").to_numpy()] if kind_value == "control" else x


@pytest.mark.parametrize("with_data", [False, True])
def test_round_gives_back_stored_counts_of_5e7(run, tmp_path, with_data):
    pred, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    args = ["--data", str(run / "train.h5ad")] if with_data else []
    assert main(["predict", str(run / "run"), *args, "--counts", "round", "--out", str(pred), "--real", str(real)]) == 0
    for x in (_real_rows(pred, "control"), _real_rows(real, "control")):
        assert len(x) and (x[:, 0] == BIG).all(), np.unique(x[:, 0])  # was 49,999,976
    stored = set(np.asarray(ad.read_h5ad(run / "train.h5ad").X)[:, 1].tolist())  # below 2^24: float32 holds each exactly
    truth = _real_rows(real, "all")
    big_b = truth[:, 1] > 1e7
    assert big_b.any() and set(truth[big_b, 1].tolist()) <= stored


def test_large_counts_keeps_only_what_float32_logs_lose():
    import scipy.sparse as sp

    x = np.array([[1.0, LARGE_COUNT, 3.0], [BIG, 0.0, LARGE_COUNT - 1]])
    for table in (x, sp.csr_matrix(x)):
        kept = large_counts(table)
        assert kept.nnz == 2 and kept[0, 1] == LARGE_COUNT and kept[1, 0] == BIG
    for small in (np.float16, np.uint16):  # cannot hold such a count (the comparison overflowed float16's cast)
        assert large_counts(np.full((2, 2), 60000, dtype=small)).nnz == 0
    out = np.zeros((2, 2))
    stored_counts(out, large_counts(x), np.array([1, 0]), np.array([0, 1]))  # rows reversed, two columns
    assert out.tolist() == [[BIG, 0.0], [0.0, LARGE_COUNT]]
