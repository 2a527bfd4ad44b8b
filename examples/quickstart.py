"""Quickstart in Python: what ``distgen quickstart`` does, one public call per step.

1. load the bundled Norman 2019 K562 CRISPRa data with a split that holds out double perturbations
   whose two single perturbations were seen in training (no download);
2. build the ``perturbdiff-small`` preset (diffusion over populations + energy-distance term + Cross-DiT);
3. fit it with the preset's training recipe;
4. predict every held-out combination from control cells (``distgen.predict``);
5. evaluate against the control / mean / additive / linear baselines and the half-split ceiling.

Usage::

    python examples/quickstart.py                 # the preset's 1500 steps, full metric suite and plots (~1.5 min)
    python examples/quickstart.py --tiny          # a tiny network, 5 steps, 3 metrics (seconds)
    python examples/quickstart.py --steps 3000 --out /tmp/qs

In one call instead: ``distgen.run("perturbdiff-small", "out/", ["data.split={kind: combo_seen2, test_frac: 0.9}"])``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import distgen

PRESET = "perturbdiff-small"
#: --tiny: the same preset and components, much smaller sizes (names unchanged).
TINY = ["model.backbone.dim=16", "model.backbone.heads=2", "model.backbone.depth=1", "model.conditioner.part_dim=8",
        "model.conditioner.dim=16", "model.dynamics.sampler.start_step=9", "train.sets_per_batch=2", "data.set_size=8"]
#: Held out: double perturbations whose two singles were seen in training (4 pairs at this fraction).
SPLIT = {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="quickstart_py", help="output folder (default ./quickstart_py)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's 1500; 5 with --tiny)")
    p.add_argument("--tiny", action="store_true", help="tiny network, 5 steps, 3 metrics, no plots: seconds on a CPU")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)  # CPU: denormal floats make attention several times slower
    doc = distgen.load_config(PRESET, TINY if args.tiny else [])  # the preset: model, train and data sections
    steps = args.steps or (5 if args.tiny else doc["train"]["steps"])

    # 1. data, loaded once: .info (genes, perturbations), .train_table (tensors), .split (train/val/test cells)
    data = distgen.load_data(**{**doc["data"], "dataset": "norman_k562", "split": SPLIT})  # the preset's set sampling
    print(f"Norman K562: {data.info.n_genes} genes; held out: {', '.join(data.split.test_conditions)}")

    # 2. model: from a preset name, a YAML path or a dict (here the loaded preset), plus dotted overrides
    model = distgen.build(doc, data)
    print(f"built {PRESET}: {sum(p.numel() for p in model.parameters()):,} parameters")

    # 3. fit with the config's train: section (checked first: can the model embed every held-out atom?)
    distgen.fit(model, data, config=doc, steps=steps, progress=not args.tiny)

    # 4. predict the held-out combinations (as many cells as were measured): labelled Cells
    pred = distgen.predict(model, data)
    # 5. evaluate against the baselines (fitted on the same training cells) and the ceiling
    out = Path(args.out)
    report = distgen.evaluate(
        pred, data, out / "eval", progress=not args.tiny, make_plots=not args.tiny,
        metric_names=["mse", "pearson_delta", "discrimination_score_l1"] if args.tiny else None,
    )
    print(f"\n{'metric':<24}{'model':>9}{'additive':>10}{'ceiling':>9}")
    for name, m in report.metrics.items():
        add, ceil = (m.get("baselines") or {}).get("additive", float("nan")), m.get("ceiling") or float("nan")
        print(f"{name:<24}{m['model']:>9.4f}{add:>10.4f}{ceil:>9.4f}")
    print(f"\nreport: {out / 'eval' / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
