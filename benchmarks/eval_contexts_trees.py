"""CPU milliseconds of a ``--celltype-col`` evaluation for several source trees, alternating, 1 thread.

The per-context counterpart of ``benchmarks.eval_speed_trees``, on the ``kang_types`` pair of
``benchmarks.celleval2_pairs.make_context_pair`` (three cell types, each its own pair; log-normalised and raw
counts; written into ``--work`` when missing). Each round, for each tree in turn (``PYTHONPATH`` = the tree), a
fresh process times, in-process, ``load_contexts`` of each pair (every input check) and a whole
``evaluate_profile_files(..., celltype_col=...)`` run (``cell-eval-0.8.2`` on the log pair, ``celleval2`` on the counts
pair; no page): two untimed calls, then the median process CPU time of ``--repeats``.

    python -m benchmarks.eval_contexts_trees --shared-data ../shared/data --work DIR --trees /tmp/base,. [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.eval_speed_ce2 import THREADS, loadavg

WARM = """
import json, statistics, sys, tempfile, time, warnings, torch
torch.set_num_threads(1); torch.set_flush_denormal(True)
warnings.simplefilter("ignore")
from distgen.pipeline.profile_eval import evaluate_profile_files, load_contexts
log, counts, repeats, out = sys.argv[1:3], sys.argv[3:5], int(sys.argv[5]), tempfile.mkdtemp()
keys = ("target", "non-targeting")
fns = {
    "load_contexts log": lambda: load_contexts(*log, "celltype", *keys),
    "load_contexts counts": lambda: load_contexts(*counts, "celltype", *keys, scale="counts"),
    "cell-eval-0.8.2 run": lambda: evaluate_profile_files(*log, out + "/a", "cell-eval-0.8.2", *keys, overwrite=True,
                                                          celltype_col="celltype", page=False),
    "celleval2 run": lambda: evaluate_profile_files(*counts, out + "/b", "celleval2", *keys, overwrite=True, celltype_col="celltype",
                                                    no_target_genes=True, page=False),
}
res = {}
for k, f in fns.items():
    f(); f()
    times = []
    for _ in range(repeats):
        c = time.process_time(); f(); times.append(time.process_time() - c)
    res[k] = round(statistics.median(times) * 1e3, 1)
print(json.dumps(res))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", required=True)
    ap.add_argument("--work", required=True, help="folder for the kang_types pair files (reused when present)")
    ap.add_argument("--trees", required=True, help="comma-separated source trees (each a checkout with distgen/)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    from benchmarks.celleval2_pairs import make_context_pair

    os.makedirs(args.work, exist_ok=True)
    files = []
    for counts in (False, True):
        tag = "kang_types" + ("_counts" if counts else "")
        paths = [os.path.join(args.work, f"{tag}_{s}.h5ad") for s in ("pred", "real")]
        files += paths if all(map(os.path.isfile, paths)) else list(make_context_pair("kang_types", args.shared_data, args.work, counts))
    for _ in range(args.rounds):
        for tree in args.trees.split(","):
            env = {**os.environ, **THREADS, "PYTHONPATH": os.path.abspath(tree)}
            load = loadavg()
            out = subprocess.run([sys.executable, "-c", WARM, *map(os.path.abspath, files), str(args.repeats)], env=env, check=True,
                                 capture_output=True, text=True, cwd=tree)  # python -c puts the working directory first on sys.path
            print(f"{tree} (load {load}): {json.loads(out.stdout.strip().splitlines()[-1])}", flush=True)
    print(f"load average at the end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
