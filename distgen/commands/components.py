"""``distgen components``: list registered components, built-in and plugin."""

from __future__ import annotations

import argparse
import json
import warnings

EXAMPLE = """examples:
  distgen components                      # everything, as a table
  distgen components --kind encoders      # one kind
  distgen components --json | jq '.[].name'
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "components",
        help="list registered components (built-ins and plugins)",
        description="List every registered component with its kind, provider, version and capabilities.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from distgen.registry import KINDS

    p.add_argument("--kind", choices=KINDS, metavar="KIND", help=f"only this kind: {', '.join(KINDS)}")
    p.add_argument("--json", action="store_true", help="machine-readable JSON list on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from distgen.api import components
    from distgen.config import preset_names

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = components(args.kind)
    for w in caught:
        print(f"warning: {w.message}", file=__import__("sys").stderr)
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2, default=str))
        return 0
    rows = [(i.kind, i.name, f"{i.provider} {i.version}", i.summary) for i in infos]
    widths = [max(len(r[c]) for r in rows + [("kind", "name", "provider", "")]) for c in range(3)]
    print(f"{'kind':<{widths[0]}}  {'name':<{widths[1]}}  {'provider':<{widths[2]}}  summary")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    if not args.kind:
        print(f"\npresets: {', '.join(preset_names()) or '(none)'}")
    return 0
