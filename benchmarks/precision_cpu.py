"""distgen's own training step in fp32 against bf16 autocast, alternating in one process (CPU, 1 thread).

For each row of ``benchmarks/vs_official.py`` asked for (its shapes, pre-drawn batches and distgen side), the
step is timed in rounds that alternate fp32 and bf16 (``fp32, bf16``, then ``bf16, fp32``, ...); each round's
value is the median CPU time (``time.process_time``) of its steps after the first, and the table gives the
median over rounds and the ratio. A PerturbDiff step is the mean of a pair (with and without the
self-conditioning pass), as in ``vs_official``. bf16 pays off only on CPUs that multiply bfloat16 natively
(AVX512_BF16 or AMX); the header says whether this one does.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.precision_cpu --rows pd-official pd-reduced reduced
    OMP_NUM_THREADS=1 python -m benchmarks.precision_cpu --rows paper --steps 2 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from benchmarks import vs_official as V


def time_row(name: str, steps: int, rounds: int) -> dict[str, Any]:
    row = V.ROWS[name]
    data = V.draw_data(row, row.shape.cells, 4)
    pd = row.model == "perturbdiff"
    sub: Any = V.DistgenPerturbDiff(row.shape, row.overrides) if pd else V.DistgenScdfm(row.shape, data["graph"], row.grid, None, row.overrides)
    per_round: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(rounds):
        for precision in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            sub.precision = precision
            times = []
            for i in range(steps + 1):  # the first step of each block warms up
                b = data["batches"][i % len(data["batches"])]
                t0 = time.process_time()
                if pd:
                    sub.train_step(b, True)
                    sub.train_step(b, False)
                else:
                    sub.train_step(b)
                times.append((time.process_time() - t0) / (2 if pd else 1))
            per_round[precision].append(statistics.median(times[1:]))
    fp32, bf16 = statistics.median(per_round["fp32"]), statistics.median(per_round["bf16"])
    return {"row": name, "label": row.label, "fp32": fp32, "bf16": bf16, "rounds": per_round}


def main(argv: list[str] | None = None) -> int:
    import torch

    from distgen.train.device import cpu_has_native_bf16

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=["pd-official", "pd-reduced", "reduced"], choices=sorted(V.ROWS))
    p.add_argument("--steps", type=int, default=3, help="timed steps per block (after one warm-up step)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    print(f"{V.hardware()}; native bfloat16: {'yes' if cpu_has_native_bf16() else 'no'}; load before {V.loadavg()}", flush=True)
    print("| figure | fp32 (CPU s) | bf16 (CPU s) | fp32 / bf16 |\n|---|---:|---:|---:|", flush=True)
    for name in args.rows:
        r = time_row(name, args.steps, args.rounds)
        print(f"| {r['label']} | {r['fp32']:.3f} | {r['bf16']:.3f} | {r['fp32'] / r['bf16']:.2f}x |", flush=True)
    print(f"load after {V.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
