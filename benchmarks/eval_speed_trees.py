"""CPU seconds of ``distgen evaluate --profile celleval2`` for several source trees, alternating, 1 thread.

For a before/after of a change to the evaluation code on the pair files of ``benchmarks.eval_speed_ce2``
(``{pair}_pred.h5ad``, ``{pair}_real.h5ad`` in ``--work``). Each round, for each tree in turn
(``PYTHONPATH`` = the tree): *warm*, a fresh process that imports numba and cell-eval2 (as
``eval_speed_ce2``'s warm runs do, so the compiled rank-sum kernels are used), calls
``run_profile(load_pair(...), "celleval2")`` twice untimed, then ``--repeats`` times, and reports the
median process CPU time; *cold*, the command a user runs (numba not loaded: numpy rank sums).
Reported: per tree and pair the median over rounds, with the load average.

    python -m benchmarks.eval_speed_trees --work DIR --trees /work/main,. [--rounds 3] [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.eval_speed_ce2 import NO_TARGET_GENES, THREADS, loadavg

WARM = """
import json, statistics, sys, time, torch
torch.set_num_threads(1); torch.set_flush_denormal(True)
import numba, cell_eval2  # noqa: F401
from distgen.evaluation.profiles import run_profile
from distgen.pipeline.evaluate import load_pair
pred, real, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
def once(): run_profile(load_pair(pred, real, "target", "non-targeting", scale="counts")[0], "celleval2")
once(); once()
times = []
for _ in range(repeats):
    c = time.process_time(); once(); times.append(time.process_time() - c)
print(json.dumps(statistics.median(times)))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def warm(tree: str, pred: str, real: str, repeats: int) -> float:
    """Median in-process CPU seconds of one ``celleval2`` evaluation with ``tree``'s code."""
    env = {**os.environ, **THREADS, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run([sys.executable, "-c", WARM, os.path.abspath(pred), os.path.abspath(real), str(repeats)], env=env, check=True,
                         capture_output=True, text=True, cwd=tree)  # python -c puts the working directory first on sys.path
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def _knows_no_target_genes(tree: str) -> bool:
    """Whether ``tree``'s ``distgen evaluate`` has ``--no-target-genes`` (trees before it score such pairs without it)."""
    path = os.path.join(tree, "distgen", "commands", "evaluate.py")
    return os.path.exists(path) and "--no-target-genes" in Path(path).read_text()


def cold(tree: str, pred: str, real: str, out: str, no_target_genes: bool = False) -> float:
    """CPU seconds (user + system) of ``distgen evaluate --profile celleval2`` run as a fresh process with ``tree``'s code."""
    env = {**os.environ, **THREADS, "PYTHONPATH": os.path.abspath(tree)}
    exe = os.path.join(os.path.dirname(sys.executable), "distgen")
    flag = ["--no-target-genes"] if no_target_genes and _knows_no_target_genes(tree) else []
    c = _children_cpu()
    subprocess.run([exe, "evaluate", "--profile", "celleval2", "--pred", pred, "--real", real, "--pert-col", "target",
                    "--control", "non-targeting", "--out", out, "--quiet", "--overwrite", *flag],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _children_cpu() - c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="folder with the pair files of benchmarks.eval_speed_ce2")
    ap.add_argument("--trees", required=True, help="comma-separated source trees (each a checkout with distgen/)")
    ap.add_argument("--pairs", default="papalexi,kang")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    trees, pairs = args.trees.split(","), args.pairs.split(",")
    runs: dict[tuple[str, str, str], list[float]] = {}
    load = [loadavg()]
    for _ in range(args.rounds):
        for pair in pairs:
            pred, real = (os.path.join(args.work, f"{pair}_{s}.h5ad") for s in ("pred", "real"))
            for i, tree in enumerate(trees):
                runs.setdefault((pair, tree, "warm"), []).append(warm(tree, pred, real, args.repeats))
                runs.setdefault((pair, tree, "cold"), []).append(cold(tree, pred, real, os.path.join(args.work, f"trees_{i}_{pair}"),
                                                                      pair in NO_TARGET_GENES))
    load.append(loadavg())
    print("| pair | tree | warm CPU s (median of rounds) | cold CPU s |")
    print("|---|---|---|---|")
    for pair in pairs:
        for tree in trees:
            w, c = (statistics.median(runs[(pair, tree, k)]) for k in ("warm", "cold"))
            print(f"| {pair} | {tree} | {w:.3f} | {c:.2f} |")
    print(f"\nload average {load[0]} -> {load[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
