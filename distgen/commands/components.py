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
        description="List every registered component with its kind, provider, version, summary and capabilities "
        "(typed per kind; 'per instance' marks a capability decided by the parameters a component is built with). "
        "A name that two packages provide is listed once per provider, with a warning.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from distgen.registry import KINDS

    p.add_argument("--kind", choices=KINDS, metavar="KIND", help=f"only this kind: {', '.join(KINDS)}")
    p.add_argument("--json", action="store_true", help="machine-readable JSON list on stdout")
    p.add_argument("--brief", action="store_true", help="one line per component, without capabilities")
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
    rows = [(i.kind, i.name, f"{i.provider} {i.version}", i.summary + (f"  [conflicts with {', '.join(i.conflicts)}]" if i.conflicts else ""))
            for i in infos]
    widths = [max(len(r[c]) for r in rows + [("kind", "name", "provider", "")]) for c in range(3)]
    print(f"{'kind':<{widths[0]}}  {'name':<{widths[1]}}  {'provider':<{widths[2]}}  summary")
    for r, info in zip(rows, infos, strict=True):
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
        caps = info.capabilities.describe()
        if caps and not args.brief:
            print(" " * (widths[0] + 2) + "capabilities: " + ", ".join(f"{k}={_show(v)}" for k, v in caps.items()))
    if not args.kind:
        print(f"\npresets: {', '.join(preset_names()) or '(none)'}")
    return 0


def _show(v: object) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
    return str(v)
