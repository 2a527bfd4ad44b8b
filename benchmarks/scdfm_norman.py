"""scDFM end to end on the bundled Norman K562 data: held-out pairs whose two singles were seen.

``make_split(kind="combo_seen2")`` holds out every pair whose two constituent genes are also
measured as single activations (KLF1+MAP2K6, KLF1+TGFBR2, MAP2K3+MAP2K6, MAP2K3+SLC38A2,
MAPK1+TGFBR2 in the bundled subset); all singles and the other pairs train the model. The preset
(``scdfm-small`` by default) is trained on the training cells (its co-expression gene graph too),
then generates one cell per real control cell for each held-out pair. ``distgen.evaluate`` scores
the generated cells against the real ones next to the control, mean-perturbation, additive and
linear baselines (fitted on the same training cells) and the half-split ceiling.

Usage (2-core CPU: about 30-60 minutes, mostly training)::

    python benchmarks/scdfm_norman.py --out /tmp/scdfm_norman [--preset scdfm-small] [--override model.distribution_weight=0]

Writes ``OUT/{pred,real,train}.h5ad``, the evaluation (``summary.json``, ``summary.md``,
``metrics.csv``, ``calibration.csv``) and ``OUT/run.json`` (command, config, timings, hardware).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from distgen import api
from distgen.config import load_config
from distgen.data import PerturbationData, make_split
from distgen.data.layout import CONTROL, PERT_COL, write_ground_truth, write_predictions
from distgen.datasets import NORMAN_SCHEMA, norman_k562
from distgen.pipeline.evaluate import evaluate_files
from distgen.train import fit
from distgen.types import ConditionLabels


def seen2_pairs(data: PerturbationData) -> list[str]:
    """Pairs whose two genes are also measured as singles."""
    conds = sorted(set(data.conditions[~data.is_control]))
    singles = {c for c in conds if "+" not in c}
    return [c for c in conds if "+" in c and all(a in singles for a in c.split("+"))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    os.makedirs(args.out, exist_ok=True)
    data = PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA)
    split = make_split(data, "combo_seen2", seed=args.seed, val_frac=0.0, test_conditions=seen2_pairs(data))
    train_idx = split.train
    train = data.table.subset(train_idx)
    doc = load_config(args.preset, args.override)
    tr, dcfg = dict(doc.get("train", {})), dict(doc.get("data", {}))
    if args.steps is not None:
        tr["steps"] = args.steps
    tr["seed"] = args.seed
    tr.setdefault("progress", False)
    torch.manual_seed(args.seed)
    model = api.build(doc, data.info, seen_perturbations=sorted({a for c in split.train_conditions for a in data.atoms_of(c)}))
    t0 = time.perf_counter()
    result = fit(model, train, set_size=dcfg.get("set_size", 32), matcher=dcfg.get("matcher", "random"), **tr)
    train_s = time.perf_counter() - t0

    test = list(split.test_conditions)
    ctrl_idx = np.nonzero(data.is_control[np.asarray(train_idx)])[0]
    ctrl_idx = np.asarray(train_idx)[ctrl_idx]
    ctrl = data.table.X[torch.as_tensor(ctrl_idx)]
    n = min(args.cells, ctrl.shape[0])
    index = data.info.perturbation_index()
    labels = ConditionLabels.make([[index[a] for a in c.split("+")] for c in test])
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.stack([torch.randperm(ctrl.shape[0], generator=g)[:n] for _ in test])
    sets = ctrl[pick]  # [B, n, G]: each generated cell has its own control cell
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        pred = model.predict(sets, torch.ones(len(test), n, dtype=torch.bool), labels)
    predict_s = time.perf_counter() - t0

    conds = [c for c in test for _ in range(n)]
    write_predictions(pred.reshape(-1, pred.shape[-1]), conds, ctrl, data.info.genes, path=os.path.join(args.out, "pred.h5ad"))
    write_ground_truth(data, split.test, ctrl_idx, path=os.path.join(args.out, "real.h5ad"))
    write_ground_truth(data, train_idx, ctrl_idx, path=os.path.join(args.out, "train.h5ad"))
    summary = evaluate_files(
        os.path.join(args.out, "pred.h5ad"), os.path.join(args.out, "real.h5ad"), args.out,
        pert_col=PERT_COL, control=CONTROL, train=os.path.join(args.out, "train.h5ad"), seed=args.seed, make_plots=not args.no_plots, progress=False,
    ).summary
    losses = list(getattr(result, "losses", []) or [])
    out = {
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]) if args.command is None else args.command,
        "preset": args.preset,
        "overrides": list(args.override),
        "train": tr,
        "data": dcfg,
        "test_conditions": test,
        "cells_per_condition": n,
        "nfe": model.last_nfe,
        "train_seconds": round(train_s, 1),
        "predict_seconds": round(predict_s, 1),
        "loss_first_last": [float(np.mean(losses[:20])), float(np.mean(losses[-20:]))] if losses else None,
        "hardware": f"{platform.machine()} {os.cpu_count()}-core CPU, torch {torch.__version__}, {args.threads} thread(s)",
        "metrics": summary["metrics"],
    }
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(out, f, indent=1, default=float)
    return out


SECTION = "## scDFM on Norman K562: held-out pairs whose singles were seen (combo_seen2)"
REPORTED = ("mse", "mae", "pearson_delta", "discrimination_score_l1", "de_direction_match", "overlap_at_N", "mmd", "edistance")


def markdown(runs: dict[str, dict[str, Any]]) -> str:
    """The docs section for one or more runs (``{label: run.json}``): model rows next to baselines and ceiling."""
    first = next(iter(runs.values()))
    metrics = [m for m in REPORTED if m in first["metrics"]]
    arrow = {m: "↑" if first["metrics"][m]["higher_is_better"] else "↓" for m in metrics}
    head = "| model | " + " | ".join(f"{m} {arrow[m]}" for m in metrics) + " |"
    lines = [SECTION, "", head, "|---|" + "---:|" * len(metrics)]

    def row(name: str, vals: list[float]) -> str:
        return f"| {name} | " + " | ".join(f"{v:.4g}" for v in vals) + " |"

    for label, r in runs.items():
        lines.append(row(f"**{label}**", [r["metrics"][m]["model"] for m in metrics]))
    for b in first["metrics"][metrics[0]]["baselines"]:
        lines.append(row(f"{b} baseline", [first["metrics"][m]["baselines"].get(b, float("nan")) for m in metrics]))
    lines.append(row("ceiling (half-split of real cells)", [first["metrics"][m]["ceiling"] for m in metrics]))
    for label, r in runs.items():
        lines.append(row(f"{label}: normalised (0 = strongest baseline, 1 = ceiling)", [r["metrics"][m]["normalised"] for m in metrics]))
    lines += [
        "",
        f"Held-out pairs: {', '.join(first['test_conditions'])}; {first['cells_per_condition']} generated cells per pair "
        f"(one per real control cell), {first['nfe']} network evaluations per sample. Metrics are means over the held-out "
        "pairs, computed by `distgen.evaluate` against all real cells of each pair, on the 500 genes of the bundled panel; "
        "baselines are fitted on the same training cells.",
        "",
    ]
    for label, r in runs.items():
        lines.append(f"- {label}: `{r['command']}`; training {r['train_seconds']} s, sampling {r['predict_seconds']} s; {r['hardware']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="scdfm-small")
    p.add_argument("--override", action="append", default=[], help="dotted config override, e.g. model.distribution_weight=0")
    p.add_argument("--steps", type=int, default=None, help="override train.steps")
    p.add_argument("--cells", type=int, default=100, help="generated cells per held-out pair (one per control cell)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--command", default=None, help=argparse.SUPPRESS)
    p.add_argument("--report", nargs="+", default=None, metavar="LABEL=RUN_DIR",
                   help="only write the docs table from finished runs (run.json in each RUN_DIR)")
    p.add_argument("--docs", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "benchmarks.md"))
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.report:
        runs = {}
        for item in args.report:
            label, folder = item.split("=", 1)
            with open(os.path.join(folder, "run.json")) as f:
                runs[label] = json.load(f)
        block = markdown(runs)
        from pad_memory import update_section

        update_section(block, args.docs, SECTION)
        print(block)
        return runs
    if args.out is None:
        p.error("--out is required (unless --report)")
    res = run(args)
    for name in ("mse", "pearson_delta", "discrimination_score_l1", "mmd"):
        if name in res["metrics"]:
            m = res["metrics"][name]
            print(name, "model", round(m["model"], 5), "baselines", {k: round(v, 5) for k, v in m["baselines"].items()}, "ceiling", round(m["ceiling"], 5))
    return res


if __name__ == "__main__":
    main()
