"""How often does distgen claim a win when there is none? Seeded simulations under the null, through the real entry points.

``python benchmarks/null_claims.py [--reps N]`` (about a minute at the default on one thread). Every situation is one
where the two sides are equally good by construction, so every "winner" distgen names is a false claim:

* ``distgen compare`` (``distgen.evaluation.compare.compare`` on two evaluation folders written like ``distgen evaluate``'s):
  two models whose per-perturbation scores are the same truth-driven value plus independent noise, 9 metrics (correlated
  through the shared perturbation effect), 2-25 perturbations; the rate of a named winner per metric, of at least one
  winner among the 9, and of at least one that survives the Holm adjustment ``compare`` reports for the 9;
* the evaluation page's summary table (``distgen.report.page``): the rate at which a metric's model cell is painted
  "the model beats the best baseline", before (by the larger mean alone) and now (by the paired verdict);
* the sweep's test over seeds (``distgen.pipeline.aggregate.paired_comparison``): its p against ``scipy.stats.ttest_rel``
  of the per-seed means, the rate of p < 0.05 at 2-5 seeds, and how often the page's interval of the per-seed differences
  (``distgen.report.sweep``) disagrees with that test (p < 0.05 but the interval holds 0, or the reverse), for the
  bootstrap interval drawn before and the Student t interval drawn now;
* coverage of the intervals (``bootstrap_ci`` / ``mean_ci``) of the mean over 2-8 conditions, normal and lognormal
  scores, against ``scipy.stats.t.interval`` and ``scipy.stats.bootstrap`` (BCa);
* ``verdict``'s ``negligible`` (no practical difference) when the true difference is at, or 1.5-2 times, the margin;
* the normalised score's interval (``intervals.normalised_interval``, ``summary.json`` ``normalised_ci``): its coverage of a
  known score of 0.5, and how large the score printed before is when the ceiling - baseline gap is 0 (no scale).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

#: Nine metric columns; names no registry holds, so their direction comes from summary.json and no bounds cut the values.
METRICS = tuple(f"score{i}" for i in range(9))


def _folder(path: Path, perts: list[str], values: dict[str, np.ndarray]) -> Path:
    path.mkdir(parents=True)
    names = list(values)
    lines = ["perturbation,context,n_cells_real,n_cells_pred," + ",".join(names)]
    for i, p in enumerate(perts):
        lines.append(f"{p},,10,10," + ",".join(repr(float(values[n][i])) for n in names))
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    meta = {n: {"higher_is_better": i % 2 == 0} for i, n in enumerate(names)}
    (path / "summary.json").write_text(json.dumps({"metrics": meta}))
    return path


def compare_null(reps: int) -> None:
    from distgen.evaluation.compare import compare

    print(f"## distgen compare, two equally good models, {len(METRICS)} metrics ({reps} repetitions each)\n")
    print("| perturbations | winner named, per metric | at least one winner of 9 | one surviving Holm |\n|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 6, 10, 25):
        per_metric = any_win = holm = 0
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(reps):
                perts = [f"p{i}" for i in range(n)]
                effect = rng.normal(size=(n, 1)) * np.ones((1, len(METRICS)))  # the perturbation's difficulty: all metrics
                sides = [effect + rng.normal(size=(n, len(METRICS))) for _ in range(2)]
                a, b = (_folder(Path(tmp) / f"{r}{s}", perts, {m: sides[k][:, j] for j, m in enumerate(METRICS)})
                        for k, s in enumerate("ab"))
                res = compare(a, b, seed=r, n_boot=200)
                wins = [m for m, row in res["metrics"].items() if row["better"]]
                per_metric += len(wins)
                any_win += bool(wins)
                holm += bool(res.get("holm_winners"))
        print(f"| {n} | {per_metric / (reps * len(METRICS)):.1%} | {any_win / reps:.1%} | {holm / reps:.1%} |")


def page_colour_null(reps: int) -> None:
    from distgen.evaluation.uncertainty import margin, paired_test, verdict

    print(f"\n## the page's summary table: model cell painted 'beats the best baseline' under the null ({reps} repetitions)\n")
    print("| perturbations | by the larger mean (before) | by the paired verdict (now) |\n|---|---|---|")
    rng = np.random.default_rng(1)
    for n in (3, 10, 25):
        mean_rule = verdict_rule = 0
        for r in range(reps):
            effect = rng.normal(size=n)
            model, base = effect + rng.normal(size=n), effect + rng.normal(size=n)  # higher is better
            mean_rule += model.mean() > base.mean()
            test = paired_test(model, base, n_boot=200, seed=r)
            width, _ = margin([model.mean(), base.mean()])
            verdict_rule += verdict(test, True, width, 0.05)[0] == "a"
        print(f"| {n} | {mean_rule / reps:.1%} | {verdict_rule / reps:.1%} |")


def sweep_null(reps: int) -> None:
    from scipy.stats import ttest_rel

    from distgen.evaluation.intervals import bootstrap_ci, mean_interval
    from distgen.pipeline.aggregate import paired_comparison, seed_means

    print(f"\n## sweep test over seeds, equal variants, 20 perturbations, seed effect 0.5 x noise ({reps} repetitions)\n")
    print("| seeds | p < 0.05 | max abs(p - scipy ttest_rel) | interval disagrees with p: bootstrap (before) | t (now) |\n"
          "|---|---|---|---|---|")
    rng = np.random.default_rng(2)
    for seeds in (2, 3, 4, 5, 8):
        hits, worst, dis_boot, dis_t = 0, 0.0, 0, 0
        for _ in range(reps):
            rows = []
            for variant in ("ref", "var"):
                offset = rng.normal(0.0, 0.5, seeds)
                for s in range(seeds):
                    rows += [{"variant": variant, "seed": s, "perturbation": f"p{p}", "mse": float(offset[s] + rng.normal())}
                             for p in range(20)]
            c = paired_comparison(rows, "var", "ref", "mse")
            sm = seed_means(rows, "mse")
            ref = ttest_rel([sm["var"][s] for s in range(seeds)], [sm["ref"][s] for s in range(seeds)]).pvalue
            worst = max(worst, abs(c.p_value - ref))
            sig = c.p_value < 0.05
            hits += sig
            d = [sm["var"][s] - sm["ref"][s] for s in range(seeds)]
            lo, hi = bootstrap_ci(d, seed=0)
            dis_boot += sig == (lo <= 0 <= hi)
            lo, hi = mean_interval(d, unit="seed")
            dis_t += sig == (lo <= 0 <= hi)
        print(f"| {seeds} | {hits / reps:.1%} | {worst:.1e} | {dis_boot / reps:.1%} | {dis_t / reps:.1%} |")


def coverage(reps: int) -> None:
    from scipy import stats

    from distgen.evaluation.intervals import bootstrap_ci

    print(f"\n## coverage of the nominal 95% interval of a mean over few conditions ({reps} repetitions; binomial sd "
          f"{math.sqrt(0.05 * 0.95 / reps):.1%})\n")
    print("| conditions | scores | distgen bootstrap_ci | scipy t.interval | scipy bootstrap (BCa) |\n|---|---|---|---|---|")
    rng = np.random.default_rng(3)
    for n in (2, 3, 4, 5, 8):
        for dist, mu in (("normal", 0.0), ("lognormal", math.exp(0.5))):
            ours = tee = bca = 0
            for i in range(reps):
                v = rng.normal(size=n) if dist == "normal" else rng.lognormal(size=n)
                lo, hi = bootstrap_ci(v, seed=i)
                ours += lo <= mu <= hi
                lo, hi = stats.t.interval(0.95, n - 1, loc=v.mean(), scale=stats.sem(v))
                tee += lo <= mu <= hi
                with np.errstate(all="ignore"):
                    ci = stats.bootstrap((v,), np.mean, n_resamples=500, method="BCa", random_state=i).confidence_interval
                bca += bool(ci.low <= mu <= ci.high)
            print(f"| {n} | {dist} | {ours / reps:.1%} | {tee / reps:.1%} | {bca / reps:.1%} |")


def normalised_null(reps: int) -> None:
    from distgen.evaluation.intervals import normalised_interval

    print(f"\n## normalised score: coverage of normalised_ci and the scale-less case ({reps} repetitions)\n")
    print("| perturbations | true gap / per-perturbation sd | true score | stable | coverage when stable | "
          "abs(score) when not stable: median, 90th percentile, max |\n|---|---|---|---|---|---|")
    rng = np.random.default_rng(4)
    for n in (10, 25):
        for gap in (1.0, 0.3, 0.0):
            stable = covered = 0
            wild = []
            for i in range(reps):
                b = rng.normal(size=n)
                c = b + gap + rng.normal(0, 1.0, n)  # higher is better: the ceiling above the baseline by `gap`
                m = b + 0.5 * gap + rng.normal(0, 1.0, n)  # halfway: a true score of 0.5 where gap > 0
                res = normalised_interval(m, b, c, n_boot=400, seed=i)
                if res["stable"]:
                    stable += 1
                    covered += res["ci"][0] <= 0.5 <= res["ci"][1]
                else:
                    wild.append(abs((m - b).mean() / (c - b).mean()))
            cov = f"{covered / stable:.1%}" if stable and gap else "-"  # no true score without a gap
            med = (f"{np.median(wild):.2g}, {np.quantile(wild, 0.9):.2g}, {np.max(wild):.3g}") if wild else "-"
            print(f"| {n} | {gap} | {'0.5' if gap else 'none'} | {stable / reps:.1%} | {cov} | {med} |")


def negligible_claims(reps: int) -> None:
    from distgen.evaluation.uncertainty import paired_test, verdict

    print(f"\n## verdict 'negligible' when the true paired difference is at or above the margin ({reps} repetitions)\n")
    print("| perturbations | true difference / margin | rate of 'negligible' |\n|---|---|---|")
    rng = np.random.default_rng(5)
    width = 0.1
    for n in (10, 25, 100):
        for ratio in (1.0, 1.5, 2.0):
            said = 0
            for i in range(reps):
                d = rng.normal(ratio * width, 0.2, n)  # per-perturbation noise twice the margin
                said += verdict(paired_test(d, np.zeros(n), n_boot=200, seed=i), True, width, 0.05)[0] == "negligible"
            print(f"| {n} | {ratio} | {said / reps:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    args = ap.parse_args()
    t0 = time.perf_counter()
    compare_null(args.reps // 2)
    page_colour_null(args.reps)
    sweep_null(args.reps)
    coverage(args.reps)
    normalised_null(args.reps)
    negligible_claims(args.reps)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
