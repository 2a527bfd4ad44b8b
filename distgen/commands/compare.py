"""``distgen compare``: paired comparison of two evaluations on their shared perturbations."""

from __future__ import annotations

import argparse
import json

EXAMPLE = """examples:
  distgen compare runs/scdfm/eval runs/perturbdiff/eval            # two distgen evaluate --out folders
  distgen compare runs/exp_a runs/exp_b --out cmp/                 # distgen run folders (their eval/); writes compare.json, compare.md
  distgen compare eval_a eval_b --json | jq .metrics.mse.wilcoxon_p
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="paired comparison of two evaluations (mean difference, CI, Wilcoxon p per metric)",
        description="Pair two evaluations on the perturbations they share and, per metric both computed, report the mean "
        "of each over the shared defined rows, the paired difference A - B with a bootstrap confidence interval and the two-sided "
        "Wilcoxon signed-rank p-value; a winner only where p < 0.05. Metrics of one value per evaluation are compared once "
        "(no interval, no test).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_a", help="evaluation folder A (distgen evaluate --out, or a distgen run folder with eval/)")
    p.add_argument("run_b", help="evaluation folder B")
    p.add_argument("--out", default=None, help="folder to write compare.json and compare.md to")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout, nothing else")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from distgen.evaluation.compare import compare, markdown
    from distgen.evaluation.report import _clean

    result = compare(args.run_a, args.run_b, seed=args.seed)
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(_clean(result), indent=2) + "\n")
        (out / "compare.md").write_text(markdown(result))
    if args.json:
        print(json.dumps(_clean(result), indent=1))
    else:
        print(markdown(result), end="")
    return 0
