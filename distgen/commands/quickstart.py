"""``distgen quickstart``: the main job on bundled data, no download, a couple of minutes on a 2-core CPU."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """examples:
  distgen quickstart                                   # perturbdiff-small, writes ./quickstart/
  distgen quickstart --out /tmp/qs train.seed=1        # another seed (4 held-out pairs: results move)
  distgen quickstart --preset scdfm-small --steps 300 model.dynamics.solver.steps=3   # the flow-matching model (slower on CPU)
"""

#: The held-out set: double perturbations whose two singles were seen in training (4 pairs at this fraction).
SPLIT = "data.split={kind: combo_seen2, seed: 0, test_frac: 0.9}"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="train a small model on bundled Norman K562 data, predict held-out combinations, evaluate, report",
        description="Train a small preset (perturbdiff-small by default) on the bundled Norman 2019 K562 CRISPRa data, "
        "generate the held-out double perturbations whose single constituents were seen in training, and evaluate "
        "them against the control, mean, additive and linear baselines and a half-split ceiling. No download; about "
        "80 seconds on an idle 2-core CPU (docs/benchmarks.md).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="quickstart", help="output folder (default ./quickstart)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training steps (default: the preset's, 1500 for perturbdiff-small)")
    p.add_argument("--preset", default="perturbdiff-small",
                   help="preset to train (default perturbdiff-small; scdfm-small runs the gene-token flow-matching model, "
                        "several times slower on a CPU)")
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.seed=1 model.dynamics.guidance=1.0")
    p.set_defaults(run=run)


def _clear_previous_quickstart(out: Path) -> None:
    """Make ``out`` ready: a previous quickstart there is replaced; any other non-empty folder is refused."""
    import shutil

    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out} is a file; choose a folder")
    if not any(out.iterdir()):
        return
    if not (out / "experiment.yaml").is_file():
        raise ValueError(f"--out {out} is not empty and holds no previous quickstart; choose another --out")
    print(f"replacing the previous quickstart in {out}")
    shutil.rmtree(out)


def run(args: argparse.Namespace) -> int:
    import time

    from distgen.pipeline import experiment

    out = Path(args.out)
    _clear_previous_quickstart(out)
    t0 = time.perf_counter()
    # The evaluation below generates and scores the test split: skip the trainer's generated-cell validation.
    overrides = ["data.dataset=norman_k562", SPLIT, "train.val_metrics=[]"]
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    from distgen.config import check_repeated_overrides

    overrides += check_repeated_overrides(args.overrides)
    print(f"distgen quickstart: training {args.preset} on bundled Norman K562 "
          f"({'preset default' if args.steps is None else args.steps} steps) ...")
    summary = experiment.run(args.preset, out, overrides, progress=True)
    page = out / "eval" / "report.html"
    if page.is_file():
        print(f"\nreport: {page}   (open it in a browser: headline, per perturbation, distributions, training)")
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in summary.get("timings_s", {}).items() if not isinstance(v, bool))  # not a _partial flag
    print(f"\nheld-out combinations: {summary.get('n_perturbations')}  genes: {summary.get('n_genes')}  "
          f"({time.perf_counter() - t0:.0f} s: {stages})\n")
    print(experiment.headline(summary))
    looks = [(page, "the report: model vs every baseline and the ceiling, per perturbation, cells, training"),
             (out / "eval" / "summary.md", "model vs baselines vs ceiling, normalised scores (for terminals)"),
             (out / "eval" / "metrics.csv", "per-perturbation metrics"),
             (f"{out / 'eval'}/*.png", "plots"),
             (out / "train", "run directory (config, manifest, checkpoints, metrics.csv)")]
    looks = looks if page.is_file() else looks[1:]  # the page warns instead of failing the run
    width = max(len(str(p)) for p, _ in looks)
    print("\nwhere to look:\n" + "\n".join(f"  {p!s:<{width}}  {what}" for p, what in looks))
    return 0
