"""A warning that the warning filters made an error (``python -W error``, ``PYTHONWARNINGS=error``,
``warnings.simplefilter("error")``), worded for the user: whose code raised it, whose mistake it may be, and the ``-W``
filter that lets it print and go on. ``distgen.cli.classify`` calls ``warning_made_an_error`` for a warning that is not a
``DistgenWarning`` (those print their own message and ``WARNING_AS_ERROR``)."""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from collections.abc import Collection, Iterator
from typing import Any

from distgen.errors import clip_message, exception_text

__all__ = ["FILTERS_MADE_IT_AN_ERROR", "WARNING_AS_ERROR", "recorded", "replay", "warning_made_an_error"]

#: What ends the message of a warning raised as an exception: one the warning filters made an error.
FILTERS_MADE_IT_AN_ERROR = "made an error by the warning filters: python -W error, PYTHONWARNINGS or warnings.simplefilter"
WARNING_AS_ERROR = f"a distgen warning, {FILTERS_MADE_IT_AN_ERROR}; the command stopped there"
#: Plugins shipped with distgen (``plugins/``) as separate packages, by package: their name in a message.
BUNDLED_PLUGINS = {"distgen_bayes": "distgen-bayes", "distgen_example": "distgen-example"}


def warning_made_an_error(exc: Warning) -> str:
    """The message of another library's warning (numpy, anndata, pandas, torch...) or Python's that reached the boundary
    as an exception: the filters made it one, as the user asked (nothing else raises a warning). Its class, the module
    whose code raised it (the innermost frame: for numpy's arithmetic, the line that called numpy), and whose mistake it
    may be: a library's warning names the nearest line of distgen that led to it, since a warning is often about its
    caller (a deprecated argument, an empty array passed, a file opened without an encoding): not a bug in distgen
    when it is about the user's input, a call of distgen's to change and report when it is not. distgen's code is the package ``distgen``; a bundled plugin's
    (``distgen_bayes``) is reported to distgen as well; a third-party plugin's (a package a distgen entry point names
    and the plugin's distribution installs), or a library's warning about the plugin's call, is the plugin's, not a bug in distgen. Then the ``-W`` filter that lets it print and go on. Python
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
    plugins = _plugin_packages()
    caller = next(((m, n) for m, n in reversed(frames) if _owner(m, plugins) is not None), None)
    owner = _owner(module, plugins) if module is not None else None
    if package is None:
        whose = "where it was raised is unknown: rerun with --debug for the traceback"
    elif owner == "distgen":
        whose = ("raised by distgen's own code: if the warning points to a mistake there, rerun with --debug for the "
                 "traceback and report it")
    elif owner in BUNDLED_PLUGINS.values():
        whose = (f"raised by the {owner} plugin's own code (bundled with distgen): if the warning points to a mistake "
                 "there, rerun with --debug for the traceback and report it")
    elif owner is not None:
        whose = (f"raised by the plugin {package}'s own code, not distgen's: not a bug in distgen; if it is not about your "
                 f"input, rerun with --debug for the traceback and report it to {package}'s authors")
    elif caller is None:
        whose = f"raised by {package}'s code, not called from distgen's: not a bug in distgen"
    elif _owner(caller[0], plugins) not in ("distgen", *BUNDLED_PLUGINS.values()):
        plugin = caller[0].partition(".")[0]
        whose = (f"raised by {package}'s code called from the plugin {plugin} ({caller[0]}, line {caller[1]}), not from "
                 f"distgen's code: not a bug in distgen; if it is not about your input, report it to {plugin}'s authors")
    elif issubclass(cls, DeprecationWarning | PendingDeprecationWarning | FutureWarning | EncodingWarning) or cls.__module__.startswith("pandas"):
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
    left out); for a warning ``recorded`` and replayed, the frames where it was said."""
    said_at = getattr(exc, _SAID_AT, None)
    if said_at is not None:
        return list(said_at)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__")
        if isinstance(module, str):
            frames.append((module, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _owner(module: str, plugins: Collection[str]) -> str | None:
    """Whose code ``module`` is: ``"distgen"`` (the package ``distgen`` and its submodules), a bundled plugin's name
    (``BUNDLED_PLUGINS``: separate packages shipped with distgen, whose mistakes are reported to distgen), ``"plugin"``
    for a third-party plugin's package (``plugins``), None for any other (a library, Python, a user's script). A name
    is matched whole: ``distgenx`` or ``distgen_myplugin`` is not distgen."""
    top = module.partition(".")[0]
    if top == "distgen":
        return "distgen"
    if top in BUNDLED_PLUGINS:
        return BUNDLED_PLUGINS[top]
    return "plugin" if top in plugins else None


def _plugin_packages() -> set[str]:
    """The top-level packages of the modules that installed distgen entry points name, but distgen's and the bundled
    plugins' (an unreadable installation: none)."""
    from distgen.registry import entry_point_packages

    try:
        return entry_point_packages(but={"distgen", *BUNDLED_PLUGINS})
    except Exception:  # wording an error must not raise another one
        return set()


#: The attribute a replayed warning made an error keeps the frames where it was said in (module, line; outermost first).
_SAID_AT = "_distgen_said_at"


class _Said(warnings.WarningMessage):
    """A warning ``recorded``, with the frames (module, line; outermost first) that led to it."""

    def __init__(self, said_at: tuple[tuple[str, int], ...], module: str | None, *args: Any) -> None:
        super().__init__(*args)
        self.said_at = said_at
        self.module = module


@contextlib.contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    """Every warning said inside, recorded and not shown (``catch_warnings(record=True)`` under ``"always"``), each
    keeping the frames that led to it (kept beside the warning: the warning object is left as it was said): ``replay``
    says it again later, and should a filter make it an error then, the message names the code that said it and
    distgen's call of that code, not the replaying line."""
    said: list[warnings.WarningMessage] = []

    def keep(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None,
             line: str | None = None) -> None:
        said.append(_Said(_stack(), _module_at(filename, lineno), message, category, filename, lineno, file, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = keep
        yield said


def replay(said: Collection[warnings.WarningMessage]) -> None:
    """Say the ``recorded`` warnings again, under the caller's filters, each at the file, line and module where it was
    said (a filter naming the module, ``-W ignore::EncodingWarning:numba.core.config``, applies to it). One that a filter
    makes an error is raised carrying the frames where it was said (``warning_made_an_error`` names
    them)."""
    for w in said:
        try:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=getattr(w, "module", None))
        except Warning as exc:
            if exc is w.message and isinstance(w, _Said):
                with contextlib.suppress(Exception):  # past a class's own __setattr__ (a frozen one): exceptions keep a __dict__
                    object.__setattr__(exc, _SAID_AT, w.said_at)
            raise


def _module_at(filename: str, lineno: int) -> str | None:
    """The name of the module whose frame, among those calling ``recorded``'s hook, is at ``filename``, ``lineno`` (the
    module the warning is said in, as a filter's module field matches it); None when no frame is there."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            module = frame.f_globals.get("__name__")
            return module if isinstance(module, str) else None
        frame = frame.f_back
    return None


def _stack() -> tuple[tuple[str, int], ...]:
    """The module name and line of each frame calling ``recorded``'s hook, outermost first, the warnings module's and
    the hook's own left out."""
    frames = []
    here = inspect.currentframe()
    frame = here.f_back.f_back if here is not None and here.f_back is not None else None  # past this function and the hook
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if isinstance(module, str) and module != "warnings":
            frames.append((module, frame.f_lineno))
        frame = frame.f_back
    return tuple(reversed(frames))
