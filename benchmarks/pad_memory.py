"""PAD-Transformer training-step time and peak memory vs the number of gene tokens, fused vs naive.

One training step (forward, MSE loss, backward, Adam update) of ``pad_transformer`` at
``L = 1000, 2000, 5000`` gene tokens, with the fused attention (two SDPA calls sharing V: no
``[L, L]`` map) and with the naive one (explicit softmax maps). Each configuration runs in a fresh
subprocess so that its peak memory is its own: on CPU the peak resident-set size during the steps
(sampled every millisecond from ``/proc/self/statm``, with glibc told to return every allocation over
64 KiB to the OS so that the RSS follows live memory) above the level after a warm-up step
(model, inputs, Adam state and loaded kernels); on CUDA ``max_memory_allocated`` above the allocated level. The time is the median of
``--repeats`` steps after one warm-up step. The gene graph is a random graph with
``--graph-k`` neighbours per gene (its cost is part of the step).

Usage (defaults are small so that it finishes in a few minutes on a 2-core CPU)::

    python benchmarks/pad_memory.py --write-docs

Writes the table to this script's section of ``docs/benchmarks.md`` with ``--write-docs``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

SECTION = "## scDFM: PAD-Transformer memory and step time vs gene tokens"


def random_graph(g: int, k: int, seed: int = 0) -> torch.Tensor:
    """``[g, g]`` symmetric bool adjacency: each gene linked to ``k`` random genes."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, g, (g, k), generator=gen)
    adj = torch.zeros(g, g, dtype=torch.bool)
    adj.scatter_(1, idx, True)
    return adj | adj.T


def rss_mb() -> float:
    """Current resident-set size in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one configuration in this process."""
    from distgen.backbones.base import Condition
    from distgen.backbones.pad_transformer import PADTransformer
    from distgen.types import ConditionLabels, DataInfo

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    dev = torch.device(args.device)
    length = args.length
    genes = tuple(f"g{i}" for i in range(length))
    info = DataInfo(genes=genes, perturbations=genes[:4])
    torch.manual_seed(0)
    net = PADTransformer(info, gene_graph=random_graph(length, args.graph_k), d_model=args.d_model, heads=args.heads,
                         layers=args.layers, dropout=0.0, attention_impl=args.impl).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    b, m = 1, args.cells
    x = torch.rand(b, m, length, device=dev) * 2
    cond = Condition(gene_ids=torch.arange(length, device=dev), control=torch.rand(b, m, length, device=dev) * 2,
                     control_mask=torch.ones(b, m, dtype=torch.bool, device=dev), labels=ConditionLabels.make([[0, 1]]).to(dev))
    target = torch.randn_like(x)

    def step() -> None:
        loss = (net(x, torch.rand(b, m, device=dev), cond) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: Adam state, kernels and library pages are loaded before the baseline
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = rss_mb()
    high, stop = [base], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            high[0] = max(high[0], rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    stop.set()
    sampler.join()
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else high[0]
    return {"L": length, "impl": args.impl, "step_s": statistics.median(times), "peak_mb": peak - base,
            "params": sum(p.numel() for p in net.parameters())}


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for length in args.lengths:
        for impl in ("fused", "naive"):
            cmd = [sys.executable, __file__, "--one", "--length", str(length), "--impl", impl, "--d-model", str(args.d_model),
                   "--heads", str(args.heads), "--layers", str(args.layers), "--cells", str(args.cells), "--graph-k", str(args.graph_k),
                   "--repeats", str(args.repeats), "--threads", str(args.threads), "--device", args.device]
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # RSS follows live memory
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
                rows.append({"L": length, "impl": impl, "error": tail[0][:120]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def _now() -> tuple[str, str]:
    """UTC time to the minute and the 1/5/15-minute load averages."""
    import datetime

    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"), load


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, hardware: str) -> str:
    by = {(r["L"], r["impl"]): r for r in rows}
    lines = [
        SECTION,
        "",
        "One training step (forward, MSE, backward, Adam) of `pad_transformer`, fused differential attention "
        "(two `scaled_dot_product_attention` calls sharing V) vs the naive one (explicit `[L, L]` softmax maps). "
        f"Small model so that the naive runs fit and the whole table finishes in minutes: d_model={args.d_model}, "
        f"{args.heads} heads, {args.layers} layer (self + cross block), {args.cells} cell(s) per step, gene graph with "
        f"{args.graph_k} random neighbours per gene. Peak memory = peak RSS during the steps above the level after a warm-up "
        "step (CPU; sampled every ms), one subprocess per row; time = median of "
        f"{args.repeats} steps after a warm-up.",
        "",
        "| gene tokens L | fused step (s) | fused peak (MiB) | naive step (s) | naive peak (MiB) | naive / fused memory |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for length in args.lengths:
        f, n = by.get((length, "fused"), {}), by.get((length, "naive"), {})

        def cell(r: dict[str, Any], key: str, fmt: str) -> str:
            return format(r[key], fmt) if key in r else f"failed ({r.get('error', '?')})"

        ratio = f"{n['peak_mb'] / f['peak_mb']:.1f}x" if "peak_mb" in f and "peak_mb" in n and f["peak_mb"] > 0 else "-"
        lines.append(f"| {length} | {cell(f, 'step_s', '.2f')} | {cell(f, 'peak_mb', '.0f')} | {cell(n, 'step_s', '.2f')} | "
                     f"{cell(n, 'peak_mb', '.0f')} | {ratio} |")
    fused = [by[(length, "fused")] for length in args.lengths if "peak_mb" in by.get((length, "fused"), {})]
    if len(fused) >= 2:
        a, b = fused[0], fused[-1]
        lines += ["", f"Fused memory grows {b['peak_mb'] / a['peak_mb']:.1f}x from L={a['L']} to L={b['L']} "
                  f"({b['L'] / a['L']:.1f}x the tokens); a quadratic map would grow {(b['L'] / a['L']) ** 2:.0f}x."]
    lines += ["", f"Command: `python benchmarks/pad_memory.py --write-docs` (defaults). Hardware: {hardware}. "
              "The machine was shared with other jobs while this ran, so times are indicative; memory is not affected.", ""]
    return "\n".join(lines)


def update_section(block: str, path: str | Path, header: str = SECTION) -> Path:
    """Replace (or append) the ``## ...`` section that starts with ``header`` in a markdown file."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        new = "\n".join([*lines[:start], *block.rstrip("\n").splitlines(), "", *lines[end:]]).rstrip("\n") + "\n"
    path.write_text(new)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 5000])
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--graph-k", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--docs", default=str(Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"))
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--impl", default="fused", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args)))
        return
    start, load = _now()
    rows = run_all(args)
    end, load_end = _now()
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.machine()} CPU ({os.cpu_count()} cores)"
    hardware = f"{dev}, torch {torch.__version__}, {args.threads} thread(s); measured {start} to {end} UTC, load average {load} -> {load_end}"
    block = markdown(rows, args, hardware)
    print(block)
    if args.write_docs:
        update_section(block, args.docs)


if __name__ == "__main__":
    main()
