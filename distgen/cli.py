"""The ``distgen`` command. Each subcommand lives in ``distgen/commands/<name>.py``.

A command module defines ``register(subparsers) -> None`` (adding its parser, with
``set_defaults(run=...)``). Options and positionals may be intermixed (``distgen train PRESET
--out DIR key=value``). Every command runs inside one error boundary (``report``): an error a user
can act on prints one or two lines and exits 1 (runtime) or 2 (usage or config); anything else
prints a one-line summary, and the traceback only with ``--debug`` or ``DISTGEN_DEBUG=1``.
Exit codes are listed in ``distgen.errors``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import pkgutil
import shlex
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from distgen.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_USAGE,
    DistgenError,
    DistgenWarning,
    Interrupted,
    clip_message,
    exception_text,
    free_space,
)
from distgen.warning_errors import WARNING_AS_ERROR, warning_made_an_error

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "report"]

DEBUG_HELP = "on any error, also print the full Python traceback (same as DISTGEN_DEBUG=1)"

#: Exceptions of other modules that are part of the error contract (matched by qualified class name,
#: so that nothing is imported to check): exit code per class. ``tests/test_error_boundary.py``
#: checks that every name here still resolves.
KNOWN: dict[str, int] = {
    "distgen.registry.UnknownComponentError": EXIT_USAGE,
    "distgen.registry.RegistryError": EXIT_FAILURE,
    "distgen.data.split.LeakageError": EXIT_USAGE,
    "distgen.dynamics.diffusion_samplers.NonFiniteSampleError": EXIT_FAILURE,
    "distgen.dynamics.ode_solvers.SolverBudgetError": EXIT_FAILURE,
}
#: What to add to a known error's own message, by class name.
HINTS: dict[str, str] = {
    "distgen.dynamics.diffusion_samplers.NonFiniteSampleError": (
        " If the model was trained by distgen, check its checkpoint: training losses in metrics.csv, an earlier "
        "checkpoint (--checkpoint), or the raw weights (--weights raw)"
    ),
}
#: Built-in exceptions that distgen raises on purpose with a complete message (exit 1).
PLAIN = (ValueError, LookupError, FloatingPointError)


def build_parser() -> argparse.ArgumentParser:
    from distgen import __version__, commands

    parser = argparse.ArgumentParser(
        prog="distgen",
        description="Swappable-component models of single-cell perturbation response.",
        epilog="Run 'distgen COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"distgen {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"distgen.commands.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    for p in sub.choices.values():  # --debug is accepted after the command too
        if "--debug" not in p._option_string_actions:
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``, letting a command's options and positionals (overrides) come in any order.

    argparse stops filling ``nargs='*'`` positionals at the first option, so ``train P --out D k=v``
    would reject ``k=v``; each command's parser is therefore run in intermixed mode.
    """
    argv = list(argv)
    choices = _subparsers(parser)
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if at is None or argv[at] not in choices:
        return parser.parse_args(argv)  # no command, --version/--help, or an unknown command (argparse says so)
    ns = parser.parse_args(argv[:at])
    command = choices[argv[at]]
    try:
        ns = command.parse_intermixed_args(argv[at + 1 :], namespace=ns)
    except TypeError:  # a parser intermixed mode cannot handle (argparse.REMAINDER): parse as usual
        ns = command.parse_args(argv[at + 1 :], namespace=ns)
    ns.command = argv[at]
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False)) or os.environ.get("DISTGEN_DEBUG", "") not in ("", "0")
    try:
        from distgen.runtime import apply_threads

        apply_threads()
        with command_warnings(args.command) if from_command_line else contextlib.nullcontext():
            code = int(args.run(args) or 0)
    except SystemExit:
        raise
    except BaseException as exc:
        return report(exc, args.command, argv, debug)
    if from_command_line and getattr(args, "fast_exit", False):
        fast_exit(code)
    return code


@contextlib.contextmanager
def command_warnings(command: str) -> Iterator[None]:
    """While a command runs as the program: distgen's own warnings (``DistgenWarning``) print as ``distgen COMMAND:
    warning: message``, like its errors, instead of Python's ``file:line: Category: message`` and a source line (which
    would name ``<frozen runpy>``: ``errors.warn`` attributes them to the first frame outside distgen). Other
    libraries' warnings print as before. A message prints once per command: the stages that check a setting (loading,
    assembly, the trainer) each warn, and a ``catch_warnings`` between them resets Python's once-per-location registry,
    so ``data.replacement`` under ``sampling: partition`` printed three times. ``warnings.catch_warnings`` restores the
    hook when the command ends; a caller of ``main(argv)`` (tests, a script) keeps its own warning handling."""
    from distgen.errors import DistgenWarning

    shown: set[str] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            if not issubclass(category, DistgenWarning):
                previous(message, category, filename, lineno, file, line)
                return
            if str(message) in shown:
                return
            shown.add(str(message))
            with contextlib.suppress(OSError, ValueError):  # a closed stream: a warning must not end the command
                print(f"distgen {command}: warning: {message}", file=file or sys.stderr)

        warnings.showwarning = show
        yield


def fast_exit(code: int) -> None:  # pragma: no cover - ends the process
    """End the process now with ``code``: output flushed and ``atexit`` handlers run, the interpreter's teardown skipped.

    Tearing down an interpreter that has imported torch (freeing its modules one by one) costs ~0.3 s of
    CPU, as long as a short ``distgen evaluate --profile`` computes. A command opts in
    (``args.fast_exit``) once every file it wrote is closed; only the program entry point (``main()``
    without ``argv``) ends this way, never a caller that passes ``argv``.
    """
    import atexit

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: nothing more can be written
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


# ---------------------------------------------------------------------------- the error boundary
def report(exc: BaseException, command: str, argv: Sequence[str] = (), debug: bool = False, file=None) -> int:
    """Print ``exc`` as a user-facing message for ``distgen COMMAND``; return the exit code."""
    file = file or sys.stderr
    code, message = classify(exc, command, argv)
    if isinstance(exc, Interrupted) and not debug and other_rank():
        return code  # every rank of a torchrun stops at the same step (same checkpoint): rank 0 says so, once
    if message is None:
        where = _innermost(exc)
        message = (
            f"internal error: {type(exc).__name__}: {clip_message(str(exc), 300)}{where}\n"
            "  this is a bug in distgen or a plugin; rerun with --debug (or DISTGEN_DEBUG=1) for the traceback and report it"
        )
    print(f"distgen {command}: {message}", file=file)
    if debug:
        print("".join(traceback.format_exception(exc)), file=file, end="")
    return code


def other_rank() -> bool:
    """Whether this process is a rank other than 0 of a ``torchrun`` group (``distgen.train.distributed.env_from_torchrun``)."""
    from distgen.train.distributed import env_from_torchrun  # torch is loaded already: only a training is interrupted

    return not env_from_torchrun().is_main


def classify(exc: BaseException, command: str = "", argv: Sequence[str] = ()) -> tuple[int, str | None]:
    """``(exit code, message)`` for an exception; the message is None for an unexpected one."""
    from distgen.config import ConfigError

    if isinstance(exc, Interrupted):
        return exc.exit_code, f"{exc}\n  resume: {resume_command(command, argv)}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_SIGINT, "interrupted (Ctrl-C)"
    if isinstance(exc, ConfigError):
        return EXIT_USAGE, "config error: " + clip_message(str(exc))
    if isinstance(exc, DistgenError):
        return exc.exit_code, "error: " + clip_message(exception_text(exc))
    if isinstance(exc, DistgenWarning):
        return EXIT_FAILURE, f"error: {clip_message(exception_text(exc))} ({WARNING_AS_ERROR})"
    if isinstance(exc, Warning):
        return EXIT_FAILURE, "error: " + warning_made_an_error(exc)
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    for name, code in KNOWN.items():
        if name in names:
            prefix = "config error: " if code == EXIT_USAGE else "error: "
            return code, prefix + clip_message(exception_text(exc)) + HINTS.get(name, "")
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        from distgen.train.device import OOM_HINT

        return EXIT_FAILURE, f"error: out of memory ({clip_message(str(exc), 200)}). {OOM_HINT}"
    if isinstance(exc, OSError):
        return EXIT_FAILURE, "error: " + describe_os_error(exc)
    if isinstance(exc, PLAIN):
        return EXIT_FAILURE, "error: " + clip_message(exception_text(exc))
    return EXIT_FAILURE, None


def _innermost(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {Path(f.filename).name}:{f.lineno})"


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error: what, which path, and what to do."""
    e = exc.errno
    name = exc.filename
    if exc.filename2 is not None and e in (errno.EISDIR, errno.EEXIST, errno.ENOTDIR, errno.ENOTEMPTY):
        name = exc.filename2  # os.replace(tmp, target): the target is what the user named
    if name is None and e not in (errno.ENOSPC, errno.EDQUOT):
        return clip_message(str(exc))  # the message says which file (raised by distgen or a library)
    where = f"{str(name)!r}"
    if e == errno.ENOENT:
        return f"{where} does not exist; check the path"
    if e in (errno.EISDIR, errno.ENOTEMPTY):
        return f"{where} is a folder, but a file is needed here; give the path of a file"
    if e == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, but a folder is needed; choose another path"
    if e == errno.EEXIST:
        if name is not None and Path(name).is_file():
            return f"{where} is a file, but a folder is needed here; choose another path (the file was left untouched)"
        return f"{where} already exists and is in the way; choose another path or remove it"
    if e in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where}; choose a path you can read/write (or fix its permissions)"
    if e == errno.EROFS:
        return f"{where} is on a read-only file system; choose a writable location"
    if e in (errno.ENOSPC, errno.EDQUOT):
        folder = Path(name).parent if name is not None else Path.cwd()
        return f"no space left on the device of {str(folder)!r} (free: {free_space(folder)}); free some space or write elsewhere"
    return f"{where}: {exc.strerror or exc}"


def resume_command(command: str, argv: Sequence[str]) -> str:
    """The command line that continues an interrupted ``distgen COMMAND``."""
    args = list(argv)
    if command == "train" and "--resume" not in args and not any(a.startswith("--resume=") for a in args):
        args.append("--resume")
    return "distgen " + shlex.join(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
