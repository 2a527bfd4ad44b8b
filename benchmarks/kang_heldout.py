"""PerturbDiff on Kang 2018 PBMC (IFN-beta): generate the stimulated cells of a held-out cell type.

For each held-out cell type the stimulated cells of that type are removed from training
(``make_split(kind="held_out_context")``), ``perturbdiff-small`` is trained on the rest (2,000 HVGs
fitted on the training cells), and the held-out type's stimulated cells are generated from its
control cells. The real held-out stimulated cells are split in two halves A/B; every method is
scored against B:

* ``model``: generated cells (of ``--preset`` with ``--override``s);
* ``control``: the held-out type's control cells, unchanged;
* ``mean_shift``: its control cells + the mean (stimulated - control) shift of the other types;
* ``ceiling``: real half A (what a perfect generator could score against B at this sample size).

Usage (CPU, a few minutes per cell type and seed; ``--cell-types all`` runs the seven)::

    python benchmarks/kang_heldout.py --cell-types CD14+Mono CD4T B --steps 1500 --seeds 0 1 2 --out kang.json

Training runs on the device ``train.device`` picks (``auto``: a GPU when there is one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np
import torch

from distgen.api import build
from distgen.config import as_component, load_config
from distgen.data import PerturbationData, highly_variable_genes, make_split
from distgen.datasets import KANG_SCHEMA, kang_pbmc
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.suite import run_metrics
from distgen.kernels.distances import energy_distance
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
    return {m: table.mean(m) for m in METRICS} | spread(pred, real)


def spread(pred: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Where an E-distance comes from: ``edistance_recentred`` is the E-distance once the predicted cells are
    moved onto the real cells' mean (what is left is spread and shape), ``total_variance`` the predicted cells'
    summed per-gene variance (the real cells': ``real_total_variance``)."""

    def ed(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(energy_distance(x[None].double(), y[None].double())[0])

    moved = pred - pred.mean(0) + real.mean(0)
    return {"edistance_recentred": ed(moved, real), "total_variance": float(pred.var(0).sum()), "real_total_variance": float(real.var(0).sum())}


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
    dev = next(model.parameters()).device
    out = model.predict(x.to(dev), mask.to(dev), labels.to(dev)).cpu()
    return out.reshape(-1, g)[:n]


def run_cell_type(data: PerturbationData, ct: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    split = make_split(data, "held_out_context", test_contexts=[ct], val_frac=0.0, seed=seed)
    d = highly_variable_genes(data, args.genes, fit_on=split.train)
    table, info = d.table, d.info
    doc = load_config(args.preset, args.override)
    train_opts = {**doc.get("train", {}), "steps": args.steps, "progress": False, "seed": seed}
    set_size = int(doc.get("data", {}).get("set_size", 32))
    matcher = doc.get("data", {}).get("matcher", "same_context")
    torch.manual_seed(seed)
    model = build(doc, info, seen_perturbations=[c for c in split.train_conditions if c != "control"])
    t0 = time.perf_counter()
    sets = {k: v for k, v in doc.get("data", {}).items() if k == "control_sets"}  # e.g. --override data.control_sets=uncovered
    result = fit(model, table.subset(split.train), set_size=set_size, matcher=matcher, config={"data": sets}, **train_opts)
    train_s = time.perf_counter() - t0

    ctx = info.contexts.index(ct)
    is_ctx = table.labels.context == ctx
    control = table.X[table.is_control & is_ctx]
    stim = table.X[split.test]
    perm = torch.randperm(len(stim), generator=torch.Generator().manual_seed(seed))
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
    generated = generate(model, control, row, set_size, seed)
    sample_s = time.perf_counter() - t0
    methods = {"model": generated, "control": control, "mean_shift": control + shift, "ceiling": half_a}
    dyn = model.dynamics
    for w in args.resample_guidance:  # the same weights sampled with another guidance weight
        preset_w, dyn.guidance = dyn.guidance, w
        methods[f"model_w{w:g}"] = generate(model, control, row, set_size, seed)
        dyn.guidance = preset_w
    for steps in args.resample_ddim:  # the same weights sampled by a plain DDIM over the whole schedule
        preset_sampler, dyn.sampler = dyn.sampler, as_component("diffusion_samplers", {"name": "ddim", "steps": steps})
        methods[f"model_ddim{steps}"] = generate(model, control, row, set_size, seed)
        dyn.sampler = preset_sampler
    scores = {name: evaluate(pred, half_b, control, info.genes, "stimulated") for name, pred in methods.items()}
    return {
        "cell_type": ct,
        "seed": seed,
        "n_control": len(control),
        "n_stim_test_half": len(half_b),
        "train_seconds": round(train_s, 1),
        "sample_seconds": round(sample_s, 1),
        "nfe": int(model.last_nfe),
        "final_loss": float(np.mean(result.losses[-50:])),
        "scores": scores,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell type: the model's mean mse / edistance over seeds against the mean shift and no change;
    and the mean relative E-distance change vs the mean shift over cell types (negative = better)."""
    per: dict[str, dict[str, Any]] = {}
    for ct in dict.fromkeys(r["cell_type"] for r in runs):
        rs = [r for r in runs if r["cell_type"] == ct]
        row: dict[str, Any] = {"seeds": [r["seed"] for r in rs]}
        models = [k for k in rs[0]["scores"] if k.startswith("model")]
        for method in (*models, "mean_shift", "control", "ceiling"):
            for m in ("mse", "edistance"):
                row[f"{method}_{m}"] = float(np.mean([r["scores"][method][m] for r in rs]))
        for k in models:
            row[f"{k}_edistance_each"] = [round(r["scores"][k]["edistance"], 4) for r in rs]
            row[f"{k}_mse_each"] = [round(r["scores"][k]["mse"], 5) for r in rs]
            row[f"{k}_edistance_vs_mean_shift"] = row[f"{k}_edistance"] / row["mean_shift_edistance"] - 1
            row[f"{k}_matches_mean_shift"] = bool(row[f"{k}_mse"] <= row["mean_shift_mse"] and row[f"{k}_edistance"] <= row["mean_shift_edistance"])
        per[ct] = row
    out: dict[str, Any] = {"cell_types": per}
    for k in [k for k in next(iter(per.values())) if k.endswith("_edistance_vs_mean_shift")]:
        name = k[: -len("_edistance_vs_mean_shift")]
        out[f"{name}_mean_edistance_vs_mean_shift"] = float(np.mean([v[k] for v in per.values()]))
        out[f"{name}_all_match_mean_shift"] = all(v[f"{name}_matches_mean_shift"] for v in per.values())
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell-types", nargs="+", default=["CD14+Mono", "CD4T", "B"])
    p.add_argument("--preset", default="perturbdiff-small")
    p.add_argument("--override", nargs="*", default=[], help="dotted config overrides, e.g. model.backbone.depth=1")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--resample-guidance", type=float, nargs="*", default=[],
                   help="also sample the trained weights with these guidance weights (rows model_w<W>)")
    p.add_argument("--resample-ddim", type=int, nargs="*", default=[],
                   help="also sample the trained weights by a DDIM of this many steps from t = 0 (rows model_ddim<N>)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data = PerturbationData.from_anndata(kang_pbmc(), KANG_SCHEMA)
    cell_types = list(data.info.contexts) if args.cell_types == ["all"] else args.cell_types
    runs = []
    for ct in cell_types:
        for seed in args.seeds:
            res = run_cell_type(data, ct, args, seed)
            runs.append(res)
            print(json.dumps({k: v for k, v in res.items() if k != "scores"}), flush=True)
            for name, sc in res["scores"].items():
                print(f"  {name:12s} " + " ".join(f"{m}={v:.4f}" for m, v in sc.items()), flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = {"args": vars(args), "torch": torch.__version__, "machine": platform.machine(), "load_average": load,
           "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "runs": runs, "summary": summary(runs)}
    print(json.dumps(out["summary"], indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
