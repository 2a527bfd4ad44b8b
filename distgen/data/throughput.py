"""Set-sampler throughput: sets per second for each control matcher on a bundled dataset.

Run ``python -m distgen.data.throughput`` (``--dataset kang``, ``--set-size``, ``--batches``...).
"""

from __future__ import annotations

import argparse
import time

import torch

from distgen.data.dataset import PerturbationData
from distgen.data.sampler import SetSampler
from distgen.data.splitters import make_split


def measure(data: PerturbationData, matcher: str, set_size: int = 32, sets_per_batch: int = 16, batches: int = 50, seed: int = 0) -> dict[str, float]:
    """Sets/s and batches/s of ``SetSampler`` over the training part of a random-conditions split."""
    kind = "random_conditions" if len(set(data.conditions)) > 2 else "held_out_context"
    train = data.table.subset(make_split(data, kind, seed=seed).train)
    sampler = SetSampler(train, set_size=set_size, sets_per_batch=sets_per_batch, matcher=matcher, seed=seed, sets_per_epoch=batches * sets_per_batch)
    next(iter(sampler))  # warm-up (lazy imports)
    t0 = time.perf_counter()
    n = 0
    for batch in sampler:
        n += batch.shape[0]
    dt = time.perf_counter() - t0
    return {"sets_per_s": n / dt, "batches_per_s": len(sampler) / dt, "cells_per_s": n * set_size * 2 / dt}


def main(argv: list[str] | None = None) -> None:
    import distgen.data.bundled as D

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", choices=["norman", "kang"], default="norman")
    p.add_argument("--set-size", type=int, default=32)
    p.add_argument("--sets-per-batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--matchers", default="random,same_context,same_batch,nearest,ot")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    adata, schema = (D.norman_k562(), D.NORMAN_SCHEMA) if args.dataset == "norman" else (D.kang_pbmc(), D.KANG_SCHEMA)
    data = PerturbationData.from_anndata(adata, schema)
    print(f"{args.dataset}: {data.n_cells} cells x {data.info.n_genes} genes, m={args.set_size}, B={args.sets_per_batch}, 1 thread")
    print("| matcher | sets/s | batches/s | cells/s (target+control) |\n|---|---|---|---|")
    for m in args.matchers.split(","):
        r = measure(data, m, args.set_size, args.sets_per_batch, args.batches)
        print(f"| {m} | {r['sets_per_s']:.0f} | {r['batches_per_s']:.1f} | {r['cells_per_s']:.0f} |")


if __name__ == "__main__":
    main()
