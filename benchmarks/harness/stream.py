"""Data-pipeline measurements: out-of-core epochs over synthetic atlases on disk.

Each epoch runs in a child process (``python -m benchmarks.harness.stream``) so that its peak RSS
is its own; the child reports JSON on its last stdout line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.measure import loglog_exponent, peak_rss_mb

SCHEMA = {"perturbation_col": "perturbation", "context_cols": ["cell_type"], "batch_col": "batch"}


def ensure_atlas(folder: Path, n_cells: int, n_genes: int, layout: str = "grouped", seed: int = 0) -> tuple[Path, float]:
    """A synthetic atlas in ``folder`` (reused when present); returns its path and seconds to write it.

    The number of perturbations grows with the cells (5,000 cells each over 4 contexts x 8 batches from
    100k cells, 600 over 2 x 2 below), so that condition groups keep their size (~150 cells) and an
    epoch's number of sets grows in proportion to the cells, as in real atlases of growing breadth.
    """
    from distgen.data.large_synthetic import write_large_synthetic

    n_ctx, n_bat, per_pert = (4, 8, 5000) if n_cells >= 100_000 else (2, 2, 600)
    n_pert = int(min(max(2, n_cells // per_pert), n_genes))
    path = folder / f"atlas_{n_cells}x{n_genes}_{layout}_p{n_pert}_c{n_ctx}_b{n_bat}_s{seed}.h5ad"
    if path.exists():
        return path, 0.0
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    write_large_synthetic(path, n_cells=n_cells, n_genes=n_genes, n_perturbations=n_pert, n_contexts=n_ctx, n_batches=n_bat, layout=layout, seed=seed)
    return path, time.perf_counter() - t


def epoch_in_child(path: Path, set_size: int, sets_per_batch: int, num_workers: int = 0, max_batches: int = 0, timeout: float = 3600) -> dict[str, Any]:
    """One streamed epoch (or ``max_batches``) in a fresh process: seconds, cells/s, peak RSS."""
    cmd = [sys.executable, "-m", "benchmarks.harness.stream", str(path), "--set-size", str(set_size), "--sets-per-batch", str(sets_per_batch),
           "--num-workers", str(num_workers), "--max-batches", str(max_batches)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=Path(__file__).resolve().parents[2])
    if proc.returncode != 0:
        raise RuntimeError(f"streaming child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def epoch_scaling(folder: Path, sizes: list[int], n_genes: int, set_size: int, sets_per_batch: int, layout: str = "grouped") -> dict[str, Any]:
    """Epoch time against number of cells, with the fitted exponent (1 = linear)."""
    points = []
    for n in sizes:
        path, gen_s = ensure_atlas(folder, n, n_genes, layout)
        r = epoch_in_child(path, set_size, sets_per_batch)
        points.append({"cells": n, "generate_s": gen_s, **r})
    cells = [p["cells"] for p in points]
    return {"points": points, "exponent": loglog_exponent(cells, [p["epoch_cpu_s"] for p in points]),
            "exponent_wall": loglog_exponent(cells, [p["epoch_s"] for p in points])}


def wait_fraction(path: Path, preset: str, set_size: int, sets_per_batch: int, steps: int, num_workers: int = 1) -> dict[str, Any]:
    """Train ``preset`` from the file through a ``DataLoader``; the share of step time spent waiting for data."""
    import torch

    from benchmarks.harness.models import build
    from distgen.data import PerturbationSchema
    from distgen.data.streaming import StreamingSetSampler

    sampler = StreamingSetSampler(path, set_size=set_size, sets_per_batch=sets_per_batch, schema=PerturbationSchema(**SCHEMA), buffer_sets=4 * sets_per_batch)
    loader = torch.utils.data.DataLoader(sampler, batch_size=None, num_workers=num_workers, prefetch_factor=4 if num_workers else None, persistent_workers=False)
    model = build(preset, sampler.info)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    it = iter(loader)
    next(it)  # start-up (workers spawn, control pool read) is not a step
    waited = total = 0.0
    done = 0
    for _ in range(min(steps, len(sampler) - 1)):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        out = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        waited += t1 - t0
        total += time.perf_counter() - t0
        done += 1
    del it
    return {"preset": preset, "steps": done, "num_workers": num_workers, "step_s": total / max(done, 1), "wait_s": waited / max(done, 1),
            "wait_fraction": waited / max(total, 1e-12)}


def _child(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="stream one epoch of an on-disk AnnData and report JSON")
    p.add_argument("path")
    p.add_argument("--set-size", type=int, default=32)
    p.add_argument("--sets-per-batch", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--max-batches", type=int, default=0)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from distgen.data import PerturbationSchema
    from distgen.data.streaming import StreamingSetSampler

    t0 = time.perf_counter()
    sampler = StreamingSetSampler(a.path, set_size=a.set_size, sets_per_batch=a.sets_per_batch, schema=PerturbationSchema(**SCHEMA))
    open_s = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(sampler, batch_size=None, num_workers=a.num_workers) if a.num_workers else sampler
    t1, c1 = time.perf_counter(), time.process_time()
    batches = streamed = 0
    for batch in loader:
        batches += 1
        streamed += int(batch.target_mask.sum())
        if a.max_batches and batches >= a.max_batches:
            break
    epoch_s, epoch_cpu_s = time.perf_counter() - t1, time.process_time() - c1
    print(json.dumps({"open_s": open_s, "epoch_s": epoch_s, "epoch_cpu_s": epoch_cpu_s, "batches": batches, "streamed_cells": streamed, "cells_per_s": streamed / epoch_s,
                      "n_cells_file": sampler.cells.n_cells, "peak_rss_mb": max(peak_rss_mb(), peak_rss_mb(children=True))}))


if __name__ == "__main__":
    _child()
