"""``python -m benchmarks.parity --scdfm PATH --perturbdiff PATH``: one table, exit 1 on any failure."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from benchmarks.parity.common import TOLERANCE, table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.parity", description=__doc__)
    p.add_argument("--scdfm", type=Path, help="checkout of AI4Science-WestlakeU/scDFM (tested at 2cf6bca)")
    p.add_argument("--perturbdiff", type=Path, help="checkout of DeepGraphLearning/PerturbDiff (tested at 63afe45)")
    p.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = p.parse_args(argv)
    if args.scdfm is None and args.perturbdiff is None:
        p.error("give --scdfm and/or --perturbdiff")
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = []
    if args.scdfm is not None:
        from benchmarks.parity import scdfm

        rows += scdfm.run(args.scdfm)
    if args.perturbdiff is not None:
        from benchmarks.parity import perturbdiff

        rows += perturbdiff.run(args.perturbdiff)
    text = table(rows)
    print(text)
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)} passed, {len(bad)} failed (relative tolerance {TOLERANCE:g}, {time.perf_counter() - start:.0f} s)")
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
