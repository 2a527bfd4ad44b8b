"""The ``distgen`` command. Each subcommand lives in ``distgen/commands/<name>.py``.

A command module defines ``register(subparsers) -> None`` (adding its parser, with
``set_defaults(run=...)``). Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from distgen import __version__, commands

    parser = argparse.ArgumentParser(
        prog="distgen",
        description="Swappable-component models of single-cell perturbation response.",
        epilog="Run 'distgen COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"distgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"distgen.commands.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from distgen.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        from distgen.runtime import apply_threads

        apply_threads()
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"distgen {args.command}: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"distgen {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
