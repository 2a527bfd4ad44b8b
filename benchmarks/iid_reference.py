"""What a generator that samples cells independently could score, next to a baseline that reuses real cells.

A closed-form baseline (``additive``, ``mean_perturbation``, ...) predicts a held-out group by shifting
real control cells of its context; with as many controls as real cells it uses every control, so the
mean of its prediction *is* its estimate, with no sampling error. A generative model draws its cells
independently; the mean of ``n`` such cells misses the mean of the distribution it samples by an
error of covariance ``Sigma / n``. On distributional metrics this costs the generator something the
baseline never pays, even if it samples exactly the baseline's distribution.

For each held-out group of a run this script scores (Euclidean E-distance, ``distgen evaluate``'s
``edistance``, against the group's real cells):

* ``model``: the run's own prediction (``RUN/pred.h5ad``, as ``distgen run`` wrote it);
* ``<baseline>``: the baseline as ``distgen evaluate`` scores it (same training cells, same controls);
* ``<baseline>, sampled i.i.d.``: the baseline's cells all moved by one draw of ``N(0, Sigma / n)``,
  ``Sigma`` the covariance of the baseline's own predicted cells of the group, ``n`` their number: the
  error of an ``n``-cell i.i.d. sample's mean, and nothing else changed (mean and spread over
  ``--draws`` draws);
* ``ceiling``: one half of the real cells against the other (``distgen evaluate``'s positive reference;
  mean over ``--draws`` random halvings).

Usage (a run directory written by ``distgen run``)::

    python benchmarks/iid_reference.py runs/n5_0 --baseline additive --draws 50

It prints one table (means over the groups) and, with ``--json``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distgen.config import load_yaml
from distgen.data.prepared import Dataset
from distgen.data.section import data_section
from distgen.evaluation.ceiling import half_split
from distgen.evaluation.metrics.distributional import EDistance
from distgen.pipeline.references import dataset_references


def edistance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``distgen evaluate``'s ``edistance`` (Euclidean, V-statistic) of two ``[n, G]`` cell sets, in float64."""
    return float(EDistance().distance(a.double(), b.double()))


def mean_error_draws(cells: torch.Tensor, draws: int, gen: torch.Generator) -> torch.Tensor:
    """``[draws, G]`` errors of an ``n``-cell i.i.d. sample's mean: ``N(0, Sigma / n)``, ``Sigma`` = cov(``cells``)."""
    x = cells.double()
    n = x.shape[0]
    centred = x - x.mean(0)
    # Sigma / n = C^T C / (n (n - 1)) with C the centred cells: draw C^T z / sqrt(n (n - 1)), z ~ N(0, I_n)
    z = torch.randn(draws, n, generator=gen, dtype=torch.float64)
    return (z @ centred) / float(np.sqrt(n * (n - 1)))


def group_rows(cells: Any, condition: str, context: str) -> torch.Tensor:
    """Rows of ``cells`` (``distgen.types.Cells``) of one (condition, context) group."""
    keep = (cells.conditions == condition) & (cells.contexts == context)
    return cells.X[torch.from_numpy(np.flatnonzero(keep))]


def reference_table(run: Path, baseline: str, draws: int, seed: int) -> dict[str, Any]:
    """Per group and on average: the model, the baseline, the baseline sampled i.i.d., the ceiling."""
    from distgen.data import layout
    from distgen.pipeline.predict import predict_section

    train_dir = run / "train" if (run / "train" / "config.yaml").exists() else run
    if not all(p.exists() for p in (run / "real.h5ad", run / "pred.h5ad", train_dir / "config.yaml")):
        raise FileNotFoundError(f"{run} has no pred.h5ad, real.h5ad and train/config.yaml: give a folder written by distgen run")
    config = load_yaml(train_dir / "config.yaml")
    dataset = Dataset.load(data_section(config.get("data")), train_dir / "split.json")
    truth = dataset.capped(predict_section(config)["max_cells_per_condition"]).truth("test")  # = the run's real.h5ad
    pred, _, _, _ = layout.read_pair(run / "pred.h5ad", run / "real.h5ad")
    refs, notes = dataset_references(dataset, truth, [baseline])
    base = refs[baseline]
    gen = torch.Generator().manual_seed(seed)
    rows, per_draw = [], []
    pred_contexts = set(pred.contexts.tolist())  # a file written without a cell-type column has the one context "all"
    for (cond, ctx) in truth.groups(by_context=True):
        if cond == truth.control:
            continue
        real, ref = group_rows(truth, cond, ctx), group_rows(base, cond, ctx)
        mine = group_rows(pred, cond, ctx if ctx in pred_contexts else next(iter(pred_contexts)))
        if len(real) < 4 or len(mine) == 0:
            continue
        sampled = [edistance(ref + e.to(ref.dtype), real) for e in mean_error_draws(ref, draws, gen)]
        per_draw.append(sampled)
        one_group = torch.zeros(len(real), dtype=torch.long)
        halves = [edistance(real[a], real[b]) for a, b in (half_split(one_group, gen) for _ in range(draws))]  # the ceiling's halves
        rows.append({"condition": cond, "context": ctx, "cells": len(real), "model": edistance(mine, real),
                     "baseline": edistance(ref, real), "sampled_mean": float(np.mean(sampled)),
                     "sampled_min": float(np.min(sampled)), "sampled_max": float(np.max(sampled)),
                     "ceiling": float(np.mean(halves))})
    if not rows:
        raise ValueError(f"{run}: no held-out perturbed group with at least 4 real cells and generated cells")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("model", "baseline", "sampled_mean", "ceiling")}
    draw_means = np.mean(per_draw, axis=0)  # one i.i.d. draw for every group at once, averaged over the groups
    mean["sampled_p05"], mean["sampled_p95"] = (float(v) for v in np.percentile(draw_means, [5, 95]))
    mean["sampled_within_1.1x"] = float(np.mean(draw_means <= 1.1 * mean["baseline"]))
    return {"run": str(run), "baseline": baseline, "draws": draws, "seed": seed, "groups": rows, "mean": mean, "notes": notes}


def markdown(res: dict[str, Any]) -> str:
    b, m = res["baseline"], res["mean"]
    lines = [f"| group | cells | model | {b} | {b}, sampled i.i.d. (mean, min-max over {res['draws']} draws) | ceiling (half vs half) |",
             "|---|---:|---:|---:|---|---:|"]
    for r in res["groups"]:
        lines.append(f"| {r['condition']} ({r['context']}) | {r['cells']} | {r['model']:.4f} | {r['baseline']:.4f} | "
                     f"{r['sampled_mean']:.4f} ({r['sampled_min']:.4f}-{r['sampled_max']:.4f}) | {r['ceiling']:.4f} |")
    lines.append(f"| mean | | **{m['model']:.4f}** ({m['model'] / m['baseline']:.2f}x) | **{m['baseline']:.4f}** | "
                 f"**{m['sampled_mean']:.4f}** ({m['sampled_mean'] / m['baseline']:.2f}x) | {m['ceiling']:.4f} |")
    lines.append(f"\nThe mean over groups of one i.i.d. draw per group: 5th-95th percentile {m['sampled_p05']:.4f}-{m['sampled_p95']:.4f} "
                 f"({m['sampled_p05'] / m['baseline']:.2f}x-{m['sampled_p95'] / m['baseline']:.2f}x {b}); within 1.1x of {b} on "
                 f"{100 * m['sampled_within_1.1x']:.0f}% of {res['draws']} draws.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories written by distgen run (pred.h5ad, real.h5ad, train/)")
    p.add_argument("--baseline", default="additive", help="a registered closed-form baseline (default additive)")
    p.add_argument("--draws", type=int, default=50, help="draws of the i.i.d. mean error and of the halvings (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the numbers here")
    args = p.parse_args(argv)
    if args.draws < 1:
        p.error("--draws must be >= 1")
    from distgen.models import models
    from distgen.models.base import FittedModel

    try:
        kind = models.get(args.baseline)
    except LookupError as exc:
        p.error(str(exc))
    if not (isinstance(kind, type) and issubclass(kind, FittedModel)):
        p.error(f"--baseline {args.baseline!r} is not a closed-form baseline (a FittedModel such as additive or mean_perturbation)")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    results = []
    for run in args.runs:
        try:
            res = reference_table(run, args.baseline, args.draws, args.seed)
        except (FileNotFoundError, ValueError) as exc:
            p.error(f"{run}: {exc}")
        results.append(res)
        print(f"## {run}\n\n{markdown(res)}\n")
        for note in res["notes"]:
            print(f"note: {note}", file=sys.stderr)
    if len(results) > 1:
        keys = ("model", "baseline", "sampled_mean", "ceiling")
        avg = {k: float(np.mean([r["mean"][k] for r in results])) for k in keys}
        print(f"over {len(results)} runs: model {avg['model']:.4f} ({avg['model'] / avg['baseline']:.2f}x), "
              f"{args.baseline} {avg['baseline']:.4f}, sampled i.i.d. {avg['sampled_mean']:.4f} "
              f"({avg['sampled_mean'] / avg['baseline']:.2f}x), ceiling {avg['ceiling']:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "host": platform.node(), "torch": torch.__version__}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
