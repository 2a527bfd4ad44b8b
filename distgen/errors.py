"""Errors a user can act on, their exit codes, and bounded rendering of values inside messages.

Every error distgen raises on purpose says what went wrong, where (file, key, column, step) and how
to fix it. ``distgen.cli.main`` turns them into one or two lines on stderr and an exit code:

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     runtime failure: an unreadable or corrupt input file, a checkpoint that fails its digest, a
      locked run folder, a full disk, non-finite values during training or sampling
2     usage or config error: a bad option, key or value; a size that cannot fit in memory; a checkpoint
      resumed or predicted under another config; an --out that already holds checkpoints without --resume
      (``RunFolderError``); input data that cannot be used as asked (a missing
      column, layer or label; NaN or negative expression: ``InputDataError``)
130   interrupted by SIGINT (a final checkpoint was saved when one could be reached in time)
143   interrupted by SIGTERM (same)
====  =====================================================================================

Exceptions defined elsewhere keep their own base classes (``ConfigError`` is a ``ValueError``,
``CheckpointError`` a ``RuntimeError``...); the ones that are part of this contract also derive from
``DistgenError`` and carry ``exit_code``. ``short`` renders any value in bounded space so that an
error message can never be the thing that hangs (a YAML alias bomb formatted by ``repr``).

Warnings distgen emits on purpose are of class ``DistgenWarning``, raised through ``warn``: Python shows them at the
first line *outside* distgen that led there (the user's ``distgen.run(...)``, not a line of distgen's own code),
in Python's usual ``file:line: Category: message`` form, so ``warnings.filterwarnings`` works on them as on any
library's. The ``distgen`` command prints them as ``distgen COMMAND: warning: message`` (``distgen.cli``); other
libraries' warnings keep Python's form there. A distgen warning that the warning filters raise as an exception
(``python -W error``) ends the command as ``distgen COMMAND: error: message (a distgen warning, made an error by ...)``,
exit code 1; another library's (numpy, anndata, pandas, torch...) as ``error: Class from PACKAGE (module, line N): message
(a warning, made an error by ...)`` and a line saying whose code raised it and the ``-W`` filter that lets it print
(``distgen.warning_errors``). distgen never replaces ``warnings.showwarning`` or ``warnings.formatwarning`` for a Python session: those
hooks are global, one per process, shared by every library.
"""

from __future__ import annotations

import os
import reprlib
import shutil
import sys
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143

#: Longest value rendering inside a message; longer ones are cut with "...".
SHORT_LIMIT = 120


class DistgenError(Exception):
    """Base of errors whose message is complete for a user; ``exit_code`` 1 unless a subclass says."""

    exit_code = EXIT_FAILURE


class DistgenWarning(UserWarning):
    """Base of the warnings distgen emits on purpose (raise them with ``warn``)."""


class DistgenRuntimeWarning(DistgenWarning, RuntimeWarning):
    """A ``DistgenWarning`` about the environment rather than the input (a plugin that fails to load, a page not written)."""


class DivergenceWarning(DistgenWarning, RuntimeWarning):
    """Training is diverging: the loss rose far above its first step's while staying finite (``distgen.train.trainer``)."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = DistgenWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside the distgen package.

    A fixed ``stacklevel`` points at whichever distgen function happened to call the one that warns (``api.py:123:
    ... return _run(...)``); this walks past every distgen frame to the caller's own line, as Python 3.12's
    ``skip_file_prefixes`` does (used where available).
    """
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=(_PACKAGE,))
        return
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class UsageError(DistgenError):
    """A bad command line, config key or value (exit code 2)."""

    exit_code = EXIT_USAGE


class LabelError(UsageError, ValueError):
    """A label holding the separator distgen joins labels with, so that two different groups would read as one (exit code 2)."""


class InputDataError(UsageError, ValueError):
    """A user's data, read fine, that cannot be used as asked (exit code 2): a column, layer, gene or label that a
    config key or an option names and the file lacks; values or labels the data's rules refuse (NaN, negative or
    unlogged expression, no control cells, duplicated names). The fix is in the input or in the setting that names it.
    A file that cannot be read at all is an ``InputFileError`` (exit code 1)."""


class InputKeyError(InputDataError, KeyError):
    """``InputDataError`` for a missing name (a column, layer, gene): a ``KeyError`` too, for callers that catch one."""

    __str__ = Exception.__str__  # the message as written, not KeyError's quoted repr


class InputFileError(DistgenError, ValueError):
    """An input file that is missing, a folder, unreadable, or not in the expected format."""


class OutputPathError(DistgenError, ValueError):
    """An output path that cannot be written (a file where a folder is needed, read-only, owned by a run)."""


class DiskFullError(DistgenError):
    """A write failed for lack of space; the message names the folder and the free space left."""


class Interrupted(DistgenError):
    """Training stopped on SIGINT/SIGTERM; ``checkpoint`` is the final checkpoint written (or None)."""

    def __init__(self, message: str, signal_name: str, step: int, checkpoint: Any = None, run_dir: Any = None) -> None:
        super().__init__(message)
        self.signal_name, self.step, self.checkpoint, self.run_dir = signal_name, step, checkpoint, run_dir
        self.exit_code = EXIT_SIGTERM if signal_name == "SIGTERM" else EXIT_SIGINT


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 6
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40


class NonFiniteSamplesError(DistgenError, FloatingPointError):
    """Generated cells hold NaN or inf (exit code 1); the message points at the checkpoint."""


def check_finite_samples(cells: Any, what: str, checkpoint: str | Path | None = None) -> None:
    """Raise ``NonFiniteSamplesError`` if ``cells`` (a tensor or array) hold NaN/inf, suggesting to check the checkpoint.

    ``what`` names the group (``"condition A+B @ K562"``); ``checkpoint`` the weights that produced them. The one check
    of both predictors, the in-memory ``distgen.pipeline.predict`` and the streaming ``distgen.data.disk_predict``.
    """
    import numpy as np

    x = cells.detach().cpu().numpy() if hasattr(cells, "detach") else np.asarray(cells)  # a torch tensor, or anything numpy reads
    finite = np.isfinite(x)
    if finite.all():
        return
    bad = int((~finite).sum())
    source = f"checkpoint {str(checkpoint)!r}" if checkpoint is not None else "the model's weights"
    raise NonFiniteSamplesError(
        f"{bad} of {x.size} generated values are NaN or inf for {what}. Check {source}: train loss and metrics.csv for "
        "divergence, an earlier checkpoint (--checkpoint), raw instead of EMA weights (--weights raw), or more/smaller "
        "sampling steps"
    )


def short(value: Any, limit: int = SHORT_LIMIT) -> str:
    """``repr(value)`` in bounded time and space (nested containers and long strings elided).

    Safe on self-referencing and alias-shared structures: nesting depth, container lengths and the
    total length are capped, so rendering never expands what a YAML alias only points to.
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_message(text: str, limit: int = 2000) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters; --debug shows the full error)"


def free_space(path: Any) -> str:
    """Free space on the file system of ``path`` (or its nearest existing parent), e.g. ``"1.2 GB"``."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return format_bytes(shutil.disk_usage(p).free)
    except OSError:
        return "unknown"


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def exception_text(exc: BaseException) -> str:
    """The message of ``exc`` (``KeyError`` quotes its argument; show it as written)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str) and type(exc).__str__ is KeyError.__str__:
        return exc.args[0]
    return str(exc) or type(exc).__name__
