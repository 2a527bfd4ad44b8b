"""distgen's scDFM training step, eager against ``torch.compile`` of the PAD-Transformer's trunk (CPU, 1 thread).

Each measurement runs in a fresh process (compilation is per process; inductor's on-disk cache makes the
later ones quick), the variants alternate within each round (``eager, compiled, ...``, then reversed), and
each process reports the median CPU time (``time.process_time``) of its steps after the warm-up steps (which
include the compilation, reported apart). Variants: ``eager``; ``compiled``: ``PADTransformer.compile()`` as
``train.compile`` calls it (inductor with ``INDUCTOR_OPTIONS``: tanh decomposed in the C++ kernels);
``compiled-sleef``: inductor as torch ships it (``options={}``: tanh by Sleef's vector tanh).

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.compile_cpu --row reduced --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks import vs_official as V

VARIANTS = ("eager", "compiled", "compiled-sleef")


def measure(row_name: str, variant: str, steps: int, warmup: int) -> dict[str, Any]:
    """One process's figures: warm-up seconds (compilation included) and the median CPU seconds per step."""
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    row = V.ROWS[row_name]
    data = V.draw_data(row, row.shape.cells, 4)
    sub = V.DistgenScdfm(row.shape, data["graph"], row.grid, None, row.overrides)
    if variant == "compiled":
        sub.model.backbone.compile()
    elif variant == "compiled-sleef":
        sub.model.backbone.compile(options={})
    batches = data["batches"]
    torch.manual_seed(1)
    t0 = time.perf_counter()
    for i in range(warmup):
        sub.train_step(batches[i % len(batches)])
    warm = time.perf_counter() - t0
    cpu = []
    for i in range(steps):
        c0 = time.process_time()
        sub.train_step(batches[i % len(batches)])
        cpu.append(time.process_time() - c0)
    return {"variant": variant, "row": row_name, "warmup_s": warm, "cpu_median": statistics.median(cpu), "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--row", default="reduced", choices=sorted(k for k, r in V.ROWS.items() if r.model == "scdfm" and r.task == "train"))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=8, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens in the first)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single measurement, in this process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.row, args.variants[0], args.steps, args.warmup)))
        return 0
    results: dict[str, list[float]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        for variant in args.variants if r % 2 == 0 else args.variants[::-1]:
            load = V.loadavg()
            cmd = [sys.executable, "-m", "benchmarks.compile_cpu", "--one", "--row", args.row, "--variants", variant,
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=V.ROOT)
            out = json.loads(done.stdout.strip().splitlines()[-1])
            results[variant].append(out["cpu_median"])
            print(f"round {r + 1} {variant}: {out['cpu_median']:.3f} CPU s per step (warm-up {out['warmup_s']:.0f} s, load {load})",
                  flush=True)
    print("| variant | CPU s per step, median over rounds | per round |\n|---|---:|---|")
    for v, xs in results.items():
        print(f"| {v} | {statistics.median(xs):.3f} | {' / '.join(f'{x:.3f}' for x in xs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
