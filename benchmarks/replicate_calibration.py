"""How well does the split-half replicate stand for a fresh experiment? Measured where independent replicates exist.

Two questions about distgen's positive ceiling (``distgen.evaluation.uncertainty.ceiling_tables``):

1. **Band vs fresh replicates** (``band``). ``summary.json``'s ``ceiling_band.std`` is the spread of the ceiling's mean
   over 5 seeded half-splits of the SAME real cells. A fresh replicate experiment (new cells of the same population)
   moves the ceiling by more: the splits share their cells. Per metric and group size, this prints the band's std
   (root mean square over experiments), the std over independent experiments of one split's ceiling mean and of the
   5-split average (what ``calibration.csv`` reports), and the ratio fresh / band.
2. **Perfect model** (``perfect``). A model that samples ``n`` fresh cells per perturbation from the true population,
   scored with the truth's control cells (as a distgen prediction is), against the current ceiling (half vs half,
   each half with its own controls: ``half-split``) and the depth-corrected candidates: ``shared`` (half vs half,
   both with ALL the truth's controls, as the model is scored) and ``extrapolated`` (``(3 H - Q) / 2`` per
   perturbation, ``H`` the shared-control half-split and ``Q`` the shared-control quarter-split: Richardson
   extrapolation to full depth of a score whose expectation is linear in ``1 / n``). Normalised scores use the
   ``control`` baseline (the truth's controls resampled).

Data: a synthetic population with known parameters (negative-binomial counts, 20 perturbations of varied strength,
200 genes, log1p per 10k), where an experiment is a fresh draw; and papalexi THP-1 (``assignment_confident`` cells,
log1p per 10k), where the experiments are DISJOINT subsets of every condition's cells (a perturbation needs
``k x n`` cells for ``k`` experiments of ``n`` cells; controls likewise, ``4 n`` per experiment, capped).

``PYTHONPATH=. python benchmarks/replicate_calibration.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable, Sequence

import numpy as np

METRICS: tuple[str, ...] = ("mse", "mse_delta", "edistance", "pearson_delta", "pearson_delta_realctrl",
                            "discrimination_score_l1", "overlap_at_N", "de_spearman_lfc_sig", "roc_auc", "mmd")


# --- data ------------------------------------------------------------------------------------------------------------

class Synthetic:
    """A known population: per-gene NB counts, each perturbation shifting ~10% of the genes by a log fold change."""

    def __init__(self, n_perts: int = 20, n_genes: int = 200, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.genes = [f"g{i}" for i in range(n_genes)]
        base = rng.normal(0.0, 1.2, n_genes)
        self.perts = [f"p{i}" for i in range(n_perts)]
        self.logmean = {"control": base}
        for i, p in enumerate(self.perts):
            strength = 0.15 + 1.0 * i / max(n_perts - 1, 1)  # weak to strong
            hit = rng.random(n_genes) < 0.1
            self.logmean[p] = base + hit * rng.normal(0.0, strength, n_genes)
        self.theta = 5.0  # NB dispersion (gamma-poisson shape)

    def draw(self, cond: str, n: int, rng: np.random.Generator) -> np.ndarray:
        p = np.exp(self.logmean[cond])
        p = p / p.sum()
        lib = rng.lognormal(math.log(3000.0), 0.3, (n, 1))
        lam = rng.gamma(self.theta, lib * p / self.theta)
        counts = rng.poisson(lam).astype(np.float64)
        return np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1.0) * 1e4).astype(np.float32)

    def experiment(self, n: int, n_ctrl: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs = [self.draw("control", n_ctrl, rng)] + [self.draw(p, n, rng) for p in self.perts]
        cond = np.array(["control"] * n_ctrl + [p for p in self.perts for _ in range(n)], dtype=object)
        return np.concatenate(xs), cond


def papalexi(shared_data: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import anndata as ad
    import scipy.sparse as sp

    a = ad.read_h5ad(os.path.join(shared_data, "papalexi2021_eccite_thp1/papalexi2021_eccite_sceptre_lowmoi.h5ad"))
    a = a[a.obs["assignment_confident"].astype(bool)].copy()
    x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e4).astype(np.float32)
    return x, a.obs["perturbation"].astype(str).to_numpy().astype(object), list(a.var_names)


def disjoint_experiments(cond: np.ndarray, k: int, n: int, n_ctrl: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` disjoint row sets: ``n`` cells of every perturbation with at least ``k n`` cells, ``n_ctrl`` controls."""
    out: list[list[np.ndarray]] = [[] for _ in range(k)]
    for c in np.unique(cond):
        size = n_ctrl if c == "control" else n
        idx = np.flatnonzero(cond == c)
        if idx.size < k * size:
            if c == "control":
                raise ValueError(f"{idx.size} controls cannot give {k} experiments of {size}")
            continue
        idx = rng.permutation(idx)
        for j in range(k):
            out[j].append(idx[j * size:(j + 1) * size])
    return [np.concatenate(o) for o in out]


# --- replicates ------------------------------------------------------------------------------------------------------

def cells(x: np.ndarray, cond: np.ndarray, genes: Sequence[str]):
    from distgen.types import Cells

    return Cells(x, cond, genes)


# --- 1: band vs fresh replicates ---------------------------------------------------------------------------------------

def band_vs_fresh(experiments: Callable[[int], list[tuple[np.ndarray, np.ndarray]]], genes: Sequence[str], reps: int,
                  metrics: Sequence[str], splits: int = 5, replicate: str = "half-split") -> dict[str, tuple[float, float, float]]:
    """Per metric: (band std RMS, std over fresh experiments of split 0's mean, of the ``splits``-split mean).

    ``experiments(r)`` gives independent experiments (rows, labels); variances are pooled over ``reps`` batches.
    """
    from distgen.evaluation.io import eval_data
    from distgen.evaluation.uncertainty import band, ceiling_tables

    band_var: dict[str, list[float]] = {m: [] for m in metrics}
    fresh_var: dict[str, list[float]] = {m: [] for m in metrics}
    avg_var: dict[str, list[float]] = {m: [] for m in metrics}
    for r in range(reps):
        one: dict[str, list[float]] = {m: [] for m in metrics}
        avg: dict[str, list[float]] = {m: [] for m in metrics}
        for e, (x, cond) in enumerate(experiments(r)):
            truth = cells(x, cond, genes)
            tables = ceiling_tables(eval_data(truth, truth), metrics, seed=1000 * r + e, n_splits=splits, replicate=replicate)
            for m in metrics:
                b = band(tables, m)
                band_var[m].append(b["std"] ** 2)
                one[m].append(float(np.nanmean(tables[0].values[m])))
                avg[m].append(b["mean"])
        for m in metrics:
            fresh_var[m].append(float(np.var(one[m], ddof=1)))
            avg_var[m].append(float(np.var(avg[m], ddof=1)))
    return {m: (math.sqrt(np.nanmean(band_var[m])), math.sqrt(np.nanmean(fresh_var[m])), math.sqrt(np.nanmean(avg_var[m])))
            for m in metrics}


def print_band(title: str, rows: dict[int, dict[str, tuple[float, float, float]]], metrics: Sequence[str]) -> None:
    print(f"\n## {title}\n")
    print("| metric | " + " | ".join(f"n={n}: band / fresh 1 split / fresh 5-split mean (fresh / band)" for n in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for m in metrics:
        cells_ = []
        for res in rows.values():
            b, f, a = res[m]
            cells_.append(f"{b:.3g} / {f:.3g} / {a:.3g} ({f / b:.2g}x)" if b > 0 else f"{b:.3g} / {f:.3g} / {a:.3g}")
        print(f"| {m} | " + " | ".join(cells_) + " |")


# --- 2: the perfect model against each replicate -----------------------------------------------------------------------

def perfect(x: np.ndarray, cond: np.ndarray, x_model: np.ndarray, cond_model: np.ndarray, genes: Sequence[str],
            metrics: Sequence[str], seed: int, splits: int = 5) -> dict[str, dict[str, float]]:
    """Means over perturbations of: the perfect model, the control baseline, and each replicate (same perturbations)."""
    from distgen.evaluation.calibration import shared_control_data
    from distgen.evaluation.io import eval_data
    from distgen.evaluation.suite import run_metrics
    from distgen.evaluation.uncertainty import ceiling_tables, mean_table, split_seed

    ctrl = np.flatnonzero(cond == "control")
    truth = cells(x, cond, genes)
    model = cells(np.concatenate([x[ctrl], x_model]), np.concatenate([cond[ctrl], cond_model]), genes)
    rng = np.random.default_rng(seed)
    n_pert = int((cond != "control").sum())
    base = cells(np.concatenate([x[ctrl], x[rng.choice(ctrl, n_pert)]]),
                 np.concatenate([cond[ctrl], cond[cond != "control"]]), genes)
    data = eval_data(model, truth)
    tab = run_metrics(data, metrics)
    out = {"model": {m: np.asarray(tab.values[m], dtype=np.float64) for m in metrics}}
    bt = run_metrics(eval_data(base, truth), metrics)
    out["control"] = {m: np.asarray(bt.values[m], dtype=np.float64) for m in metrics}
    for rep in ("half-split", "extrapolated"):
        t = mean_table(ceiling_tables(data, metrics, seed=seed, n_splits=splits, replicate=rep))
        out[rep] = {m: np.asarray(t.values[m], dtype=np.float64) for m in metrics}
    h = mean_table([run_metrics(shared_control_data(data, split_seed(seed, i), 2), metrics) for i in range(splits)])
    out["shared"] = {m: np.asarray(h.values[m], dtype=np.float64) for m in metrics}
    means: dict[str, dict[str, float]] = {}
    for m in metrics:
        ok = np.all([np.isfinite(v[m]) for v in out.values()], 0)
        means[m] = {k: float(v[m][ok].mean()) if ok.any() else math.nan for k, v in out.items()}
    return means


def print_perfect(title: str, res: list[dict[str, dict[str, float]]], metrics: Sequence[str]) -> None:
    from distgen.evaluation.metrics import metrics as registry

    print(f"\n## {title} (means over {len(res)} draws; normalised = (model - control) / (replicate - control))\n")
    print("| metric | model | control | half-split | shared | extrapolated | normalised: half-split / shared / extrapolated |")
    print("|---|---|---|---|---|---|---|")
    for m in metrics:
        v = {k: float(np.mean([r[m][k] for r in res])) for k in res[0][m]}
        hib = registry.get(m).capabilities.higher_is_better
        norm = []
        for k in ("half-split", "shared", "extrapolated"):
            better = (v[k] > v["control"]) if hib else (v[k] < v["control"])
            norm.append(f"{(v['model'] - v['control']) / (v[k] - v['control']):.2f}" if better else "NaN")
        print(f"| {m} | {v['model']:.4g} | {v['control']:.4g} | {v['half-split']:.4g} | {v['shared']:.4g} | "
              f"{v['extrapolated']:.4g} | {' / '.join(norm)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and group sizes (a smoke run, ~minutes)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--part", choices=("band", "perfect", "both"), default="both")
    ap.add_argument("--metrics", default=",".join(METRICS))
    ap.add_argument("--replicate", choices=("half-split", "extrapolated"), default="half-split",
                    help="the replicate whose band the band part measures")
    ap.add_argument("--data", default=os.environ.get("DISTGEN_SHARED_DATA", "../shared/data"))
    args = ap.parse_args()
    metrics = args.metrics.split(",")
    reps = 2 if args.quick else 6
    sizes = (20, 100) if args.quick else (20, 50, 200)
    t0 = time.perf_counter()
    print(f"# replicate calibration ({platform.machine()}, {os.cpu_count()} cpus, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; {'--quick' if args.quick else 'full'})")
    if not args.skip_synthetic:
        pop = Synthetic()
        if args.part in ("band", "both"):
            rows = {}
            for n in sizes:
                def fresh(r: int, n: int = n) -> list[tuple[np.ndarray, np.ndarray]]:
                    rng = np.random.default_rng([n, r])
                    return [pop.experiment(n, 4 * n, rng) for _ in range(4)]
                rows[n] = band_vs_fresh(fresh, pop.genes, reps, metrics, replicate=args.replicate)
            print_band(f"synthetic, {args.replicate}: band std vs fresh experiments (4 experiments x {reps} batches per size; controls 4 n)", rows, metrics)
        if args.part in ("perfect", "both"):
            for n in sizes:
                res = []
                for r in range(reps):
                    rng = np.random.default_rng([7, n, r])
                    x, cond = pop.experiment(n, 4 * n, rng)
                    xm = np.concatenate([pop.draw(p, n, rng) for p in pop.perts])
                    cm = np.array([p for p in pop.perts for _ in range(n)], dtype=object)
                    res.append(perfect(x, cond, xm, cm, pop.genes, metrics, seed=r))
                print_perfect(f"synthetic, perfect model, n = {n} cells per perturbation, {4 * n} controls", res, metrics)
        print(f"\n(synthetic: {time.perf_counter() - t0:.0f} s)")
    if not args.skip_real:
        t1 = time.perf_counter()
        x, cond, genes = papalexi(args.data)
        if args.part in ("band", "both"):
            rows = {}
            for n in ((25, 100) if args.quick else (25, 50, 100)):
                def disjoint(r: int, n: int = n) -> list[tuple[np.ndarray, np.ndarray]]:
                    parts = disjoint_experiments(cond, 4, n, min(4 * n, 480), np.random.default_rng([n, r]))
                    return [(x[p], cond[p]) for p in parts]
                rows[n] = band_vs_fresh(disjoint, genes, reps, metrics, replicate=args.replicate)
            print_band(f"papalexi, {args.replicate}: band std vs 4 disjoint experiments ({reps} partitions per size; perturbations with >= 4 n "
                       "cells; controls min(4 n, 480))", rows, metrics)
        if args.part in ("perfect", "both"):
            for n in ((50,) if args.quick else (50, 200)):
                res = []
                for r in range(reps):
                    truth_ix, model_ix = disjoint_experiments(cond, 2, n, 900, np.random.default_rng([9, n, r]))
                    model_ix = model_ix[cond[model_ix] != "control"]
                    res.append(perfect(x[truth_ix], cond[truth_ix], x[model_ix], cond[model_ix], genes, metrics, seed=r))
                print_perfect(f"papalexi, perfect model (disjoint cells), n = {n} per perturbation, 900 controls", res, metrics)
        print(f"\n(papalexi: {time.perf_counter() - t1:.0f} s)")


if __name__ == "__main__":
    main()
