"""distgen's PerturbDiff side of ``vs_official.py`` from another source tree: CPU seconds before and after a change.

Runs in this process with 1 thread and denormals flushed, imports ``distgen`` from ``--tree`` (for
example ``git archive <commit> | tar -x -C /tmp/base``) and the benchmark code from this checkout,
and prints one JSON line: the median CPU seconds (``time.process_time``) per training step (a pair
with and without self-conditioning, as ``vs_official.py`` times it) or per sampling run, after one
warm-up. Run it once per tree, alternating, and compare the medians::

    python benchmarks/ab_trees.py --tree /tmp/base --row pd-official
    python benchmarks/ab_trees.py --tree . --row pd-official
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", type=Path, required=True, help="source tree whose distgen package is measured")
    p.add_argument("--row", default="pd-official", help="a PerturbDiff row of vs_official.py (pd-official, pd-reduced, pd-sampling)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    root = str(args.tree.resolve())
    sys.path.insert(0, root)
    import distgen

    if not str(Path(distgen.__file__).resolve()).startswith(root):
        p.error(f"distgen was imported from {distgen.__file__}, not from --tree {root}")
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    spec = importlib.util.spec_from_file_location("vs_official_here", HERE / "vs_official.py")
    assert spec is not None and spec.loader is not None
    vs = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = vs
    spec.loader.exec_module(vs)
    row = vs.ROWS[args.row]
    if row.model != "perturbdiff":
        p.error(f"--row {args.row} is not a PerturbDiff row")
    batches = vs.draw_data(row, row.shape.cells, 4)["batches"]
    side = vs.DistgenPerturbDiff(row.shape)
    cpu = []
    for i in range(args.repeats + 1):
        c0 = time.process_time()
        if row.task == "train":
            side.train_step(batches[i % 4], True)
            side.train_step(batches[(i + 1) % 4], False)
            per = 2
        else:
            side.sample(batches[0])
            per = 1
        if i:
            cpu.append((time.process_time() - c0) / per)
    print(json.dumps({"tree": root, "row": args.row, "cpu_median": statistics.median(cpu), "cpu": cpu}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
