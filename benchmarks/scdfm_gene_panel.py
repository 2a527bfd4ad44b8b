"""Does scDFM's prediction gene panel change the metrics? One pass over every gene vs chunks of the training length.

scDFM trains on random subsets of ``genes_per_step`` genes and predicts exactly its evaluation panel
(as long as a training subset). distgen can predict all genes in one pass (a sequence many times
longer than any seen in training) or in random chunks of the training length (``predict_genes``).
This trains ``scdfm-small`` (128 genes per step) once on Kang PBMC with ``--hvg`` genes, holds out the
stimulated cells of one cell type, and predicts them with

* ``one_pass``: every gene in one sequence (``predict_genes: null``);
* ``chunks``: random chunks of 128 genes (``predict_genes: 128``, the preset);
* ``panel``: only the 128 most variable genes of the held-out and control cells, in one pass
  (``distgen predict --genes hvg:128``, scDFM's evaluation protocol).

``one_pass`` and ``chunks`` are scored on all genes and, like ``panel``, on the 128 panel genes.

Usage (CPU, about 20 minutes)::

    python benchmarks/scdfm_gene_panel.py --hvg 2000 --steps 1000 --out panel.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

METRICS = ("pearson_delta", "mse", "mae", "discrimination_score_l1", "overlap_at_N", "de_direction_match")


def _score(pred: Any, real: Any, out: Path) -> dict[str, float]:
    from distgen import api

    report = api.evaluate(pred, real, out, baselines=[], metric_names=list(METRICS), ceiling=False, make_plots=False, progress=False)
    return {m: float(report.metrics[m]["model"]) for m in METRICS if m in report.metrics}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hvg", type=int, default=2000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--cell-type", default="CD4T")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="scdfm_gene_panel_runs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    from distgen.data.prepared import Dataset
    from distgen.data.section import data_section
    from distgen.pipeline.predict import gene_panel, load_run_model, predict
    from distgen.train.run import train_run

    torch.set_flush_denormal(True)
    work = Path(args.work)
    run = work / f"train_seed{args.seed}"
    overrides = ["data.dataset=kang_pbmc", f"data.hvg={args.hvg}", "data.split.kind=held_out_context",
                 f"data.split.test_contexts=[{args.cell_type}]", "data.split.val_frac=0.0", f"train.steps={args.steps}",
                 f"train.seed={args.seed}", "train.checkpoint_every=100000"]
    start = time.perf_counter()
    if not (run / "checkpoints").exists():
        train_run("scdfm-small", run, overrides)
    train_s = time.perf_counter() - start
    from distgen.config import load_yaml

    rd = Dataset.load(data_section(load_yaml(run / "config.yaml")["data"]), run / "split.json")
    model = load_run_model(run, rd, None, "ema", torch.device("cpu"))
    k = model.genes_per_step
    panel = gene_panel(rd, rd.groups("test"), f"hvg:{k}")
    names = [rd.info.genes[i] for i in panel]
    truth = rd.truth("test")
    results: dict[str, Any] = {}
    for mode, chunk, genes in (("one_pass", None, None), ("chunks", k, None), ("panel", None, f"hvg:{k}")):
        model.predict_genes = chunk
        t0 = time.perf_counter()
        pred = predict(model, rd, "test", seed=args.seed, genes=genes, preflight=False)
        secs = time.perf_counter() - t0
        results[mode] = {"predict_seconds": round(secs, 1)}
        if genes is None:
            results[mode]["all_genes"] = _score(pred, truth, work / f"eval_{mode}_all_seed{args.seed}")
        pred, real = pred.with_genes(names), truth.with_genes(names)
        results[mode]["panel"] = _score(pred, real, work / f"eval_{mode}_panel_seed{args.seed}")
        print(mode, json.dumps(results[mode]))
    report = {
        "command": "python benchmarks/scdfm_gene_panel.py " + " ".join(argv if argv is not None else []),
        "genes": rd.info.n_genes, "genes_per_step": k, "scored_genes": len(names), "held_out": args.cell_type, "seed": args.seed,
        "train_seconds": round(train_s, 1), "results": results,
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]},
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
