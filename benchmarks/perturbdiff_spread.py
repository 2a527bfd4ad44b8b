"""Distribution over distributions: do generated replicate populations vary as much as real ones?

Synthetic data (``distgen.data.synthetic.populations_dataset``): every condition is observed in
several populations whose hidden factor ``z`` shifts the baseline and scales the response. The
population is the *batch* used to cut training sets (one population per set, as PerturbDiff groups
by (perturbation, cell type, batch)) but it is never given to the model (``use_batch: false``);
the perturbed cells of some populations are held out (``held_out_batch``).

For every condition and held-out population ``p`` a population ``G_p`` is generated from ``p``'s
control cells (``--matcher same_batch``: controls carry ``z`` through the baseline shift) or from
controls pooled over populations (``--matcher same_context``: ``z`` is invisible, any spread must
come from the generator). With real held-out replicates ``R_p`` the script reports per condition

* the suite's spread metrics (``distgen.evaluation.spread``, energy kernel): ``spread_ratio`` (root of the
  mean unbiased pairwise MMD^2 among generated / among real populations; 1 = same spread; before 2026-12-06
  the mean of biased MMDs, which the published tables hold), ``population_mmd2``
  (MMD^2 between the two sets of populations; 0 = same distribution over distributions) and
  ``replicate_coverage`` (fraction of real replicates that a generated population covers);
* ``real_spread`` / ``gen_spread``: mean over pairs ``p < q`` of the *unbiased* energy distance
  (sampling noise contributes 0 in expectation), and their ratio ``ed_spread_ratio``;
* ``fit`` = mean ``ED(G_p, R_p)`` and ``identify`` = fraction of ``p`` whose generated population is
  closer to its own replicate ``R_p`` than to any other ``R_q`` (chance = 1 / #populations).

Usage::

    python benchmarks/perturbdiff_spread.py --models perturbdiff-small scdfm-small --matcher same_batch --out spread.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import numpy as np
import torch

from distgen.api import build
from distgen.config import load_config
from distgen.data import PerturbationData, PerturbationSchema, make_split
from distgen.data.synthetic import populations_dataset
from distgen.evaluation.spread import population_mmd2, replicate_coverage, spread_ratio
from distgen.kernels import kernels
from distgen.kernels.distances import energy_distance
from distgen.train import fit

#: Overrides that hide the population (the hidden factor's carrier) from each model's conditioner.
HIDE_BATCH = {"perturbdiff": ["model.conditioner.use_batch=false"], "scdfm": []}


def ed(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased energy distance between two cell sets ``[n, G]``, ``[k, G]``."""
    return float(energy_distance(x[None].double(), y[None].double(), unbiased=True)[0])


def spread_scores(gen: dict[str, torch.Tensor], real: dict[str, torch.Tensor], kernel: Any) -> dict[str, float]:
    """Spread of generated vs real replicate populations of one condition (keys: population ids)."""
    pops = sorted(real)
    pairs = list(itertools.combinations(pops, 2))
    real_spread = float(np.mean([ed(real[p], real[q]) for p, q in pairs]))
    gen_spread = float(np.mean([ed(gen[p], gen[q]) for p, q in pairs]))
    cross = np.array([[ed(gen[p], real[q]) for q in pops] for p in pops])
    n = min(min(len(v) for v in real.values()), min(len(v) for v in gen.values()))
    g = torch.stack([gen[p][:n] for p in pops]).double()
    r = torch.stack([real[p][:n] for p in pops]).double()
    return {
        "real_spread": real_spread,
        "gen_spread": gen_spread,
        "ed_spread_ratio": gen_spread / real_spread if real_spread > 0 else float("nan"),
        "spread_ratio": float(spread_ratio(g, r, kernel)),
        "population_mmd2": float(population_mmd2(g, r, kernel)),
        "replicate_coverage": float(replicate_coverage(g, r, kernel)),
        "fit": float(np.mean(np.diag(cross))),
        "identify": float(np.mean(cross.argmin(1) == np.arange(len(pops)))),
    }


def run_model(preset: str, data: PerturbationData, split: Any, args: argparse.Namespace) -> dict[str, Any]:
    family = "perturbdiff" if preset.startswith("perturbdiff") else "scdfm"
    doc = load_config(preset, [*HIDE_BATCH[family], *args.override])
    table, info = data.table, data.info
    set_size = int(doc.get("data", {}).get("set_size", 32))
    torch.manual_seed(args.seed)
    model = build(doc, info, seen_perturbations=list(info.perturbations))
    train = table.subset(split.train)
    if hasattr(model, "prepare"):
        model.prepare(train)
    opts = {**doc.get("train", {}), "steps": args.steps, "progress": False, "seed": args.seed}
    t0 = time.perf_counter()
    fit(model, train, set_size=set_size, matcher=args.matcher, **opts)
    train_s = time.perf_counter() - t0
    out = {"preset": preset, "train_seconds": round(train_s, 1), **_score(model, data, split, set_size, args)}
    variants = []
    for variant in args.variants:  # the same trained weights, sampled differently (guidance, sampler...)
        other = build(load_config(preset, [*HIDE_BATCH[family], *args.override, *variant.split()]), info,
                      seen_perturbations=list(info.perturbations))
        other.load_state_dict(model.state_dict())
        variants.append({"overrides": variant, **_score(other, data, split, set_size, args)})
    return {**out, "variants": variants} if variants else out


def _score(model: Any, data: PerturbationData, split: Any, set_size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Generate every held-out population of every test condition and score the spread."""
    table = data.table
    model.eval()
    pops_all = np.asarray(data.batches)
    rng = torch.Generator().manual_seed(args.seed)
    per_cond: dict[str, Any] = {}
    for cond in split.test_conditions:
        real, gen = {}, {}
        for pop in sorted(set(pops_all[split.test.numpy()][data.conditions[split.test.numpy()] == cond])):
            rows = split.test[(data.conditions[split.test.numpy()] == cond) & (pops_all[split.test.numpy()] == pop)]
            real[pop] = table.X[rows]
            ctrl_mask = table.is_control.numpy() & (pops_all == pop if args.matcher == "same_batch" else True)
            ctrl = table.X[torch.from_numpy(np.flatnonzero(ctrl_mask))]
            pick = torch.randint(len(ctrl), (len(rows) // set_size * set_size or set_size,), generator=rng)
            x = ctrl[pick].view(-1, set_size, ctrl.shape[1])
            labels = table.labels.index(rows[:1]).index(torch.zeros(len(x), dtype=torch.long))
            gen[pop] = model.predict(x, torch.ones(x.shape[:2], dtype=torch.bool), labels).reshape(-1, ctrl.shape[1])
        per_cond[cond] = spread_scores(gen, real, kernels.build("energy"))
    keys = next(iter(per_cond.values())).keys()
    mean = {k: float(np.mean([v[k] for v in per_cond.values()])) for k in keys}
    return {"mean": mean, "per_condition": per_cond}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["perturbdiff-small", "scdfm-small"])
    p.add_argument("--matcher", default="same_batch", choices=["same_batch", "same_context"])
    p.add_argument("--override", nargs="*", default=[])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--populations", type=int, default=10)
    p.add_argument("--heldout", type=float, default=0.4, help="fraction of populations held out")
    p.add_argument("--cells", type=int, default=64, help="cells per (condition, population)")
    p.add_argument("--genes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="*", default=[],
                   help="also sample the trained model with these overrides, each a space-separated list "
                        "(e.g. 'model.dynamics.guidance=1.0'); the weights are the same")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    adata, _ = populations_dataset(n_genes=args.genes, n_atoms=4, n_combos=2, n_populations=args.populations,
                                   cells_per_group=args.cells, latent_scale=1.0, seed=args.seed)
    schema = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",),
                                batch_col="population", perturbation_type="genetic", scale="counts")
    data = PerturbationData.from_anndata(adata, schema)
    split = make_split(data, "held_out_batch", test_frac=args.heldout, val_frac=0.0, seed=args.seed)
    results = [run_model(m, data, split, args) for m in args.models]
    for r in results:
        print(r["preset"], json.dumps({k: round(v, 4) for k, v in r["mean"].items()}), f"train {r['train_seconds']} s")
        for v in r.get("variants", []):
            print("  +", v["overrides"], json.dumps({k: round(x, 4) for k, x in v["mean"].items()}))
    out = {"args": vars(args), "torch": torch.__version__, "results": results}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
