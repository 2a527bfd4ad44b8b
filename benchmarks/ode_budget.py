"""scDFM sampling: the E-distance of RK4 on 20 time points (76 network evaluations) at fewer evaluations.

Trains a flow-matching preset (``scdfm-small`` by default) on the bundled Norman K562 data
(``combo_seen2`` split, as ``benchmarks/scdfm_norman.py``), or loads it from ``--model``, then
generates every held-out pair and ``--train-conditions`` training conditions with each solver in
``SOLVERS`` from the same noise and the same control cells (and the reference once more from other noise: the
E-distance's own sampling noise, against which a solver's change is judged). Reported per solver: network
evaluations, the mean over conditions of the energy distance (``edistance``, Euclidean, as
cell-eval) between generated and real cells, and the root-mean-square difference of the generated
cells from the reference solver's (the integration error, which the E-distance alone can hide).

Usage (2-core CPU: training dominates, about 15-40 minutes; sampling a few minutes)::

    python benchmarks/ode_budget.py --out /tmp/ode_budget [--write-docs]
    python benchmarks/ode_budget.py --model /tmp/ode_budget/model.pt     # reuse the trained model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SECTION = "## scDFM sampling: E-distance against network evaluations (Norman K562)"
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository root holds the benchmarks package
    sys.path.insert(0, str(ROOT))
REFERENCE = "rk4, 20 points"

#: label -> dynamics overrides (the reference first: scDFM's torch.linspace(0, 1, 20) with RK4)
SOLVERS: dict[str, dict[str, Any]] = {  # label -> an ode_solvers node (steps = solver steps = points - 1)
    REFERENCE: {"name": "rk4", "steps": 19},
    "rk4, 20 points, other noise": {"name": "rk4", "steps": 19, "noise_seed": 1},  # the E-distance's own sampling noise
    "rk4, 10 points": {"name": "rk4", "steps": 9},
    "midpoint, 20 points": {"name": "midpoint", "steps": 19},
    "euler, 39 points": {"name": "euler", "steps": 38},
    "rk4, 6 points": {"name": "rk4", "steps": 5},
    "euler, 20 points": {"name": "euler", "steps": 19},
}


def train_model(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from benchmarks.scdfm_norman import seen2_pairs
    from distgen import api
    from distgen.config import load_config
    from distgen.data import PerturbationData, make_split
    from distgen.datasets import NORMAN_SCHEMA, norman_k562
    from distgen.train import fit

    data = PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA)
    split = make_split(data, "combo_seen2", seed=args.seed, val_frac=0.0, test_conditions=seen2_pairs(data))
    doc = load_config(args.preset, args.override)
    seen = sorted({a for c in split.train_conditions for a in data.atoms_of(c)})
    torch.manual_seed(args.seed)
    model = api.build(doc, data.info, seen_perturbations=seen)
    if args.model and Path(args.model).exists():
        model.prepare(data.table.subset(split.train))
        model.load_state_dict(torch.load(args.model))
        return model, data, split
    tr, dcfg = dict(doc.get("train", {})), dict(doc.get("data", {}))
    tr.update(seed=args.seed, progress=False, **({"steps": args.steps} if args.steps else {}))
    t0 = time.perf_counter()
    fit(model, data.table.subset(split.train), set_size=dcfg.get("set_size", 32), matcher=dcfg.get("matcher", "random"), **tr)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.out:
        torch.save(model.state_dict(), Path(args.out) / "model.pt")
    return model, data, split


def evaluate_solvers(model: Any, data: Any, split: Any, args: argparse.Namespace) -> dict[str, Any]:
    from distgen.config import as_component
    from distgen.kernels.distances import energy_distance
    from distgen.types import ConditionLabels

    train_idx = np.asarray(split.train)
    ctrl_idx = train_idx[data.is_control[train_idx]]
    ctrl = data.table.X[torch.as_tensor(ctrl_idx)]
    conds = list(split.test_conditions)
    rng = np.random.default_rng(args.seed)
    train_pert = sorted(c for c in split.train_conditions if c not in conds)
    conds += [str(c) for c in rng.choice(train_pert, size=min(args.train_conditions, len(train_pert)), replace=False)]
    index = data.info.perturbation_index()
    labels = ConditionLabels.make([[index[a] for a in c.split("+")] for c in conds])
    n = min(args.cells, ctrl.shape[0])
    g = torch.Generator().manual_seed(args.seed)
    sets = ctrl[torch.stack([torch.randperm(ctrl.shape[0], generator=g)[:n] for _ in conds])]
    mask = torch.ones(len(conds), n, dtype=torch.bool)
    real = {c: data.table.X[torch.as_tensor(np.nonzero(data.conditions == c)[0])] for c in conds}
    model.eval()
    out: dict[str, Any] = {"conditions": conds, "cells": n, "solvers": {}}
    reference = None
    for label in [REFERENCE, *(x for x in args.solvers if x != REFERENCE)]:
        node = dict(SOLVERS[label])
        noise_seed = node.pop("noise_seed", 0)
        model.dynamics.solver = as_component("ode_solvers", node)
        torch.manual_seed(args.seed + noise_seed)  # the same noise for every solver (but the noise row)
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = model.predict(sets, mask, labels)
        secs = time.perf_counter() - t0
        ed = [float(energy_distance(pred[i][None], real[c][None], metric="euclidean")[0]) for i, c in enumerate(conds)]
        if reference is None:
            reference = pred
        rms = float((pred - reference).pow(2).mean().sqrt())
        out["solvers"][label] = {"nfe": int(model.last_nfe), "edistance": float(np.mean(ed)), "edistance_per_condition": ed,
                                 "rms_vs_reference": rms, "seconds": secs}
        print(label, json.dumps({k: v for k, v in out["solvers"][label].items() if k != "edistance_per_condition"}), flush=True)
    held = len(split.test_conditions)
    ref_ed = np.asarray(out["solvers"][REFERENCE]["edistance_per_condition"])
    for s in out["solvers"].values():
        s["edistance_heldout"] = float(np.mean(s["edistance_per_condition"][:held]))
        s["max_rel_change"] = float(np.max(np.abs(np.asarray(s["edistance_per_condition"]) - ref_ed) / ref_ed))
    return out


def markdown(res: dict[str, Any], command: str) -> str:
    s = res["solvers"]
    ref = s[REFERENCE]
    lines = [SECTION, "",
             f"`{res['preset']}` trained on the bundled Norman K562 data (`combo_seen2` split), then {res['cells']} cells generated for each of "
             f"{len(res['conditions'])} conditions ({res['heldout']} held-out pairs, {len(res['conditions']) - res['heldout']} training conditions) "
             "from the same noise and control cells with each solver. E-distance: Euclidean energy distance to the real cells of the "
             "condition, mean over conditions; RMS vs reference: root-mean-square difference from the cells of the reference solver "
             f"(the integration error). Hardware: {res['hardware']}. Command: `{command}`.", "",
             "| solver | network evaluations | E-distance (all) | E-distance (held-out) | largest change per condition | RMS vs reference | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in s.items():
        lines.append(f"| {label}{' (scDFM)' if label == REFERENCE else ''} | {r['nfe']} | {r['edistance']:.4f} | {r['edistance_heldout']:.4f} | "
                     f"{100 * r['max_rel_change']:.2f}% | {r['rms_vs_reference']:.2e} | {r['seconds']:.1f} |")
    lines += ["", f"Reference: {ref['nfe']} evaluations."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="scdfm-small")
    p.add_argument("--override", nargs="*", default=[])
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cells", type=int, default=128)
    p.add_argument("--train-conditions", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=list(SOLVERS), help="solvers to compare (the reference always runs)")
    p.add_argument("--out", default=None, help="folder for model.pt and results.json")
    p.add_argument("--model", default=None, help="a model.pt written by an earlier run (skips training)")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    model, data, split = train_model(args)
    res = evaluate_solvers(model, data, split, args)
    res.update(preset=args.preset, heldout=len(split.test_conditions),
               hardware=f"{platform.machine()} {os.cpu_count()}-core CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if args.out:
        (Path(args.out) / "results.json").write_text(json.dumps(res, indent=1))
    block = markdown(res, "python benchmarks/ode_budget.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(block)
    if args.write_docs:
        from benchmarks.pad_memory import update_section

        update_section(block, args.docs, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
