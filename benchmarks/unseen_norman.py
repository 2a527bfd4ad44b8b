"""Unseen single perturbations on the bundled Norman K562 subset: can a conditioner that embeds them help?

``make_split(kind="unseen_single")`` holds out a fraction of the single-gene activations entirely
(and every pair containing one of them). The bundled panel has 500 HVGs and, except TMSB4X, none
of the 30 perturbed genes is among them, so ``onehot`` and ``gene_vocab`` cannot embed the held-out
atoms (the pre-flight check says so and the script records its message). What can embed them is an
``embedding_table``: here a hand-written protein-class annotation table
(``benchmarks/data/norman_gene_classes.csv``: kinase, MAPK cascade, transcription factor, ...; a
stand-in for GenePT / GO vectors, which cannot be downloaded on this machine), and, as a negative
control, a table of random vectors of the same width. Both drive the same generator: a per-cell
MLP trained by flow matching from each control cell to the perturbed population.

Baselines (``distgen.models.baselines``): ``control`` (no change), ``mean_perturbation`` (the mean
training effect) and ``linear`` (Ahlmann-Eltze et al. 2025; it needs measured target genes, so
here it mostly falls back to the mean effect). Metrics on every test condition (held-out singles
and the pairs that contain them), against the real test cells with the same 100 real controls.

Usage (CPU, about a minute per split seed and generator)::

    python benchmarks/unseen_norman.py --seeds 0 1 2 --steps 1500 --out unseen_norman.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen.data import PerturbationData, make_split
from distgen.datasets import NORMAN_SCHEMA, norman_k562
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.suite import run_metrics
from distgen.models.generator import build_model
from distgen.models.preflight import PreflightError, preflight
from distgen.train import fit
from distgen.types import ConditionLabels

HERE = Path(__file__).parent
TABLE = HERE / "data" / "norman_gene_classes.csv"
METRICS = ("pearson_delta", "mse_delta", "discrimination_score_l2", "edistance", "mmd")
BASELINES = ("control", "mean_perturbation", "linear")


def generator_node(conditioner: dict[str, Any], hidden: int) -> dict[str, Any]:
    """Per-cell MLP, flow matching from the matched control cell (source: control)."""
    return {
        "name": "generator",
        "conditioner": conditioner,
        "backbone": {"name": "mlp", "hidden": hidden, "depth": 3},
        "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 20}, "clamp_min": 0.0},
    }


def conditioners(info_atoms: tuple[str, ...], seed: int) -> dict[str, dict[str, Any]]:
    """Conditioner nodes compared (the random table has the annotation table's width)."""
    import pandas as pd

    width = pd.read_csv(TABLE).shape[1] - 1
    rng = np.random.default_rng(1000 + seed)
    random_table = {a: rng.normal(size=width).tolist() for a in info_atoms}
    return {
        "onehot": {"name": "onehot", "dim": 32, "use_context": False},
        "gene_vocab": {"name": "gene_vocab", "dim": 32, "use_context": False},
        "table_classes": {"name": "embedding_table", "table": str(TABLE), "dim": 32, "hidden": 64, "use_context": False},
        "table_random": {"name": "embedding_table", "table": random_table, "dim": 32, "hidden": 64, "standardize": False, "use_context": False},
    }


def labels_of(conditions: list[str], index: dict[str, int]) -> ConditionLabels:
    return ConditionLabels.make([[index[a] for a in c.split("+")] for c in conditions])


def evaluate(pred: dict[str, torch.Tensor], real: dict[str, torch.Tensor], control: torch.Tensor, genes: tuple[str, ...]) -> dict[str, Any]:
    """Metric means over test conditions (all, singles, pairs) and per condition."""
    conds = sorted(real)

    def pop(cells: dict[str, torch.Tensor]) -> Population:
        xs = [cells[c] for c in conds] + [control]
        codes = torch.cat([torch.full((len(cells[c]),), i) for i, c in enumerate(conds)] + [torch.full((len(control),), -1)])
        return Population.from_codes(torch.cat(xs).float(), codes, len(conds))

    data = EvalData(real=pop(real), pred=pop(pred), perts=tuple(conds), targets=tuple(tuple(c.split("+")) for c in conds), genes=genes)
    table = run_metrics(data, METRICS)
    singles = [i for i, c in enumerate(conds) if "+" not in c]
    pairs = [i for i, c in enumerate(conds) if "+" in c]

    def mean(m: str, idx: list[int]) -> float:
        vals = [table.values[m][i] for i in idx if table.values[m][i] == table.values[m][i]]
        return float(np.mean(vals)) if vals else float("nan")

    return {
        "all": {m: table.mean(m) for m in METRICS},
        "singles": {m: mean(m, singles) for m in METRICS},
        "pairs": {m: mean(m, pairs) for m in METRICS},
        "per_condition": {c: {m: table.values[m][i] for m in METRICS} for i, c in enumerate(conds)},
    }


def run_seed(data: PerturbationData, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    split = make_split(data, "unseen_single", seed=seed, test_frac=args.test_frac)
    train = data.table.subset(torch.cat([split.train, split.val]))
    atoms = sorted({a for c in split.train_conditions + split.val_conditions for a in data.atoms_of(c)})
    test = list(split.test_conditions)
    index = data.info.perturbation_index()
    cond_arr = np.asarray(data.conditions)
    real = {c: data.table.X[torch.as_tensor(np.nonzero(cond_arr == c)[0])] for c in test}
    control = data.table.X[data.table.is_control]
    n_ctrl = control.shape[0]
    labels = labels_of(test, index)
    ctrl_sets = control[None].expand(len(test), -1, -1).contiguous()
    mask = torch.ones(len(test), n_ctrl, dtype=torch.bool)
    out: dict[str, Any] = {"seed": seed, "test_conditions": test, "train_atoms": atoms, "models": {}}

    for name in BASELINES:
        model = build_model({"name": name}, data.info, seen_perturbations=atoms)
        model.fit(train)
        pred = model.predict(ctrl_sets, mask, labels)
        out["models"][name] = evaluate({c: pred[i] for i, c in enumerate(test)}, real, control, data.info.genes)

    for name, node in conditioners(data.info.perturbations, seed).items():
        torch.manual_seed(seed)
        model = build_model(generator_node(node, args.hidden), data.info, seen_perturbations=atoms)
        try:
            preflight(model, split)
        except PreflightError as err:
            out["models"][name] = {"preflight": str(err)}
            print(f"seed {seed} {name}: pre-flight stopped it: {err}", flush=True)
            continue
        t0 = time.perf_counter()
        fit(model, train, set_size=args.set_size, matcher="random", steps=args.steps, sets_per_batch=args.sets_per_batch,
                  lr=args.lr, seed=seed, progress=False)
        torch.manual_seed(seed)
        pred = model.predict(ctrl_sets, mask, labels)
        res = evaluate({c: pred[i] for i, c in enumerate(test)}, real, control, data.info.genes)
        res["train_seconds"] = round(time.perf_counter() - t0, 1)
        out["models"][name] = res
        print(f"seed {seed} {name}: {res['all']} ({res['train_seconds']} s)", flush=True)
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over split seeds of each model's metric means (all test conditions)."""
    names = list(runs[0]["models"])
    out: dict[str, Any] = {}
    for n in names:
        if "preflight" in runs[0]["models"][n]:
            out[n] = {"preflight": runs[0]["models"][n]["preflight"]}
            continue
        out[n] = {}
        for part in ("all", "singles", "pairs"):
            vals = {m: [r["models"][n][part][m] for r in runs] for m in METRICS}
            out[n][part] = {m: (float(np.nanmean(v)), float(np.nanstd(v))) for m, v in vals.items()}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-frac", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--set-size", type=int, default=32)
    p.add_argument("--sets-per-batch", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data = PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA)
    t0 = time.perf_counter()
    runs = [run_seed(data, s, args) for s in args.seeds]
    res = {
        "args": vars(args),
        "summary": summarise(runs),
        "runs": runs,
        "seconds": round(time.perf_counter() - t0, 1),
        "hardware": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads",
    }
    for n, r in res["summary"].items():
        print(n, r.get("preflight") or {k: f"{v[0]:.4f}±{v[1]:.4f}" for k, v in r["all"].items()})
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
