"""``distgen quickstart``: the main job on bundled data, no download, a few minutes on a laptop CPU."""

from __future__ import annotations

import argparse

EXAMPLE = """examples:
  distgen quickstart                       # writes ./quickstart/
  distgen quickstart --out /tmp/qs --steps 100
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="train a small scDFM on bundled Norman K562 data, predict held-out combinations, evaluate, report",
        description="Train the scdfm-small preset on the bundled Norman 2019 K562 CRISPRa data, generate the held-out "
        "double perturbations whose single constituents were seen in training, and evaluate them against the control, "
        "mean, additive and linear baselines and a half-split ceiling. No download.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="quickstart", help="output folder (default ./quickstart)")
    p.add_argument("--steps", type=int, default=100,
                   help="training steps (default 100, one 24-cell set per step: a short CPU run; raise it for a better model)")
    p.add_argument("--preset", default="scdfm-small", help="preset to train (default scdfm-small)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from distgen.workflow.experiment import headline, run_experiment

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    out = Path(args.out)
    t0 = time.perf_counter()
    # the evaluation below generates and scores the test split; skip the trainer's generated-cell validation
    # Sized for a laptop CPU: one set per step and 3 RK4 steps (12 network evaluations) when sampling.
    overrides = [f"train.steps={args.steps}", "train.sets_per_batch=1", "train.val_metrics=[]",
                 "model.dynamics.steps=4", "data.dataset=norman_k562", "data.split={kind: combo_seen2, seed: 0, test_frac: 0.9}"]
    print(f"distgen quickstart: training {args.preset} for {args.steps} steps on bundled Norman K562 ...")
    summary = run_experiment(args.preset, out, overrides, progress=True)
    print(f"\nheld-out combinations: {summary.get('n_perturbations')}  genes: {summary.get('n_genes')}  "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print(headline(summary))
    print(f"""
where to look:
  {out / 'eval' / 'summary.md'}   model vs baselines vs ceiling, normalised scores
  {out / 'eval' / 'metrics.csv'}  per-perturbation metrics
  {out / 'eval'}/*.png            plots
  {out / 'train'}                 run directory (config, manifest, checkpoints, metrics.csv)""")
    return 0
