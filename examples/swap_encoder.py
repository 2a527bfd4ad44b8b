"""Swap the distribution encoder: the Hilbert space populations are compared (and conditioned) in.

An encoder maps a population of cells to a point in a Hilbert space and gives the distance there.
A kernel mean embedding (``kme``) with a multi-scale RBF kernel makes that distance scDFM's MMD; the
same encoder with the ``energy`` kernel makes it PerturbDiff's energy distance; a ``set_transformer``
is a learned encoder. The script

1. uses the encoders on their own: how far each held-out perturbation is from control cells, in
   both spaces, relative to two halves of the control cells (the noise floor);
2. trains scdfm-small three times, changing one config line each time: the kernel of its MMD loss
   (``model.distribution_loss.kernel.name=energy``), or a Set-Transformer summary of the control
   population as an extra condition (``model.population_encoder.name=set_transformer``).

Usage::

    python examples/swap_encoder.py                # 100 steps per model (a few minutes)
    python examples/swap_encoder.py --tiny         # tiny networks, 3 steps (seconds)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import distgen

VARIANTS = {
    "MMD, RBF kernel (scDFM)": [],
    "energy distance": ["model.distribution_loss.kernel.name=energy"],
    "+ set_transformer population": ["model.population_encoder.name=set_transformer"],
}
#: --tiny: smaller sizes, same components.
TINY = ["model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1", "model.backbone.graph_k=5",
        "model.genes_per_step=64", "model.dynamics.solver.steps=2"]
TINY_SET_TRANSFORMER = ["model.population_encoder.dim=8", "model.population_encoder.hidden=8",
                        "model.population_encoder.heads=2", "model.population_encoder.layers=1",
                        "model.population_encoder.n_inducing=4"]


def distances_to_control(data, n_cells: int, seed: int = 0) -> None:
    """Print MMD^2 (RBF) and energy distance of each held-out condition to control cells.

    The floor is the distance between two halves of the control cells: what sampling noise alone gives.
    """
    d, test = data.data, data.split.test.numpy()
    ctrl = torch.nonzero(torch.from_numpy(d.is_control)).flatten()
    ctrl = ctrl[torch.randperm(len(ctrl), generator=torch.Generator().manual_seed(seed))[: 2 * n_cells]]
    a, b = d.table.X[ctrl[:n_cells]][None], d.table.X[ctrl[n_cells:]][None]  # [1, n, G] two control halves
    full = lambda x: torch.ones(x.shape[:2], dtype=torch.bool)  # noqa: E731
    spaces = {k: distgen.build_component("encoders", {"name": "kme", "kernel": {"name": k}, "unbiased": False},
                                         n_genes=d.info.n_genes) for k in ("rbf", "energy")}
    dist = {k: lambda p, q, e=enc: e.distance(p, full(p), q, full(q)).item() for k, enc in spaces.items()}
    print(f"{'to control cells':<18}{'MMD^2 (rbf)':>13}{'energy distance':>17}")
    print(f"{'(control halves)':<18}{dist['rbf'](a, b):>13.4f}{dist['energy'](a, b):>17.3f}")
    rng = np.random.default_rng(seed)
    for cond in data.split.test_conditions:
        cells = test[d.conditions[test] == cond]
        p = d.table.X[torch.from_numpy(rng.choice(cells, min(n_cells, len(cells)), replace=False))][None]
        print(f"{cond:<18}{dist['rbf'](p, a):>13.4f}{dist['energy'](p, a):>17.3f}")


def held_out_error(model, data, m: int, seed: int = 0) -> float:
    """Mean over held-out conditions of the squared error of the generated mean expression."""
    d, train, test = data.data, data.split.train.numpy(), data.split.test.numpy()
    controls, rng, errs = train[d.is_control[train]], np.random.default_rng(seed), []
    for cond in data.split.test_conditions:
        ctrl = d.table.X[torch.from_numpy(rng.choice(controls, m))][None]  # [1, m, G]
        cells = model.predict(ctrl, torch.ones(1, m, dtype=torch.bool), d.labels_for([cond]))[0]
        errs.append(((cells.mean(0) - d.table.X[torch.from_numpy(test[d.conditions[test] == cond])].mean(0)) ** 2).mean())
    return float(torch.stack(errs).mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default 100; 3 with --tiny)")
    p.add_argument("--tiny", action="store_true", help="tiny networks, 3 steps: seconds on a CPU")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    if args.tiny:
        torch.set_num_threads(1)
    steps, m = args.steps or (3 if args.tiny else 100), 8 if args.tiny else 24

    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0, "test_frac": 0.9})
    distances_to_control(data, n_cells=32 if args.tiny else 100)

    print(f"\n{'model':<32}{'params':>9}{'seconds':>9}{'held-out mse':>14}  distribution loss / population encoder")
    for name, change in VARIANTS.items():
        tiny = TINY + (TINY_SET_TRANSFORMER if "set_transformer" in name else []) if args.tiny else []
        doc = distgen.load_config("scdfm-small", change + tiny)
        torch.manual_seed(0)
        model = distgen.build(doc, data.info, seen_perturbations=data.seen_perturbations())
        t0 = time.perf_counter()
        distgen.fit(model, data.train_table, config=doc, set_size=m, steps=steps, progress=False)  # the preset's recipe, shorter
        n_params = sum(p.numel() for p in model.parameters())
        loss, pop = doc["model"]["distribution_loss"], (doc["model"].get("population_encoder") or {}).get("name")
        err = held_out_error(model.eval(), data, m)
        print(f"{name:<32}{n_params:>9,}{time.perf_counter() - t0:>9.1f}{err:>14.4f}  "
              f"{loss['name']}({loss['kernel']['name']}) / {pop or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
