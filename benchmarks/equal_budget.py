"""distgen's reduced presets vs the official codes at the same budget (issue 16, item 8).

Two configurations, each trained with the official training recipe and budget that the official
codes were measured with on the bundled data, and scored with cell-eval-compatible metrics on the
same held-out conditions:

* ``scdfm``: the scdfm preset with d_model 128 (otherwise official: 8 heads, 4 layers, graph k 30,
  dropout 0.1), 48 cells (with replacement) x 64 gene tokens per step, 1,500 steps, Adam 5e-5
  cosine to 1e-6, gamma 0.5; Norman K562, test = the five seen-both doubles; predicted and scored on
  the 64 most variable genes of the test and control cells (``--genes hvg:64``, the official panel).
  Official: mse 0.0435 (control-mean baseline 0.0335), pearson_delta 0.288.
* ``perturbdiff``: the perturbdiff preset with dim 128, depth 4, 4 heads, Replogle's batch preset
  (4 sets x 32 cells), lr 2e-3, 2,000 steps (warm-up, plateau, EMA cadence and the rest official);
  Kang PBMC with 2,000 HVGs, the stimulated CD4T cells held out. Official: mse 0.0031 (control
  0.0037), pearson_delta 0.76, r2 0.889 (control 0.868).

Usage (CPU; tens of minutes per seed)::

    python benchmarks/equal_budget.py --model scdfm --seeds 0 1 2 --out scdfm_budget.json
    python benchmarks/equal_budget.py --model perturbdiff --seeds 0 1 2 --out perturbdiff_budget.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

DOUBLES = ["KLF1+MAP2K6", "KLF1+TGFBR2", "MAP2K3+MAP2K6", "MAP2K3+SLC38A2", "MAPK1+TGFBR2"]
SETUPS: dict[str, dict[str, Any]] = {
    "scdfm": {
        "preset": "scdfm",
        "overrides": ["model.backbone.d_model=128", "model.genes_per_step=64", "model.predict_genes=64", "data.dataset=norman_k562",
                      "data.split.kind=combo_seen2", f"data.split.test_conditions=[{','.join(DOUBLES)}]", "data.split.val_frac=0.0",
                      "train.steps=1500", "train.checkpoint_every=100000", "train.progress=false"],
        "genes": "hvg:64",
        "metrics": ["mse", "pearson_delta", "r2", "mae", "discrimination_score_l1"],
        "official": {"mse": 0.0435, "pearson_delta": 0.288, "control": {"mse": 0.0335}},
    },
    "perturbdiff": {
        "preset": "perturbdiff",
        "overrides": ["model.backbone.dim=128", "model.backbone.depth=4", "model.backbone.heads=4", "data.dataset=kang_pbmc", "data.hvg=2000",
                      "data.set_size=32", "train.sets_per_batch=4", "train.lr=2e-3", "train.steps=2000", "data.split.kind=held_out_context",
                      "data.split.test_contexts=[CD4T]", "data.split.val_frac=0.0", "train.checkpoint_every=100000", "train.progress=false",
                      # as the official code: the held-out type's context row stays untrained (control_sets none), which
                      # the pre-flight refuses unless asked; --context-draws measures what that row does
                      "preflight.allow_unembedded=true"],
        "genes": None,
        "metrics": ["mse", "pearson_delta", "r2", "mae", "discrimination_score_l1"],
        "official": {"mse": 0.0031, "pearson_delta": 0.76, "r2": 0.889, "control": {"mse": 0.0037, "r2": 0.868}},
    },
}


def official_r2(truth: Any, pred: Any) -> float:
    """R2 as the official PerturbDiff sampler reports it (``sampling_generation.py:177``).

    Both inputs are cells x genes arrays of the scored cells, all held-out conditions and cell types
    pooled together; each is averaged over its cells to one per-gene mean vector, and the score is the
    coefficient of determination of the predicted means against the true means across genes, with the
    true means as the reference (``1 - SS_res / SS_tot`` over genes). No delta, no control, no per-condition
    averaging. Passing control cells as ``pred`` gives the matching no-change baseline.
    """
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if t.ndim != 2 or p.ndim != 2 or t.shape[1] != p.shape[1] or len(t) == 0 or len(p) == 0:
        raise ValueError(f"official_r2 needs two non-empty cells x genes arrays with the same genes, got {t.shape} and {p.shape}")
    mt, mp = t.mean(0), p.mean(0)
    ss_tot = float(((mt - mt.mean()) ** 2).sum())
    if ss_tot == 0.0:
        raise ValueError("official_r2 is undefined when the true mean expression is the same for every gene")
    return 1.0 - float(((mt - mp) ** 2).sum()) / ss_tot


def official_scores(truth: Any, pred: Any, control: Any) -> dict[str, dict[str, float]]:
    """``--scoring official``: the official r2 (pooled means) for the model and for the control-mean baseline."""
    return {"r2_official": {"model": official_r2(truth, pred), "control": official_r2(truth, control)}}


def held_out_contexts(dataset: Any) -> list[str]:
    """Names of the contexts of the test cells that no perturbed training cell has (Kang: CD4T): their rows of a one-hot
    context table never receive a gradient when only perturbed sets are trained, so they keep their random start."""
    contexts = np.asarray([str(c) for c in dataset.data.contexts], dtype=object)
    control = np.asarray(dataset.data.table.is_control)
    train, test = dataset.split.train.numpy(), dataset.split.test.numpy()
    seen = set(contexts[train[~control[train]]].tolist())
    return sorted(set(contexts[test].tolist()) - seen)


def context_draws(table: torch.Tensor, rows: list[int], draws: int, seed: int, score: Any) -> list[dict[str, Any]]:
    """Scores with the held-out contexts' rows of ``table`` (a one-hot context embedding weight) re-drawn ``draws`` times
    from N(0, 1), the law both codes start them from (``nn.Embedding``); ``score()`` predicts and scores. Restores the rows."""
    kept = table[rows].clone()
    out = []
    try:
        for k in range(draws):
            g = torch.Generator().manual_seed(1_000 * seed + k)
            with torch.no_grad():
                table[rows] = torch.randn(len(rows), table.shape[1], generator=g).to(table)
            out.append({"draw": k, "scores": score()})
    finally:
        with torch.no_grad():
            table[rows] = kept
    return out


def run_seed(name: str, seed: int, work: Path, weights: str = "ema", scoring: str = "distgen", device: str = "cpu",
             draws: int = 0) -> dict[str, Any]:
    from distgen.config import load_yaml
    from distgen.data.prepared import Dataset
    from distgen.data.section import data_section
    from distgen.pipeline.predict import load_run_model, predict
    from distgen.train.run import train_run

    setup = SETUPS[name]
    run = work / f"{name}_seed{seed}"
    t0 = time.perf_counter()
    if not (run / "checkpoints").exists():
        train_run(setup["preset"], run, [*setup["overrides"], f"train.seed={seed}"])
    train_s = time.perf_counter() - t0
    dataset = Dataset.load(data_section(load_yaml(run / "config.yaml")["data"]), run / "split.json")
    model = load_run_model(run, dataset, None, weights, torch.device(device))
    t1 = time.perf_counter()
    pred = predict(model, dataset, "test", seed=seed, genes=setup["genes"], preflight=False)
    predict_s = time.perf_counter() - t1
    scores = score_prediction(name, pred, dataset.truth("test"), scoring, work / f"eval_{name}_seed{seed}_{weights}")
    res = {"seed": seed, "weights": weights, "scoring": scoring, "train_seconds": round(train_s, 1), "predict_seconds": round(predict_s, 1),
           "scores": scores, "response": response_fit(pred, dataset.truth("test"))}
    if draws:
        names = held_out_contexts(dataset)
        table = getattr(getattr(model, "conditioner", None), "context", None)
        if not names or not isinstance(table, torch.nn.Embedding):
            raise ValueError("--context-draws needs a held-out context and a model with a one-hot context table (covariate conditioner)")
        rows = [dataset.info.contexts.index(n) for n in names]

        def score() -> dict[str, dict[str, float]]:
            p = predict(model, dataset, "test", seed=seed, genes=setup["genes"], preflight=False)
            return score_prediction(name, p, dataset.truth("test"), scoring, work / f"eval_{name}_seed{seed}_{weights}_draw")

        res["context_draws"] = {"contexts": names, "draws": context_draws(table.weight, rows, draws, seed, score)}
    return res


def response_fit(pred: Any, truth: Any) -> dict[str, float]:
    """How the predicted mean response compares with the true one, over genes (perturbed cells pooled, both against the
    mean of the truth's control cells): ``slope`` of the least-squares fit of the predicted on the true response through
    0 (1: right size; below 1: too small), ``corr`` (their Pearson correlation), ``rms_error`` of the predicted means,
    ``rms_response`` (size of the true response) and ``mean_shift`` (mean over genes of predicted minus true mean)."""
    truth = truth if truth.genes == pred.genes else truth.with_genes(pred.genes)
    tx, px = truth.X.cpu().double().numpy(), pred.X.cpu().double().numpy()
    ctrl = tx[truth.is_control].mean(0)
    dt, dp = tx[~truth.is_control].mean(0) - ctrl, px[~pred.is_control].mean(0) - ctrl
    return {"slope": float(dp @ dt / (dt @ dt)), "corr": float(np.corrcoef(dp, dt)[0, 1]), "rms_error": float(np.sqrt(((dp - dt) ** 2).mean())),
            "rms_response": float(np.sqrt((dt**2).mean())), "mean_shift": float((dp - dt).mean())}


def score_prediction(name: str, pred: Any, truth: Any, scoring: str, eval_dir: Path) -> dict[str, dict[str, float]]:
    """Scores of predicted ``Cells`` against the held-out truth: ``distgen`` (``api.evaluate``, cell-eval metrics, control
    baseline) or ``official`` (``official_scores``). Also used by ``perturbdiff_official_loop.py``, so both score alike."""
    from distgen import api

    truth = truth if truth.genes == pred.genes else truth.with_genes(pred.genes)
    if scoring == "official":
        tx, px = truth.X.cpu().numpy(), pred.X.cpu().numpy()
        return official_scores(tx[~truth.is_control], px[~pred.is_control], tx[truth.is_control])
    metrics = SETUPS[name]["metrics"]
    report = api.evaluate(pred, truth, eval_dir, baselines=["control"], metric_names=metrics, ceiling=False, make_plots=False, progress=False)
    return {m: {"model": report.metrics[m]["model"], "control": report.metrics[m]["baselines"].get("control")} for m in metrics}


def _sd(values: list[float]) -> float:
    """Sample standard deviation over seeds; 0 for one seed, nan when a value is not finite (statistics.stdev fails on nan)."""
    if len(values) < 2:
        return 0.0
    return statistics.stdev(values) if all(np.isfinite(values)) else float("nan")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(SETUPS), required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--work", default="equal_budget_runs")
    p.add_argument("--weights", choices=["ema", "raw"], default="ema", help="score the EMA (default) or the raw weights")
    p.add_argument("--scoring", choices=["distgen", "official"], default="distgen",
                   help="distgen: api.evaluate (cell-eval metrics); official: the r2 of pooled means that the official PerturbDiff sampler prints")
    p.add_argument("--out")
    p.add_argument("--device", default="cpu", help="where to predict (training follows train.device, auto by default: set train.precision=fp32 for fp32 on a GPU)")
    p.add_argument("--override", action="append", default=[], help="extra dotted override (e.g. train.steps=2 for a smoke run)")
    p.add_argument("--context-draws", type=int, default=0, metavar="K",
                   help="also score each run K times with the held-out contexts' (untrained) one-hot rows re-drawn from N(0, 1)")
    args = p.parse_args(argv)
    SETUPS[args.model]["overrides"] += args.override
    torch.set_flush_denormal(True)
    work = Path(args.work)
    runs = [run_seed(args.model, s, work, args.weights, args.scoring, args.device, args.context_draws) for s in args.seeds]
    metrics = SETUPS[args.model]["metrics"] if args.scoring == "distgen" else ["r2_official"]
    mean = {m: statistics.fmean(r["scores"][m]["model"] for r in runs) for m in metrics}
    sd = {m: _sd([r["scores"][m]["model"] for r in runs]) for m in metrics}
    report = {"model": args.model, "weights": args.weights, "command": "python benchmarks/equal_budget.py " + " ".join(argv or []), "overrides": SETUPS[args.model]["overrides"],
              "runs": runs, "mean": mean, "sd": sd, "official": SETUPS[args.model]["official"],
              "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]}}
    print(json.dumps({"mean": mean, "sd": sd, "official": report["official"]}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
