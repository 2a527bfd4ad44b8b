"""One-shot GPU check: both presets at official size, bf16 autocast, ``torch.compile`` off and on, and
the evaluation suite on CUDA tensors; one markdown table. Run by ``benchmarks/gpu_check.sh``.

Per preset and compile setting: the median training-step time (forward, loss, backward, the
trainer's optimizer) under bf16 autocast, cells per second, peak CUDA memory, and model FLOP
utilisation: the FLOPs of the timed steps (``torch.utils.flop_counter``, counted in eager mode over the
same seeded sequence of steps, since a step's FLOPs follow its random draws) per second over the device's
dense bf16 peak (``benchmarks/harness/measure.py``). Shapes: PerturbDiff official
(d=512, depth 8, 2,000 genes, 4 sets x 32 cells); scDFM official (d=512, 4 layers, 1,000 gene tokens
of 5,029, the paper's batch of 48 cells). Then every registered evaluation metric runs on a
prediction/truth pair held as CUDA tensors (seconds per metric, or the error it raised).

A wall-clock budget (default 7.5 minutes) keeps the whole check under 8 minutes: a part that would
start after the budget is reported as skipped. ``--dry-run`` runs everything on the CPU at tiny
shapes in seconds (what CI tests); its compile rows trace with dynamo but generate no kernels
(``backend="eager"``), so they check that the backbones compile without paying inductor's time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness.measure import count_flops, describe, hardware, peak_flops  # noqa: E402
from benchmarks.harness.models import build, random_batch, synthetic_info, training_step  # noqa: E402

#: preset -> (genes, sets, cells per set, overrides, genes_per_step) at official size; the tiny dry-run shapes follow
OFFICIAL: dict[str, dict[str, Any]] = {
    "perturbdiff": {"genes": 2000, "sets": 4, "cells": 32, "overrides": []},
    # no activation checkpointing: the GPU has the memory, and recomputed blocks would count as model FLOPs
    "scdfm": {"genes": 5029, "sets": 1, "cells": 48, "overrides": ["model.genes_per_step=1000", "model.backbone.checkpointing=never"]},
}
#: torch seed before the FLOP count and before the timed steps: both see the same random draws
SEQUENCE_SEED = 1234
TINY: dict[str, dict[str, Any]] = {
    "perturbdiff": {"genes": 24, "sets": 2, "cells": 4, "overrides": ["model.backbone.dim=16", "model.backbone.depth=1", "model.backbone.heads=2"]},
    "scdfm": {"genes": 24, "sets": 1, "cells": 4, "overrides": ["model.backbone.d_model=16", "model.backbone.layers=1", "model.backbone.heads=2",
                                                                 "model.genes_per_step=12", "model.backbone.graph_k=4"]},
}


def batch_sizes(spec: dict[str, Any], sets: list[int] | None) -> list[dict[str, Any]]:
    """``spec`` once per requested number of sets per step (``None``: the official batch only)."""
    if sets is not None and any(n < 1 for n in sets):
        raise ValueError(f"--sets must be positive integers, got {sets}")
    return [spec] if not sets else [{**spec, "sets": n} for n in sets]


def train_row(preset: str, spec: dict[str, Any], device: torch.device, compiled: bool, steps: int, backend: str = "inductor",
              mode: str | None = None) -> dict[str, Any]:
    info = synthetic_info(spec["genes"])
    model = build(preset, info, spec["overrides"], device)
    model.train()
    batches = [random_batch(info, spec["sets"], spec["cells"], seed=s, device=device) for s in range(2)]
    step, _ = training_step(model, batches, device)
    cuda = device.type == "cuda"

    # The step's FLOPs vary with its random draws (PerturbDiff self-conditions half the steps: one more forward
    # pass), so count, in eager mode before compiling, the very steps that are timed below: the same seed, the
    # same sequence of draws (the random state of the model's parameters differs, which changes no FLOP count).
    torch.manual_seed(SEQUENCE_SEED)
    flops = count_flops(lambda: [step(i) for i in range(steps)]) / steps
    if compiled:
        model.backbone.compile(backend=backend, mode=mode)
    t0 = time.perf_counter()
    torch.manual_seed(SEQUENCE_SEED)  # the warm-up is the timed sequence itself: every graph variant it needs is compiled
    for i in range(steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    warm = time.perf_counter() - t0
    times = []
    torch.manual_seed(SEQUENCE_SEED)
    for i in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        step(i)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    rate = flops * steps / sum(times)  # the counted FLOPs of the timed steps over their total time
    peak = peak_flops(device)
    return {
        "preset": preset, "compile": (mode or True) if compiled else False, "genes": spec["genes"], "cells_per_step": spec["sets"] * spec["cells"],
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "step_s": sec, "cells_per_s": spec["sets"] * spec["cells"] / sec,
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None, "tflops": rate / 1e12,
        "mfu": rate / peak if peak else None, "gflop_per_step": flops / 1e9, "warmup_s": warm, "precision": "bf16 autocast" if cuda else "fp32 (CPU dry run)",
    }


def eval_rows(device: torch.device, tiny: bool) -> list[dict[str, Any]]:
    """Every registered metric on a synthetic prediction/truth pair of CUDA (or CPU) tensors."""
    from distgen.evaluation.evaldata import EvalData, Population
    from distgen.evaluation.metrics import metrics

    g = torch.Generator().manual_seed(0)
    perts, genes, cells, n_ctrl = (3, 16, 8, 12) if tiny else (20, 1000, 200, 1000)

    def pop() -> Population:
        x = torch.rand(perts * cells, genes, generator=g) * (torch.rand(perts * cells, genes, generator=g) < 0.4) * 3
        ctrl = torch.rand(n_ctrl, genes, generator=g) * (torch.rand(n_ctrl, genes, generator=g) < 0.4) * 3
        offsets = torch.arange(perts + 1) * cells
        return Population(X=x.to(device), offsets=offsets.to(device), control=ctrl.to(device))

    names = tuple(f"P{i}" for i in range(perts))
    rows = []
    data = EvalData(real=pop(), pred=pop(), perts=names, targets=tuple((f"G{i}",) for i in range(perts)), genes=tuple(f"G{i}" for i in range(genes)))
    for name in metrics.names():  # one EvalData: metrics share its cached means and DE tables, as in distgen evaluate
        t = time.perf_counter()
        try:
            with device:  # tensors a metric makes without naming a device land on the data's device
                res = metrics.get(name)().compute(data)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rows.append({"metric": name, "seconds": time.perf_counter() - t, "device": str(res.values.device), "finite": int(torch.isfinite(res.values).sum())})
        except Exception as exc:
            rows.append({"metric": name, "error": f"{type(exc).__name__}: {str(exc)[:160]}"})
    return rows


def compile_label(row: dict[str, Any]) -> str:
    """``off``, ``on`` or ``on (MODE)`` for a train row's ``compile`` entry (False, True or a torch.compile mode)."""
    c = row["compile"]
    return "off" if not c else "on" if c is True else f"on ({c})"


def markdown(res: dict[str, Any]) -> str:
    lines = ["## GPU check (`benchmarks/gpu_check.sh`)", "", f"Hardware: {res['hardware']}. Command: `{res['command']}`. "
             f"Total {res['total_s']:.0f} s.", "",
             "| preset | torch.compile | precision | cells/step | step (ms) | cells/s | peak memory (GiB) | TFLOP/s | MFU (bf16 peak) | warm-up (s) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["train"]:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['preset']} | {compile_label(r)} | - | {r.get('cells_per_step', '-')} | {r.get('error') or r.get('skipped')} | | | | | |")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        lines.append(f"| {r['preset']} | {compile_label(r)} | {r['precision']} | {r['cells_per_step']} | {1000 * r['step_s']:.1f} | "
                     f"{r['cells_per_s']:.0f} | {peak} | {r['tflops']:.2f} | {mfu} | {r['warmup_s']:.1f} |")
    ok = [r for r in res["evaluation"] if "seconds" in r]
    bad = [r for r in res["evaluation"] if "error" in r]
    lines += ["", f"Evaluation suite on {res['device']} tensors: {len(ok)} of {len(res['evaluation'])} metrics ran, "
              f"{sum(r['seconds'] for r in ok):.2f} s in total" + (f"; failed: {', '.join(r['metric'] + ' (' + r['error'] + ')' for r in bad)}" if bad else "") + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, seconds (what CI runs)")
    p.add_argument("--out", default="gpu_check.md", help="markdown table (a .json with the raw numbers goes next to it)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 10; dry run 1)")
    p.add_argument("--budget", type=float, default=450.0, help="seconds after which remaining parts are skipped")
    p.add_argument("--presets", nargs="+", default=list(OFFICIAL), choices=list(OFFICIAL))
    p.add_argument("--no-compile", action="store_true", help="only the eager rows")
    p.add_argument("--compile-mode", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                   help="torch.compile mode of the compiled rows (reduce-overhead: CUDA graphs)")
    p.add_argument("--sets", type=int, nargs="+", default=None,
                   help="sets per step, one row each (default the official batch): model FLOP utilisation against batch size")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA device; run with --dry-run for the CPU check of the script itself")
    device = torch.device("cpu") if args.dry_run else torch.device("cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.set_flush_denormal(True)
    shapes = TINY if args.dry_run else OFFICIAL
    steps = args.steps or (1 if args.dry_run else 10)
    res: dict[str, Any] = {"hardware": describe(hardware()), "device": device.type, "command": "benchmarks/gpu_check.sh " + " ".join(argv or sys.argv[1:]),
                           "train": [], "evaluation": []}
    mode = None if args.compile_mode in (None, "default") else args.compile_mode
    for preset, spec in ((p_, s_) for p_ in args.presets for s_ in batch_sizes(shapes[p_], args.sets)):
        for compiled in (False,) if args.no_compile else (False, True):
            if time.perf_counter() - start > args.budget:
                res["train"].append({"preset": preset, "compile": compiled, "cells_per_step": spec["sets"] * spec["cells"],
                                     "skipped": f"skipped: past the {args.budget:.0f} s budget"})
                continue
            try:
                res["train"].append(train_row(preset, spec, device, compiled, steps, "eager" if args.dry_run else "inductor", mode))
            except Exception as exc:
                res["train"].append({"preset": preset, "compile": compiled, "error": f"{type(exc).__name__}: {str(exc)[:200]}",
                                     "traceback": traceback.format_exc(limit=5)})
            print(json.dumps({k: v for k, v in res["train"][-1].items() if k != "traceback"}), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    res["evaluation"] = eval_rows(device, args.dry_run)
    res["total_s"] = time.perf_counter() - start
    write_results(args.out, markdown(res), res)
    return 0 if not any("error" in r for r in res["train"]) else 1


def write_results(out: str | Path, block: str, res: dict[str, Any]) -> None:
    """Print the markdown ``block`` and write it to ``out``, with the raw numbers ``res`` in a ``.json`` beside it."""
    print(block)
    out = Path(out)
    out.write_text(block)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
