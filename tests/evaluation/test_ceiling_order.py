"""The ceiling's half-splits depend on each perturbation's own real cells, not on the files' row or gene order nor on
the other perturbations.

Before, one generator shuffled every group in turn, in row order: the same truth with its rows in another order
(``adata[perm]``, a concatenation by another tool) or without a perturbation that sorted first gave other halves,
so other ceiling values and other normalised scores for unchanged predictions.
"""

import numpy as np
import pytest
import torch

from distgen.evaluation.calibration import ceiling_data
from distgen.evaluation.ceiling import content_order, half_split
from distgen.evaluation.suite import run_metrics
from distgen.pipeline.evaluate import load_pair

from .synth import CONTROL, make_pair

METRICS = ["mse", "pearson_delta"]


@pytest.fixture(scope="module")
def pair():
    return make_pair(seed=3, n_genes=30, n_ctrl=40, n_cells=12, combos=False)


def _ceiling(pred, real, seed=0):
    data, _ = load_pair(pred, real, "target", CONTROL)
    table = run_metrics(ceiling_data(data, seed), METRICS)
    return {p: {m: table.values[m][i] for m in METRICS} for i, p in enumerate(table.perts)}


def _close(a, b):
    assert set(a) == set(b)
    for p in a:
        for m in METRICS:
            assert a[p][m] == pytest.approx(b[p][m], rel=1e-9, abs=1e-12), (p, m)


def test_the_ceiling_does_not_depend_on_the_row_order_of_the_files(pair):
    real, pred = pair
    rng = np.random.default_rng(0)
    _close(_ceiling(pred, real), _ceiling(pred[rng.permutation(pred.n_obs)].copy(), real[rng.permutation(real.n_obs)].copy()))


def test_the_ceiling_does_not_depend_on_the_gene_order_of_the_files(pair):
    real, pred = pair
    perm = np.random.default_rng(1).permutation(real.n_vars)
    _close(_ceiling(pred, real), _ceiling(pred[:, perm].copy(), real[:, perm].copy()))


def test_a_perturbations_ceiling_does_not_depend_on_the_others(pair):
    real, pred = pair
    full = _ceiling(pred, real)
    first = sorted(full)[0]  # sorts first: before, every later group drew from a generator it had used
    sub = _ceiling(pred[pred.obs.target != first].copy(), real[real.obs.target != first].copy())
    _close({p: v for p, v in full.items() if p != first}, sub)
    other = _ceiling(pred, real, seed=1)
    assert any(other[p]["mse"] != full[p]["mse"] for p in full)  # the seed still draws the halves


def test_content_order_ranks_the_same_cells_alike_in_any_row_or_gene_order():
    x = torch.rand(50, 6)
    x[7] = x[3]  # identical cells tie and are interchangeable
    genes = [f"g{i}" for i in range(6)]
    base = content_order(x, genes)
    rows, cols = torch.randperm(50, generator=torch.Generator().manual_seed(0)), [5, 2, 0, 1, 4, 3]
    again = content_order(x[rows][:, cols], [genes[c] for c in cols])
    order = lambda r, X: X[torch.argsort(r, stable=True)]  # noqa: E731
    assert torch.equal(order(base, x), order(again, x[rows]))
    assert sorted(base.tolist()) == list(range(50))


def test_half_split_is_the_same_for_a_group_whatever_else_is_split():
    codes = torch.tensor([0] * 6 + [1] * 8 + [2] * 5)
    a, b = half_split(codes, 4, {0: "A", 1: "B", 2: "C"})
    a2, b2 = half_split(codes[6:] - 1, 4, {0: "B", 1: "C"})  # A gone: B and C are codes 0 and 1 now, rows shifted by 6
    assert torch.equal(torch.sort(a[codes[a] > 0]).values, torch.sort(a2 + 6).values)
    assert torch.equal(torch.sort(b[codes[b] > 0]).values, torch.sort(b2 + 6).values)
