"""``python -m distgen.report FOLDER``: (re)write the HTML report of an evaluation or a sweep folder from its files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m distgen.report",
        description="Write FOLDER/report.html from an evaluation folder (metrics.csv, calibration.csv, summary.json; "
        "the prediction/truth files and ../train when present) or from a sweep folder (results.csv, summary.json).",
    )
    p.add_argument("folder", help="evaluation folder (distgen evaluate --out) or sweep folder (distgen sweep --out)")
    p.add_argument("--out", default=None, help="output file (default FOLDER/report.html)")
    p.add_argument("--preset", default=None, help="preset (or config file) the run derives from, for the config diff")
    p.add_argument("--no-cells", action="store_true", help="do not load the cells (skips the distributions section)")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    out = Path(args.out) if args.out else folder / "report.html"
    try:
        if (folder / "results.csv").is_file():
            from distgen.report.sweep import load_sweep_dir, write_sweep_report

            path = write_sweep_report(load_sweep_dir(folder), out)
        else:
            from distgen.report.inputs import load_eval_dir
            from distgen.report.page import write_report

            preset = None
            if args.preset:
                from distgen.config import load_config

                preset = load_config(args.preset)
            path = write_report(load_eval_dir(folder, cells=not args.no_cells, preset=preset, preset_name=args.preset), out)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
