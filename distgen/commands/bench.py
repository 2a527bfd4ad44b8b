"""``distgen bench``: the speed / memory / scaling harness of ``benchmarks/`` (a source checkout)."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path
from types import ModuleType

EXAMPLE = """examples:
  distgen bench --mode tiny                          # seconds: every section at toy sizes
  distgen bench --mode small --docs                  # CPU by hand; writes docs/benchmarks.md
  distgen bench --mode full --workdir /tmp/bench     # + official preset sizes and 1M streamed cells
"""


def _harness() -> ModuleType:
    """``benchmarks.harness.cli``, from the source checkout distgen was installed from (editable)."""
    try:
        return importlib.import_module("benchmarks.harness.cli")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2]
        if not (root / "benchmarks" / "harness").is_dir():
            raise FileNotFoundError(
                "distgen bench needs the benchmarks/ folder of a source checkout (git clone, pip install -e .); "
                "this installation has none. Run `python -m benchmarks run` from a checkout instead"
            ) from None
        sys.path.insert(0, str(root))
        return importlib.import_module("benchmarks.harness.cli")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure training/sampling speed, memory, streaming and scaling (benchmarks/ harness)",
        description="Run the benchmark harness (same as `python -m benchmarks run`): JSON out, optional markdown into docs.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        _harness().add_arguments(p)  # one definition of the options: the harness's own
    except FileNotFoundError:
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # run() explains what is missing
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return int(_harness().run(args, "distgen " + shlex.join(sys.argv[1:])))
