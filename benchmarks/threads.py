"""Training speed under each CPU threading setup, on a machine as found and with two busy-loop processes.

What ``distgen.runtime`` chooses (``OMP_WAIT_POLICY=PASSIVE``, intra-op threads bounded by the usable
CPUs) against torch's defaults (spinning OpenMP threads, one per core) and one thread. Each setup
trains a small preset for a fixed number of steps in a fresh process (random batches of the
preset's shape over the bundled Norman panel's 500 genes, AdamW); setups alternate within each
round, and the table reports the median wall time over rounds with the load average. The loaded
condition starts two processes that spin on the CPU for the whole measurement (stopped after).

Usage::

    python benchmarks/threads.py                      # perturbdiff-small and scdfm-small, 3 rounds
    python benchmarks/threads.py --write-docs         # ... into docs/benchmarks.md
    python benchmarks/threads.py --steps 2 --rounds 1 --presets perturbdiff-small --loads idle   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SECTION = "## Threading: training speed on an idle and on a busy CPU"
ROOT = Path(__file__).resolve().parent.parent

#: setup key -> (label, environment changes; None removes the variable)
SETUPS: dict[str, tuple[str, dict[str, str | None]]] = {
    "distgen": ("distgen default", {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": None, "DISTGEN_THREADING": None}),
    "torch": ("torch defaults (OpenMP threads spin)", {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": None, "DISTGEN_THREADING": "off"}),
    "passive": ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": None, "DISTGEN_THREADING": "off"}),
    "1thread": ("1 thread", {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": "1", "GOMP_SPINCOUNT": None, "DISTGEN_THREADING": "off"}),
    "spin1k": ("GOMP_SPINCOUNT=1000", {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": "1000", "DISTGEN_THREADING": "off"}),
    "spin10k": ("GOMP_SPINCOUNT=10000", {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": "10000", "DISTGEN_THREADING": "off"}),
    "spin100k": ("GOMP_SPINCOUNT=100000", {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": None, "GOMP_SPINCOUNT": "100000", "DISTGEN_THREADING": "off"}),
}
DEFAULT_SETUPS = ("distgen", "torch", "passive", "1thread")


def worker(preset: str, steps: int) -> dict[str, Any]:
    """Train ``preset`` for ``steps`` steps in this process; seconds of the steps after a warm-up."""
    import importlib

    importlib.import_module("distgen")  # before torch: importing distgen sets the wait policy (unless switched off)
    import torch

    from benchmarks.harness.models import build, preset_shape, random_batch, synthetic_info, training_step
    from distgen.runtime import apply_threads

    threads = apply_threads()
    torch.set_flush_denormal(True)
    info = synthetic_info(500)
    m, sets = preset_shape(preset)
    model = build(preset, info)
    model.train()
    step, _ = training_step(model, [random_batch(info, sets, m, seed=s) for s in range(4)], torch.device("cpu"))

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    return {"seconds": time.perf_counter() - t0, "threads": threads, "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "spincount": os.environ.get("GOMP_SPINCOUNT")}


def run_setup(name: str, preset: str, steps: int, timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    for k, v in SETUPS[name][1].items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, __file__, "--worker", preset, str(steps)], capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for load in args.loads:
        spinners: list[subprocess.Popen[bytes]] = []
        if load == "busy":
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
            time.sleep(2)
        try:
            before = loadavg()
            for preset in args.presets:
                names = list(args.setups)
                res: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
                for r in range(args.rounds):
                    for name in names if r % 2 == 0 else names[::-1]:
                        out = run_setup(name, preset, args.steps, args.timeout)
                        print(json.dumps({"load": load, "preset": preset, "setup": name, **out}), flush=True)
                        res[name].append(out)
                for name in names:
                    ok = [o for o in res[name] if "seconds" in o]
                    rows.append({"load": load, "preset": preset, "setup": name, "seconds": statistics.median(o["seconds"] for o in ok) if ok else None,
                                 "runs": [o["seconds"] for o in ok], "threads": ok[0]["threads"] if ok else None,
                                 "error": None if ok else res[name][0].get("error")})
            after = loadavg()
            for row in rows:
                if row["load"] == load:
                    row["loadavg"] = f"{before} -> {after}"
        finally:
            for p in spinners:
                p.terminate()
            for p in spinners:
                p.wait()
    return rows


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    import datetime
    import platform

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [SECTION, "",
             f"Wall time of {args.steps} training steps (after 2 warm-up steps) of each preset, random batches of the preset's shape over "
             f"500 genes, AdamW; median of {args.rounds} alternating rounds, one fresh process per run. `busy`: {args.busy} extra "
             f"processes spin on the CPU during the runs. Hardware: {platform.machine()}, {cpus} usable CPUs. Measured "
             f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Command: `{command}`.", "",
             "| load | load average (1, 5, 15 min) | preset | setup | threads | seconds (runs) | vs the best setup |", "|---|---|---|---|---:|---:|---:|"]
    for row in rows:
        same = [r for r in rows if r["load"] == row["load"] and r["preset"] == row["preset"] and r["seconds"]]
        best = min((r["seconds"] for r in same), default=None)
        ratio = f"{row['seconds'] / best:.2f}x" if best and row["seconds"] else "-"
        secs = f"{row['seconds']:.2f}" if row["seconds"] is not None else f"failed: {row['error']}"
        runs = ", ".join(f"{x:.2f}" for x in row["runs"])
        lines.append(f"| {row['load']} | {row.get('loadavg', '?')} | {row['preset']} | {SETUPS[row['setup']][0]} | {row['threads']} | {secs} ({runs}) | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["perturbdiff-small", "scdfm-small"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--loads", nargs="+", default=["idle", "busy"], choices=["idle", "busy"])
    p.add_argument("--busy", type=int, default=2, help="busy-loop processes in the busy condition")
    p.add_argument("--setups", nargs="+", default=list(DEFAULT_SETUPS), choices=list(SETUPS))
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return 0
    rows = measure(args)
    block = markdown(rows, args, "python benchmarks/threads.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(block)
    if args.write_docs:
        from benchmarks.pad_memory import update_section

        update_section(block, args.docs, SECTION)
    return 0 if all(r["seconds"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
