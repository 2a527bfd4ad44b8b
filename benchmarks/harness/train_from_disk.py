"""Train a preset from an on-disk AnnData with distgen's trainer, on one device or under ``torchrun``.

The data never enters memory whole: ``StreamBatches`` gives every rank (and accumulation micro-batch)
a disjoint stream of cell sets read from the file. Prints steps/s, cells/s and peak memory.

    python -m benchmarks.harness.train_from_disk /tmp/atlas.h5ad --preset perturbdiff-small --steps 50
    torchrun --nproc-per-node 4 -m benchmarks.harness.train_from_disk /data/atlas.h5ad --preset scdfm --steps 200000 --out runs/scdfm
    (the same command with --resume after a preemption continues from the newest checkpoint of runs/scdfm)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help=".h5ad or .zarr with obs columns perturbation / cell_type / batch (see --schema)")
    p.add_argument("--preset", default="perturbdiff-small")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sets-per-batch", type=int, default=None, help="global sets per step (default: the preset's)")
    p.add_argument("--set-size", type=int, default=None, help="cells per set (default: the preset's)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="DataLoader reader processes per rank")
    p.add_argument("--schema", default='{"perturbation_col": "perturbation", "context_cols": ["cell_type"], "batch_col": "batch"}',
                   help="PerturbationSchema fields as JSON")
    p.add_argument("--split", default=None,
                   help='train on a split\'s training cells only, its make_split parameters as JSON, e.g. \'{"kind": "random_conditions", "seed": 0}\' '
                        "(default: every cell of the file)")
    p.add_argument("--out", default=None, help="run directory (checkpoints, metrics.csv); none by default")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default: the last step only)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (after a preemption): the same weights, optimizer, "
                        "schedule and data stream as an uninterrupted run; an --out that holds checkpoints needs it")
    p.add_argument("--precision", default="auto", help="auto = bf16 on CUDA, fp32 on CPU")
    a = p.parse_args(argv)

    from benchmarks.harness.measure import peak_rss_mb
    from benchmarks.harness.models import build, preset_shape
    from distgen.data import PerturbationSchema
    from distgen.data.disk_split import disk_split, split_rows
    from distgen.data.streaming import DiskCells, StreamBatches
    from distgen.train import distributed as D
    from distgen.train.checkpoint import list_checkpoints
    from distgen.train.options import TrainOptions
    from distgen.train.trainer import Trainer

    found = list_checkpoints(Path(a.out) / "checkpoints") if a.out is not None else []
    if a.resume and not found:  # (every rank reads the same folder, so every rank stops here alike)
        p.error(f"--resume: {a.out or 'no --out'} holds no checkpoint to continue")
    if found and not a.resume:  # starting over would overwrite its checkpoints with those of a new run
        p.error(f"{a.out} already holds checkpoints (newest {found[-1].name}); pass --resume to continue that run or choose a new --out")
    torch.set_flush_denormal(True)
    m, sets = preset_shape(a.preset)
    m, sets = a.set_size or m, a.sets_per_batch or sets
    cells = DiskCells(a.path, PerturbationSchema(**json.loads(a.schema)))
    rows = None if a.split is None else split_rows(cells, disk_split(cells, **json.loads(a.split)))
    source = StreamBatches(cells, set_size=m, sets_per_batch=sets, num_workers=a.workers, rows=rows)
    model = build(a.preset, source.info)
    opts = TrainOptions(steps=a.steps, sets_per_batch=sets, grad_accum=a.grad_accum, precision=a.precision, checkpoint_every=a.checkpoint_every or max(a.steps, 1),
                        progress=False, log_every=max(1, a.steps // 5))
    trainer = Trainer(model, source, opts, run_dir=a.out, info=source.info)
    if a.out is not None and trainer.env.is_main:  # what predict_to_disk(fingerprint=...) checks the file against later
        from distgen.data.disk_fingerprint import content_fingerprint
        from distgen.train.state_io import atomic_write_text

        atomic_write_text(Path(a.out) / "data_fingerprint.json", json.dumps(
            {"path": str(Path(a.path).resolve()), "content_fingerprint": content_fingerprint(cells)}, indent=1))
    t = time.perf_counter()
    result = trainer.fit(resume=found[-1] if a.resume else None)
    dt = time.perf_counter() - t
    n = len(result.losses)  # the steps this call trained (a resume starts at its checkpoint's step)
    if trainer.env.is_main:
        out = {"preset": a.preset, "steps": a.steps, "world_size": trainer.env.world_size, "sets_per_batch": sets, "set_size": m,
               "train_cells": cells.n_cells if rows is None else int(rows.size), "steps_per_s": n / dt, "cells_per_s": n * sets * m / dt, "final_loss": result.losses[-1] if n else None, "peak_rss_mb": peak_rss_mb()}
        if torch.cuda.is_available():
            out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps(out))
    D.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
