"""A warning that the warning filters made an error (``python -W error``, ``PYTHONWARNINGS=error``,
``warnings.simplefilter("error")``), worded for the user: whose code raised it, whose mistake it may be, and the ``-W``
filter that lets it print and go on. ``distgen.cli.classify`` calls ``warning_made_an_error`` for a warning that is not a
``DistgenWarning`` (those print their own message and ``WARNING_AS_ERROR``)."""

from __future__ import annotations

import re

from distgen.errors import clip_message, exception_text

__all__ = ["FILTERS_MADE_IT_AN_ERROR", "WARNING_AS_ERROR", "warning_made_an_error"]

#: What ends the message of a warning raised as an exception: one the warning filters made an error.
FILTERS_MADE_IT_AN_ERROR = "made an error by the warning filters: python -W error, PYTHONWARNINGS or warnings.simplefilter"
WARNING_AS_ERROR = f"a distgen warning, {FILTERS_MADE_IT_AN_ERROR}; the command stopped there"


def warning_made_an_error(exc: Warning) -> str:
    """The message of another library's warning (numpy, anndata, pandas, torch...) or Python's that reached the boundary
    as an exception: the filters made it one, as the user asked (nothing else raises a warning). Its class, the module
    whose code raised it (the innermost frame: for numpy's arithmetic, the line that called numpy), and whose mistake it
    may be: a library's warning names the nearest line of distgen that led to it, since a warning is often about its
    caller (a deprecated argument, an empty array passed): not a bug in distgen when it is about the user's input, a
    call of distgen's to change and report when it is not. Then the ``-W`` filter that lets it print and go on. Python
    reads a ``-W`` class at start-up only among the built-in ones (``anndata._warnings.OldFormatWarning`` is "Invalid -W
    option ignored"), so the filter names the nearest built-in class of its MRO. Two lines: the warning's own line
    breaks are joined."""
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    builtin = next(c for c in cls.__mro__ if c.__module__ == "builtins").__name__
    frames = _frames(exc)
    module, line = frames[-1] if frames else (None, None)
    package = module.partition(".")[0] if module else None
    origin = f" from {package} ({module}, line {line})" if module else ""
    caller = next(((m, n) for m, n in reversed(frames) if _is_distgen(m)), None)
    if package is None:
        whose = "where it was raised is unknown: rerun with --debug for the traceback"
    elif module is not None and _is_distgen(module):
        whose = ("raised by distgen's own code (or a plugin's): if the warning points to a mistake there, rerun with "
                 "--debug for the traceback and report it")
    elif caller is None:
        whose = f"raised by {package}'s code, not called from distgen's: not a bug in distgen"
    elif issubclass(cls, DeprecationWarning | PendingDeprecationWarning | FutureWarning) or cls.__module__.startswith("pandas"):
        whose = (f"raised by {package}'s code called from distgen ({caller[0]}, line {caller[1]}); such a warning is often "
                 f"about how the caller uses {package}: unless it is about your input, distgen's call needs changing: "
                 "rerun with --debug for the traceback and report it")
    else:
        whose = (f"raised by {package}'s code called from distgen ({caller[0]}, line {caller[1]}): not a bug in distgen if "
                 "it is about your input (a file, a value); if not, rerun with --debug for the traceback and report it")
    text = " ".join(line.strip() for line in exception_text(exc).splitlines() if line.strip())  # the message's own breaks: one line
    return (f"{name}{origin}: {clip_message(text, 600)} (a warning, {FILTERS_MADE_IT_AN_ERROR}; the command stopped "
            f"there)\n  {whose}; to let it print and go on, run without -W error{_let_through(builtin, text)}")


def _let_through(builtin: str, text: str) -> str:
    """The rest of the hint: the filter that lets this warning print while other warnings stay errors. By its nearest
    built-in class; a class deriving from ``Warning`` alone would let every warning through (``default::Warning``), so
    by the start of its message (``-W``'s message field: escaped, matched at the start, case-insensitive), cut before
    the first character that ``-W`` (``:``), ``PYTHONWARNINGS`` (``,``) or the shell's double quotes would read."""
    if builtin != "Warning":
        let = f"default::{builtin}"
    else:
        let = "default:" + re.split(r'[:,"$`\\!]', text, maxsplit=1)[0][:60].strip()
        if let == "default:":
            return ""
    return f' or keep other warnings errors with python -W error -W "{let}" -m distgen ... (PYTHONWARNINGS="error,{let}")'


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    """The module name and line of each frame of ``exc``'s traceback, outermost first (frames without a module name
    left out)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__")
        if isinstance(module, str):
            frames.append((module, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _is_distgen(module: str) -> bool:
    """Whether ``module`` is distgen's or a distgen plugin's (``distgen_bayes``)."""
    return module.partition(".")[0].startswith("distgen")
