"""Largest disagreement between distgen and cell-eval2 0.20.0, per metric, on the real-data parity pairs.

Runs ``cell-eval2 run`` (and ``baseline`` / ``run --anchor`` / ``score`` for the vcc2026 score) on the
pairs of ``benchmarks/celleval2_pairs.py``, one thread, and distgen's profiles on the same files;
prints a markdown table: metric, max |difference| over every perturbation and the aggregate, and the
pairs it was measured on.

    python -m benchmarks.celleval2_parity --shared-data ../shared/data [--out /tmp/ce2parity]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

CASES = [("papalexi", "celleval2"), ("papalexi", "vcc2026"), ("kang", "celleval2"), ("kang", "vcc2026"),
         ("norman", "cell-eval-0.7.6")]
NO_TARGETS = {"kang"}


def _cli(*args: str) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "cell-eval2")
    threads = [] if args[0] == "score" else ["--set", "num_threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([exe, *args, *threads], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])


def main(argv: list[str] | None = None) -> int:
    import polars as pl

    from benchmarks.celleval2_pairs import CONTROL, COUNTS, PERT_COL, make_pair
    from distgen.evaluation.profiles import run_profile
    from distgen.evaluation.vcc2026 import SCORED, vcc2026_score
    from distgen.pipeline.evaluate import load_pair

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="ce2parity")
    os.makedirs(out, exist_ok=True)
    pairs = {name: make_pair(name, args.shared_data, out) for name in sorted({n for n, _ in CASES})}
    worst: dict[str, float] = defaultdict(float)
    where: dict[str, set[str]] = defaultdict(set)
    for pair, profile in CASES:
        pred, real = pairs[pair]
        folder = os.path.join(out, f"{pair}_{profile}")
        prof_args = ["--profile", "full"] if profile == "celleval2" else ["--preset", profile]
        _cli("run", "-ap", pred, "-ar", real, *prof_args, "-o", folder, *(["--no-target-genes"] if pair in NO_TARGETS else []))
        res = pl.read_csv(os.path.join(folder, "results.csv"), schema_overrides={"perturbation": pl.Utf8})
        agg = pl.read_csv(os.path.join(folder, "agg_results.csv")).filter(pl.col("statistic") == "mean")
        data, _ = load_pair(pred, real, PERT_COL, CONTROL, scale="counts" if COUNTS[pair] else "lognorm")
        table = run_profile(data, profile)
        for name in agg.columns[1:]:
            rows = res.filter(pl.col("metric") == name)
            ref = dict(zip(rows["perturbation"].to_list(), rows["value"].to_list()))
            diffs = [abs(float(agg[name][0]) - table.mean(name))] if agg[name][0] is not None and not math.isnan(table.mean(name)) else []
            for p, v in zip(table.perts, table.values[name]):
                r = ref.get(p)
                if r is not None and not math.isnan(r) and not math.isnan(v):
                    diffs.append(abs(r - v))
                elif rows.height and (r is None or math.isnan(r)) != math.isnan(v):
                    diffs.append(math.inf)  # a NaN in one only
            worst[name] = max(worst[name], max(diffs, default=0.0))
            where[name].add(f"{pair}/{profile}")
    for pair in ("papalexi", "kang"):
        pred, real = pairs[pair]
        extra = ["--no-target-genes"] if pair in NO_TARGETS else []
        run, base = os.path.join(out, f"{pair}_run"), os.path.join(out, f"{pair}_base")
        _cli("baseline", "-ar", real, "--preset", "vcc2026", "-o", base, *extra)
        _cli("run", "-ap", pred, "-ar", real, "--preset", "vcc2026", "--anchor", "-o", run, *extra)
        score_csv = os.path.join(out, f"{pair}_score.csv")
        _cli("score", "--user-agg", os.path.join(run, "agg_results.csv"), "--baseline-agg", os.path.join(base, "baseline_agg.csv"),
             "--anchor", run, "-o", score_csv)
        ref = pl.read_csv(score_csv)
        data, _ = load_pair(pred, real, PERT_COL, CONTROL, scale="counts")
        ours = vcc2026_score(data, control_label=CONTROL)
        for name, theirs in zip(ref["metric"].to_list(), ref["from_replicate"].to_list()):
            mine = ours.avg_score if name == "avg_score" else ours.from_replicate[name]
            key = f"vcc2026 score: {name}" if name in SCORED else "vcc2026 score: avg_score"
            worst[key] = max(worst[key], abs(mine - theirs))
            where[key].add(pair)
    print("| metric | max abs difference | measured on |")
    print("|---|---|---|")
    for name in sorted(worst, key=lambda n: (n.startswith("vcc2026 score"), n)):
        print(f"| `{name}` | {worst[name]:.1e} | {', '.join(sorted(where[name]))} |")
    return 0 if all(v < 1e-6 for v in worst.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
