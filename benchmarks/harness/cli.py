"""Command line of the harness: ``python -m benchmarks run`` and ``distgen bench``."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

EXAMPLE = """examples:
  python -m benchmarks run --mode tiny                         # seconds; what the test suite runs
  python -m benchmarks run --mode small --docs                 # CPU by hand; updates docs/benchmarks.md
  python -m benchmarks run --mode full --workdir /tmp/bench --docs   # + official sizes, 1M streamed cells
  python -m benchmarks run --mode small --sections streaming --presets perturbdiff-small
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="tiny", choices=["tiny", "small", "full"], help="sizes to run (default tiny)")
    p.add_argument("--workdir", default="/tmp/distgen-bench", help="where synthetic atlases are written (never the repo)")
    p.add_argument("--out", default=None, help="JSON output (default WORKDIR/bench-MODE.json)")
    p.add_argument("--docs", nargs="?", const="docs/benchmarks.md", default=None, help="write the markdown block into this file")
    p.add_argument("--presets", nargs="*", default=None, help="presets to run (default: every bundled preset)")
    p.add_argument("--sections", nargs="*", default=None, choices=["train", "sampling", "scaling", "streaming", "evaluation"],
                   help="sections to run (default: all of them)")
    p.add_argument("--wait-steps", type=int, default=None, help="training steps of the data-wait measurement (0 skips it; default per mode)")
    p.add_argument("--official-on-cpu", action="store_true", help="also run official preset sizes without a GPU (may need tens of GB)")
    p.add_argument("--no-assert", action="store_true", help="report bounds but exit 0 when one fails")


def run(args: argparse.Namespace, command: str) -> int:
    import torch

    from benchmarks.harness.report import markdown, update_docs, write_json
    from benchmarks.harness.run import run_all

    torch.set_num_threads(max(1, torch.get_num_threads()))
    res = run_all(args.mode, args.workdir, args.presets, args.sections, args.wait_steps, args.official_on_cpu)
    out = write_json(res, args.out or f"{args.workdir}/bench-{args.mode}.json")
    block = markdown(res, command)
    print(block)
    print(f"JSON: {out}")
    if args.docs:
        key = args.mode + ("-" + "-".join(args.sections) if args.sections else "")
        print(f"docs: {update_docs(block, key, args.docs)}")
    failed = [c for c in res["checks"] if c["enforced"] and not c["passed"]]
    for c in failed:
        print(f"bound failed: {c['check']}: {c['value']}", file=sys.stderr)
    return 1 if failed and not args.no_assert else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="distgen speed / memory / scaling harness", epilog=EXAMPLE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_arguments(sub.add_parser("run", help="run the harness", epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter))
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    return run(args, "python -m benchmarks " + shlex.join(argv))
