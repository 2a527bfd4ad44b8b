"""Quickstart in Python: what ``distgen quickstart`` does, one public call per step.

1. load the bundled Norman 2019 K562 CRISPRa data with a split that holds out double perturbations
   whose two single perturbations were seen in training (no download);
2. build the ``scdfm-small`` preset (flow matching + MMD + PAD-Transformer);
3. fit it;
4. predict every held-out combination from control cells (``model.predict``: controls in, cells out);
5. evaluate against the control / mean / additive / linear baselines and the half-split ceiling.

Usage::

    python examples/quickstart.py                 # 300 steps, full metric suite and plots (minutes)
    python examples/quickstart.py --tiny          # a tiny network, 5 steps, 3 metrics (seconds)
    python examples/quickstart.py --steps 1000 --out /tmp/qs

In one call instead: ``distgen.run("scdfm-small", "out/", ["train.steps=300"])``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import distgen
from distgen.data import write_ground_truth, write_predictions

#: --tiny: the same preset and components, much smaller sizes (names unchanged).
TINY = ["model.backbone.d_model=16", "model.backbone.heads=2", "model.backbone.layers=1",
        "model.backbone.graph_k=5", "model.genes_per_step=64", "model.dynamics.steps=3", "data.set_size=8"]


def predict_held_out(model, data, set_size: int, seed: int = 0):
    """Generate each held-out condition from random control cells: (pred, real) AnnData, cell-eval layout."""
    d, test, train = data.data, data.split.test.numpy(), data.split.train.numpy()
    controls = test[d.is_control[test]]
    if controls.size == 0:  # the split kept every control cell for training
        controls = train[d.is_control[train]]
    perturbed = test[~d.is_control[test]]
    rng = np.random.default_rng(seed)
    cells, conditions = [], []
    for cond in sorted(set(d.conditions[perturbed])):
        n = int((d.conditions[perturbed] == cond).sum())  # as many cells as were measured
        for start in range(0, n, set_size):
            k = min(set_size, n - start)
            ctrl = d.table.X[torch.from_numpy(rng.choice(controls, k))][None]  # [1, k, G]
            out = model.predict(ctrl, torch.ones(1, k, dtype=torch.bool), d.labels_for([cond]))
            cells.append(out[0].numpy())
            conditions += [cond] * k
    pred = write_predictions(np.concatenate(cells), conditions, d.table.X[controls], d.info.genes, data=d)
    real = write_ground_truth(d, perturbed, controls)
    return pred, real


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="quickstart_py", help="output folder (default ./quickstart_py)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 300; 5 with --tiny)")
    p.add_argument("--tiny", action="store_true", help="tiny network, 5 steps, 3 metrics, no plots: seconds on a CPU")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)  # CPU: denormal floats make attention several times slower
    if args.tiny:
        torch.set_num_threads(1)
    steps = args.steps or (5 if args.tiny else 300)
    doc = distgen.load_config("scdfm-small", TINY if args.tiny else [])  # the preset: model, train and data sections

    # 1. data: .info (genes, perturbations), .train_table (tensors), .split (train/val/test cells)
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0, "test_frac": 0.9})
    print(f"Norman K562: {data.info.n_genes} genes; held out: {', '.join(data.split.test_conditions)}")

    # 2. model: from a preset name, a YAML path or a dict (here the loaded preset), plus dotted overrides
    model = distgen.build(doc, data.info, seen_perturbations=data.seen_perturbations())
    print(f"built scdfm-small: {sum(p.numel() for p in model.parameters()):,} parameters")

    # 3. fit: keyword arguments are the train: section of a config (the preset's, with our step count)
    set_size = doc["data"]["set_size"]
    model.fit(data.train_table, set_size=set_size, matcher=doc["data"]["matcher"],
              **{**doc["train"], "steps": steps, "progress": not args.tiny})

    # 4. predict the held-out combinations, 5. evaluate against baselines and ceiling
    pred, real = predict_held_out(model.eval(), data, set_size)
    tr = data.split.train.numpy()  # training cells: what the baselines are fitted on
    train = write_ground_truth(data.data, tr, tr[data.data.is_control[tr]])
    out = Path(args.out)
    summary = distgen.evaluate(
        pred, real, out / "eval", train=train, progress=not args.tiny, make_plots=not args.tiny,
        metric_names=["mse", "pearson_delta", "discrimination_score_l1"] if args.tiny else None,
    )
    print(f"\n{'metric':<24}{'model':>9}{'additive':>10}{'ceiling':>9}")
    for name, m in summary["metrics"].items():
        add, ceil = (m.get("baselines") or {}).get("additive", float("nan")), m.get("ceiling") or float("nan")
        print(f"{name:<24}{m['model']:>9.4f}{add:>10.4f}{ceil:>9.4f}")
    print(f"\nreport: {out / 'eval' / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
