"""``benchmarks/replicate_calibration.py``: independent experiments are disjoint, and both measurements run small."""

import math

import numpy as np

from benchmarks.replicate_calibration import Synthetic, band_vs_fresh, disjoint_experiments, perfect


def test_disjoint_experiments_share_no_cell_and_hold_n_of_each_kept_group():
    cond = np.array(["control"] * 50 + ["A"] * 40 + ["B"] * 7, dtype=object)
    parts = disjoint_experiments(cond, 3, 10, 12, np.random.default_rng(0))
    assert len(parts) == 3
    seen = np.concatenate(parts)
    assert len(set(seen.tolist())) == seen.size  # disjoint
    for p in parts:
        labels, counts = np.unique(cond[p], return_counts=True)
        assert dict(zip(labels.tolist(), counts.tolist())) == {"control": 12, "A": 10}  # B has < 3 x 10 cells: left out


def test_band_and_perfect_model_measurements_run_on_a_small_population():
    pop = Synthetic(n_perts=4, n_genes=30)
    metrics = ["mse", "pearson_delta"]

    def fresh(r):
        rng = np.random.default_rng(r)
        return [pop.experiment(12, 24, rng) for _ in range(3)]

    res = band_vs_fresh(fresh, pop.genes, 1, metrics, splits=2)
    assert set(res) == set(metrics) and all(math.isfinite(v) and v >= 0 for row in res.values() for v in row)
    rng = np.random.default_rng(5)
    x, cond = pop.experiment(12, 24, rng)
    xm = np.concatenate([pop.draw(p, 12, rng) for p in pop.perts])
    cm = np.array([p for p in pop.perts for _ in range(12)], dtype=object)
    means = perfect(x, cond, xm, cm, pop.genes, metrics, seed=0, splits=2)
    assert set(means["mse"]) == {"model", "control", "half-split", "extrapolated", "shared"}
    assert means["mse"]["extrapolated"] < means["mse"]["half-split"]  # full depth: less noise than half depth
