"""PerturbDiff on Kang 2018 PBMC (IFN-beta): generate the stimulated cells of a held-out cell type.

For each held-out cell type the stimulated cells of that type are removed from training
(``make_split(kind="held_out_context")``), ``perturbdiff-small`` is trained on the rest (2,000 HVGs
fitted on the training cells), and the held-out type's stimulated cells are generated from its
control cells. The real held-out stimulated cells are split in two halves A/B; every method is
scored against B:

* ``perturbdiff``: generated cells;
* ``control``: the held-out type's control cells, unchanged;
* ``mean_shift``: its control cells + the mean (stimulated - control) shift of the other types;
* ``ceiling``: real half A (what a perfect generator could score against B at this sample size).

Usage (CPU, a few minutes per cell type)::

    python benchmarks/kang_heldout.py --cell-types CD14+Mono CD4T B --steps 1500 --out kang.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import numpy as np
import torch

from distgen.api import build
from distgen.config import load_config
from distgen.data import PerturbationData, highly_variable_genes, make_split
from distgen.datasets import KANG_SCHEMA, kang_pbmc
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.suite import run_metrics
from distgen.train import fit
from distgen.types import ConditionLabels

METRICS = ("pearson_delta", "mse", "mse_delta", "r2_delta", "edistance", "mmd", "overlap_at_N", "de_direction_match")


def evaluate(pred: torch.Tensor, real: torch.Tensor, control: torch.Tensor, genes: tuple[str, ...], pert: str) -> dict[str, float]:
    """Metrics of predicted vs real cells of one perturbation, both with the same real control cells."""

    def pop(x: torch.Tensor) -> Population:
        codes = torch.cat([torch.zeros(len(x), dtype=torch.long), -torch.ones(len(control), dtype=torch.long)])
        return Population.from_codes(torch.cat([x, control]).float(), codes, 1)

    data = EvalData(real=pop(real), pred=pop(pred), perts=(pert,), targets=((),), genes=genes)
    table = run_metrics(data, METRICS)
    return {m: table.mean(m) for m in METRICS}


def generate(model: Any, control: torch.Tensor, labels_row: ConditionLabels, set_size: int, seed: int) -> torch.Tensor:
    """Generate one cell per control cell, in sets of ``set_size`` (the last set padded)."""
    n, g = control.shape
    n_sets = -(-n // set_size)
    x = torch.zeros(n_sets * set_size, g)
    x[:n] = control
    mask = torch.zeros(n_sets * set_size, dtype=torch.bool)
    mask[:n] = True
    x, mask = x.view(n_sets, set_size, g), mask.view(n_sets, set_size)
    # pad the last set with real controls (resampled) so attention sees a full population
    if n % set_size:
        fill = torch.randint(n, (set_size - n % set_size,), generator=torch.Generator().manual_seed(seed))
        x[-1, n % set_size :] = control[fill]
        mask[-1] = True
    labels = labels_row.index(torch.zeros(n_sets, dtype=torch.long))
    torch.manual_seed(seed)
    out = model.predict(x, mask, labels)
    return out.reshape(-1, g)[:n]


def run_cell_type(data: PerturbationData, ct: str, args: argparse.Namespace) -> dict[str, Any]:
    split = make_split(data, "held_out_context", test_contexts=[ct], val_frac=0.0, seed=args.seed)
    d = highly_variable_genes(data, args.genes, fit_on=split.train)
    table, info = d.table, d.info
    doc = load_config(args.preset, args.override)
    train_opts = {**doc.get("train", {}), "steps": args.steps, "progress": False, "seed": args.seed}
    set_size = int(doc.get("data", {}).get("set_size", 32))
    matcher = doc.get("data", {}).get("matcher", "same_context")
    torch.manual_seed(args.seed)
    model = build(doc, info, seen_perturbations=[c for c in split.train_conditions if c != "control"])
    t0 = time.perf_counter()
    result = fit(model, table.subset(split.train), set_size=set_size, matcher=matcher, **train_opts)
    train_s = time.perf_counter() - t0

    ctx = info.contexts.index(ct)
    is_ctx = table.labels.context == ctx
    control = table.X[table.is_control & is_ctx]
    stim = table.X[split.test]
    perm = torch.randperm(len(stim), generator=torch.Generator().manual_seed(args.seed))
    half_a, half_b = stim[perm[: len(stim) // 2]], stim[perm[len(stim) // 2 :]]
    # mean shift of the other cell types (training cells only), averaged over types
    shifts = []
    for k in range(len(info.contexts)):
        if k == ctx:
            continue
        sel = table.labels.context == k
        shifts.append(table.X[~table.is_control & sel].mean(0) - table.X[table.is_control & sel].mean(0))
    shift = torch.stack(shifts).mean(0)

    t0 = time.perf_counter()
    row = table.labels.index(split.test[:1])
    generated = generate(model, control, row, set_size, args.seed)
    sample_s = time.perf_counter() - t0
    methods = {"perturbdiff": generated, "control": control, "mean_shift": control + shift, "ceiling": half_a}
    scores = {name: evaluate(pred, half_b, control, info.genes, "stimulated") for name, pred in methods.items()}
    return {
        "cell_type": ct,
        "n_control": len(control),
        "n_stim_test_half": len(half_b),
        "train_seconds": round(train_s, 1),
        "sample_seconds": round(sample_s, 1),
        "nfe": int(model.last_nfe),
        "final_loss": float(np.mean(result.losses[-50:])),
        "scores": scores,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell-types", nargs="+", default=["CD14+Mono", "CD4T", "B"])
    p.add_argument("--preset", default="perturbdiff-small")
    p.add_argument("--override", nargs="*", default=[], help="dotted config overrides, e.g. model.backbone.depth=1")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data = PerturbationData.from_anndata(kang_pbmc(), KANG_SCHEMA)
    runs = []
    for ct in args.cell_types:
        res = run_cell_type(data, ct, args)
        runs.append(res)
        print(json.dumps({k: v for k, v in res.items() if k != "scores"}))
        for name, sc in res["scores"].items():
            print(f"  {name:12s} " + " ".join(f"{m}={v:.4f}" for m, v in sc.items()))
    out = {"args": vars(args), "torch": torch.__version__, "machine": platform.machine(), "runs": runs}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
