"""Calibration of bayes_hier on held-out replicates of a synthetic "distribution over distributions".

``distgen.data.synthetic.populations_dataset`` observes every condition (control, singles, pairs)
in several populations (replicates), each with a hidden factor ``z ~ N(0, 1)`` that shifts its
baseline and scales its response. For each replicate in turn, bayes_hier is fitted on the others
and predicts the population mean of every condition in a *new* replicate; we count how often the
central 90% posterior predictive interval covers the observed mean (per gene). Because the
populations of one replicate share its ``z``, the figure pooled over many held-out replicates and
dataset seeds is the one that means something.

Reference: the classical per-condition t prediction interval from the training replicates'
means (``mean +- t_{n-1} * sd * sqrt(1 + 1/n)``), which uses no model at all.

Usage (CPU, about 20 s of compute per fit)::

    python plugins/distgen-bayes/benchmarks/calibration.py --seeds 0 1 --populations 8 --out calib.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from scipy.stats import t as student_t

from distgen.data.dataset import PerturbationData
from distgen.data.schema import PerturbationSchema
from distgen.data.synthetic import populations_dataset
from distgen.models.generator import build_model
from distgen.types import CellTable
from distgen_bayes.calibration import leave_one_replicate_out
from distgen_bayes.populations import summarise


def t_interval_coverage(table: CellTable, level: float) -> dict[str, float]:
    """Leave-one-replicate-out coverage and width of per-condition t prediction intervals."""
    pops = summarise(table.X, table.labels)
    by_cond: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for s, b, m in zip(pops.atoms, pops.batch.tolist(), pops.mean):
        by_cond[s].append((b, m))
    inside, width = [], []
    for rows in by_cond.values():
        for b, m in rows:
            rest = torch.stack([x for bb, x in rows if bb != b])
            n = rest.shape[0]
            half = student_t.ppf((1 + level) / 2, n - 1) * rest.std(0) * (1 + 1 / n) ** 0.5
            inside.append(((m - rest.mean(0)).abs() <= half).double().mean())
            width.append(2 * half.mean())
    return {"coverage": float(torch.stack(inside).mean()), "width": float(torch.stack(width).mean())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--populations", type=int, default=8)
    p.add_argument("--genes", type=int, default=20)
    p.add_argument("--level", type=float, default=0.9)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--override", default="{}", help="JSON of extra bayes_hier parameters")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    node = {"name": "bayes_hier", "reduction": "genes", "steps": args.steps, "num_samples": 400, **json.loads(args.override)}
    schema = PerturbationSchema(context_cols=("cell_type",), batch_col="population", scale="counts")
    t0 = time.perf_counter()
    runs = []
    for seed in args.seeds:
        adata, _ = populations_dataset(n_genes=args.genes, n_atoms=4, n_combos=2, n_populations=args.populations,
                                       cells_per_group=40, seed=seed)
        data = PerturbationData.from_anndata(adata, schema)
        res = leave_one_replicate_out(lambda data=data: build_model(node, data.info), data.table, args.level)
        ref = t_interval_coverage(data.table, args.level)
        runs.append({"seed": seed, "bayes_hier": {k: res[k] for k in ("coverage", "width", "abs_error")},
                     "per_replicate_coverage": [round(f["coverage"], 3) for f in res["folds"]],
                     "t_interval": ref})
        print(f"seed {seed}: bayes_hier coverage {res['coverage']:.3f} width {res['width']:.3f}; "
              f"t-interval coverage {ref['coverage']:.3f} width {ref['width']:.3f}", flush=True)
    out = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "node": node,
        "level": args.level,
        "coverage": float(np.mean([r["bayes_hier"]["coverage"] for r in runs])),
        "width": float(np.mean([r["bayes_hier"]["width"] for r in runs])),
        "t_interval_coverage": float(np.mean([r["t_interval"]["coverage"] for r in runs])),
        "t_interval_width": float(np.mean([r["t_interval"]["width"] for r in runs])),
        "runs": runs,
        "seconds": round(time.perf_counter() - t0, 1),
        "hardware": f"{platform.machine()} {os.cpu_count()}-core CPU, torch {torch.__version__}, jax/numpyro CPU",
    }
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
