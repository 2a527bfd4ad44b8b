"""``distgen compare``: paired comparison of two evaluations on their shared perturbations."""

from __future__ import annotations

import argparse
import json
import math

from distgen.commands.argtypes import nonnegative_int
from distgen.wording import first_of

EXAMPLE = """examples:
  distgen compare runs/scdfm/eval runs/perturbdiff/eval            # two distgen evaluate --out folders
  distgen compare runs/exp_a runs/exp_b --out cmp/                 # distgen run folders (their eval/); writes compare.json, compare.md
  distgen compare eval_a eval_b --margin mse=0.01 --margin pearson_delta=0.005   # the smallest differences that matter to you
  distgen compare eval_a eval_b --json | jq .metrics.mse.verdict
"""


def _margin(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    name = name.strip()
    try:
        width = float(value)
    except ValueError:
        width = math.nan
    if not sep or not name or not width >= 0 or not math.isfinite(width):
        raise argparse.ArgumentTypeError(f"expected METRIC=VALUE with a finite VALUE >= 0 (e.g. mse=0.01), got {text!r}")
    return name, width


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="paired comparison of two evaluations (mean difference, CI, Wilcoxon p, practical margin per metric)",
        description="Pair two evaluations on the perturbations they share (by label) and, per metric both computed, report the "
        "mean of each over the shared defined rows, the paired difference A - B with a bootstrap confidence interval and the "
        "two-sided Wilcoxon signed-rank p-value, per metric and adjusted for the number of metrics (Holm p; a note counts the "
        "winners that keep it). A winner only where p < 0.05 AND |A - B| exceeds the metric's margin: the "
        "split-half replicate's spread of the metric (summary.json ceiling_band.std), or --margin, and never less than the "
        "numerical tolerance (1e-6 of the metric's size); 'negligible' where the CI lies within +-margin; else "
        "'inconclusive'. Metrics of one value per evaluation are compared once (no "
        "interval, no test). With different perturbation panels, metrics that rank a perturbation among its panel "
        "(discrimination scores, correlations across perturbations) get 'panels differ', no winner. Evaluations under different profiles, of other genes, of another truth or against other control cells are refused (exit 2).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_a", help="evaluation folder A (distgen evaluate --out, or a distgen run folder with eval/)")
    p.add_argument("run_b", help="evaluation folder B")
    p.add_argument("more", nargs="*", default=[], metavar="MORE",
                   help="no third folder: compare takes two (each against one reference, or variants of one distgen sweep, "
                        "which adjusts for all its tests); given more, it says so")
    p.add_argument("--out", default=None, help="folder to write compare.json and compare.md to")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--margin", type=_margin, action="append", default=[], metavar="METRIC=VALUE",
                   help="the smallest difference of METRIC that matters, in its units (repeatable); replaces the replicate "
                   "spread as that metric's margin")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout, nothing else")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from distgen.atomic import atomic_write_text
    from distgen.evaluation.compare import compare, markdown
    from distgen.evaluation.report import clean_nan

    if args.more:  # argparse said only "unrecognized arguments: C"
        from distgen.config import ConfigError

        folders = [args.run_a, args.run_b, *args.more]
        raise ConfigError(
            f"compare pairs two evaluations, got {len(folders)} ({first_of(folders, 4, enclosed=True)}); "
            f"compare each against one reference (distgen compare {folders[0]} {folders[1]}, then distgen compare {folders[0]} "
            f"{folders[2]}, ...), and read a winner of several such comparisons as one of several tests, or run the settings as "
            "named variants of one distgen sweep, whose table adjusts its p-values for all of them (Holm)")
    given: dict[str, list[float]] = {}
    for name, width in args.margin:
        given.setdefault(name, []).append(width)
    twice = {name: widths for name, widths in given.items() if len(widths) > 1}
    if twice:  # the last one replaced the others without a word (as --grid did in distgen sweep)
        from distgen.config import ConfigError

        name, widths = next(iter(twice.items()))
        raise ConfigError(f"--margin {name} is given {len(widths)} times ({', '.join(f'{w:g}' for w in widths)}); give each "
                          "metric's margin once")
    result = compare(args.run_a, args.run_b, seed=args.seed, margins=dict(args.margin))
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "compare.json", json.dumps(clean_nan(result), indent=2) + "\n")  # whole or absent, as evaluate's files
        atomic_write_text(out / "compare.md", markdown(result))
    if args.json:
        print(json.dumps(clean_nan(result), indent=1))
    else:
        print(markdown(result), end="")
    return 0
