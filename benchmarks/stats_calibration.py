"""Are distgen's statistical statements calibrated? Seeded simulations where the truth is known.

Synthetic part (seconds; ``python benchmarks/stats_calibration.py``):

* ``bootstrap_ci`` (``summary.json`` ``model_ci``, the ``ci`` of ``paired_test`` / ``distgen compare``, the report's
  intervals): how often a nominal 95% interval of the mean over perturbations covers the true mean, for the
  studentized bootstrap distgen uses and the percentile bootstrap it used before, at 5-50 perturbations of
  normal and of right-skewed (lognormal) scores;
* ``paired_test``'s two-sided Wilcoxon p (``vs_strongest_baseline``, ``distgen compare``): the rate of p < 0.05 for
  two equally good models (per-perturbation scores of independent draws: normal, heavy-tailed t3, and integer
  scores with many ties), and the power for a paired difference of 0.5 sd;
* the sweep's paired test (``distgen.pipeline.aggregate.paired_comparison``) when every trained run carries its
  own offset (a seed effect of ``seed_sd`` times the per-perturbation noise), equally good variants.

Real-data part (``--real N``; about 8 s a repetition on one thread): the papalexi THP-1 panel (25 knock-outs,
``assignment_confident`` cells, log1p of counts per 10k) split per condition into three disjoint thirds: the truth
and two "models" that are fresh draws of real cells (perfect, and equally good). Per repetition, ``paired_test`` of
the two models on every per-perturbation, non-diagnostic metric of the default suite; the rate of p < 0.05 per
metric and for "any metric" (no adjustment for the number of metrics). ``--perfect`` also scores one such perfect
model with ``distgen.evaluation.score`` (``control`` baseline, 5 ceiling splits; ``--replicate extrapolated`` for the
depth-corrected ceiling) and prints its normalised scores. How the replicate itself is calibrated (its band against
fresh replicates, each replicate against a perfect model at several depths): ``benchmarks/replicate_calibration.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def percentile_ci(v: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval distgen reported before (for comparison only)."""
    means = v[np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def coverage(reps: int) -> None:
    from distgen.evaluation.intervals import bootstrap_ci

    print(f"## bootstrap_ci coverage of the true mean (nominal 95%, {reps} repetitions each; binomial sd "
          f"{math.sqrt(0.05 * 0.95 / reps):.1%})\n")
    print("| perturbations | scores | percentile (before) | studentized (now) |\n|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (5, 10, 25, 50):
        for dist, mu in (("normal", 0.0), ("lognormal", math.exp(0.5))):
            draws = [rng.normal(size=n) if dist == "normal" else rng.lognormal(size=n) for _ in range(reps)]
            old = np.mean([lo <= mu <= hi for lo, hi in (percentile_ci(v, seed=i) for i, v in enumerate(draws))])
            new = np.mean([lo <= mu <= hi for lo, hi in (bootstrap_ci(v, seed=i) for i, v in enumerate(draws))])
            print(f"| {n} | {dist} | {old:.1%} | {new:.1%} |")


def wilcoxon_null(reps: int) -> None:
    from distgen.evaluation.uncertainty import paired_test

    print(f"\n## paired_test: rate of Wilcoxon p < 0.05 ({reps} repetitions each; binomial sd "
          f"{math.sqrt(0.05 * 0.95 / reps):.1%})\n")
    print("| perturbations | equal models, normal | equal, t3 | equal, integer 0-3 (ties) | power, difference 0.5 sd |\n"
          "|---|---|---|---|---|")
    rng = np.random.default_rng(1)
    draw = {"normal": lambda n: rng.normal(size=n), "t3": lambda n: rng.standard_t(3, n),
            "ties": lambda n: rng.integers(0, 4, n).astype(float)}
    for n in (6, 10, 25, 100):
        cells = []
        for kind in ("normal", "t3", "ties"):
            p = np.array([paired_test(draw[kind](n), draw[kind](n), n_boot=20, seed=i)["wilcoxon_p"] for i in range(reps)])
            cells.append(f"{np.mean(p < 0.05):.1%}")
        p = np.array([paired_test(rng.normal(0.5, 1.0, n), np.zeros(n), n_boot=20)["wilcoxon_p"] for _ in range(reps)])
        print(f"| {n} | " + " | ".join(cells) + f" | {np.mean(p < 0.05):.1%} |")


def sweep_seed_effect(reps: int) -> None:
    from distgen.pipeline.aggregate import paired_comparison

    print(f"\n## sweep paired test, equal variants, each run offset by a seed effect ({reps} repetitions)\n")
    print("| seeds x perturbations | seed_sd / noise sd | rate of p < 0.05 |\n|---|---|---|")
    rng = np.random.default_rng(2)
    for seeds, perts in ((3, 25), (6, 25)):
        for seed_sd in (0.0, 0.3, 1.0):
            hits = 0
            for _ in range(reps):
                rows = []
                for variant in ("ref", "var"):
                    offset = rng.normal(0.0, seed_sd, seeds)
                    for s in range(seeds):
                        for p in range(perts):
                            rows.append({"variant": variant, "seed": s, "perturbation": f"p{p}",
                                         "mse": float(offset[s] + rng.normal())})
                c = paired_comparison(rows, "var", "ref", "mse")
                hits += c.p_value < 0.05
            print(f"| {seeds} x {perts} | {seed_sd} | {hits / reps:.1%} |")


def papalexi(shared_data: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import anndata as ad
    import scipy.sparse as sp

    a = ad.read_h5ad(os.path.join(shared_data, "papalexi2021_eccite_thp1/papalexi2021_eccite_sceptre_lowmoi.h5ad"))
    a = a[a.obs["assignment_confident"].astype(bool)].copy()
    x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e4).astype(np.float32)
    return x, a.obs["perturbation"].astype(str).to_numpy(), list(a.var_names)


def thirds(cond: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Three disjoint, equal parts of every condition's cells (controls too)."""
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(cond):
        idx = rng.permutation(np.flatnonzero(cond == c))
        k = len(idx) // 3
        for j in range(3):
            parts[j].append(idx[j * k:(j + 1) * k])
    return [np.concatenate(p) for p in parts]


def real(reps: int, perfect: bool, shared_data: str, replicate: str = "half-split") -> None:
    from distgen.evaluation import DEFAULT_METRICS, score
    from distgen.evaluation.intervals import holm
    from distgen.evaluation.io import eval_data
    from distgen.evaluation.metrics import metrics as registry
    from distgen.evaluation.suite import run_metrics
    from distgen.evaluation.uncertainty import paired_test
    from distgen.types import Cells

    x, cond, genes = papalexi(shared_data)

    def cells(ix: np.ndarray, controls: np.ndarray) -> Cells:
        ix = np.concatenate([controls, ix[cond[ix] != "control"]])
        return Cells(x[ix], cond[ix], genes)

    names = [m for m in DEFAULT_METRICS if registry.get(m).capabilities.per_perturbation
             and not registry.get(m).capabilities.diagnostic]
    hits, tested, any_hit, any_holm = dict.fromkeys(names, 0), dict.fromkeys(names, 0), 0, 0
    t0 = time.perf_counter()
    for r in range(reps):
        truth_ix, a_ix, b_ix = thirds(cond, np.random.default_rng(r))
        controls = truth_ix[cond[truth_ix] == "control"]
        truth = cells(truth_ix, controls)
        ta = run_metrics(eval_data(cells(a_ix, controls), truth), names)
        tb = run_metrics(eval_data(cells(b_ix, controls), truth), names)
        rejected = False
        ps = []
        for m in names:
            p = paired_test(ta.values[m], tb.values[m], n_boot=20, seed=r)["wilcoxon_p"]
            if not math.isnan(p):
                tested[m] += 1
                hits[m] += p < 0.05
                rejected |= p < 0.05
                ps.append(p)
        any_hit += rejected
        any_holm += any(q < 0.05 for q in holm(ps))
    if reps:
        total, n = sum(hits.values()), sum(tested.values())
        print(f"\n## papalexi, two perfect models (fresh thirds of the real cells), 25 perturbations, {reps} repetitions "
              f"({time.perf_counter() - t0:.0f} s)\n")
        print(f"- p < 0.05 over all {len(names)} metrics x repetitions: {total}/{n} = {total / max(n, 1):.1%}")
        print(f"- at least one metric with p < 0.05 in a repetition (no multiple-comparison adjustment): "
              f"{any_hit}/{reps} = {any_hit / reps:.0%}")
        print(f"- at least one metric with Holm-adjusted p < 0.05 (the Holm p of distgen compare and summary.md): "
              f"{any_holm}/{reps} = {any_holm / reps:.0%}")
        worst = sorted(names, key=lambda m: -hits[m] / max(tested[m], 1))[:5]
        print("- highest per-metric rates: " + ", ".join(f"{m} {hits[m]}/{tested[m]}" for m in worst))
    if perfect:
        truth_ix, a_ix, _ = thirds(cond, np.random.default_rng(12345))
        controls = truth_ix[cond[truth_ix] == "control"]
        truth = cells(truth_ix, controls)
        per = cond[truth_ix[cond[truth_ix] != "control"]]
        rng = np.random.default_rng(0)
        ctrl_pred = Cells(x[np.concatenate([controls, rng.choice(controls, per.size)])],
                          np.concatenate([cond[controls], per]), genes)
        rep = score(cells(a_ix, controls), truth, {"control": ctrl_pred}, ceiling_splits=5, replicate=replicate)
        print(f"\n## a perfect model (a fresh third of the real cells, as deep as the truth) scored by distgen.evaluation.score, "
              f"{replicate} replicate\n")
        print(f"| metric | model | control baseline | ceiling ({replicate}) | normalised |\n|---|---|---|---|---|")
        for m, row in rep.summary["metrics"].items():
            if row.get("diagnostic"):
                continue
            print(f"| {m} | {row['model']:.4g} | {row['baselines'].get('control', math.nan):.4g} | {row['ceiling']:.4g} | "
                  f"{row['normalised']:.3g}{' (' + row['normalised_note'] + ')' if row['normalised_note'] else ''} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=1000, help="repetitions of the coverage simulation (the tests: 400)")
    ap.add_argument("--real", type=int, default=0, help="repetitions of the papalexi null comparison (~8 s each)")
    ap.add_argument("--perfect", action="store_true", help="score a perfect model on papalexi (normalised scores)")
    ap.add_argument("--replicate", choices=("half-split", "extrapolated"), default="half-split",
                    help="the ceiling's replicate for --perfect (score(..., replicate=...))")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--data", default=os.environ.get("DISTGEN_SHARED_DATA", "../shared/data"),
                    help="the shared data folder (default $DISTGEN_SHARED_DATA, else ../shared/data)")
    args = ap.parse_args()
    if not args.skip_synthetic:
        coverage(args.reps)
        wilcoxon_null(max(args.reps // 2, 100))
        sweep_seed_effect(200)
    if args.real or args.perfect:
        real(args.real, args.perfect, args.data, args.replicate)


if __name__ == "__main__":
    main()
