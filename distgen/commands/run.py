"""``distgen run``: train (or fit), predict the held-out conditions and evaluate, in one command."""

from __future__ import annotations

import argparse

from distgen.commands.argtypes import max_cells_arg

EXAMPLE = """examples:
  distgen run scdfm-small --out runs/scdfm
  distgen run scdfm-small model.distribution_weight=0.0 train.steps=200 --out runs/no-mmd
  distgen run additive.yaml --out runs/additive        # a closed-form model is fitted, not trained
  distgen run perturbdiff-small train.minutes=5 --max-cells 200 --out runs/quick   # a CPU budget

Writes OUT/train/ (run directory; a fitted model: OUT/split.json and, when it reports diagnostics, OUT/fit.json),
OUT/pred.h5ad, OUT/real.h5ad, OUT/eval/ (with report.html), OUT/timings.json and, last, OUT/DONE. The same command again resumes an unfinished run from its newest checkpoint and does
not rerun a finished one; OUT holding a run of another config is refused.
A held-out atom the model cannot embed stops the run before training (preflight.allow_unembedded=true
runs it anyway, with a warning in the report).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train -> predict the test split -> evaluate against baselines, in one go",
        description="Train the model of CONFIG (or fit it, for closed-form and plugin models), generate the "
        "test split's conditions and evaluate them against the baselines and the ceiling.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="preset name or YAML config")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.seed=3")
    p.add_argument("--out", required=True, help="experiment directory")
    p.add_argument("--metrics", default=None, help="comma-separated metric names (default: the full suite)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots and the HTML report (eval/report.html)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the evaluation summary as JSON")
    p.add_argument("--max-cells", type=max_cells_arg, default=None, metavar="N|all",
                   help="predict and score at most N cells per held-out condition (a fixed subset of its real cells, the same "
                   "for the model, the baselines and the ceiling; = predict.max_cells_per_condition=N; default 500; all: every cell)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from distgen.config import ConfigError, check_repeated_overrides
    from distgen.evaluation.report import json_text
    from distgen.pipeline import experiment
    from distgen.train.distributed import env_from_torchrun

    if args.metrics and (words := [o for o in args.overrides if "=" not in o]):  # --metrics takes one word
        raise ConfigError(f"{words[0]!r} is not an override (dotted.key=value); if it is a metric, --metrics takes the names "
                          f"in one word separated by commas: --metrics {','.join([args.metrics, *words])}")
    overrides = [*check_repeated_overrides(args.overrides), *([f"predict.max_cells_per_condition={'null' if args.max_cells == 'all' else args.max_cells}"] if args.max_cells is not None else [])]
    summary = experiment.run(args.config, args.out, overrides, progress=not args.no_progress,
                             metrics=args.metrics.split(",") if args.metrics else None, plots=not args.no_plots)
    if not env_from_torchrun().is_main:  # under torchrun rank 0 scores and reports; the others' summary is empty
        return 0
    if args.json:
        print(json_text(summary, indent=1))  # NaN as null: strict JSON, as summary.json
    else:
        print(experiment.headline(summary))
        page = Path(args.out) / "eval" / "report.html"
        print(f"\nreport: {page if page.is_file() else Path(args.out) / 'eval' / 'summary.md'}")
    return 0
