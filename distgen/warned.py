"""``recorded_warnings``: the warnings a run showed, kept as notes for its report.

A component, a plugin or distgen itself tells the user about something that changes a result (a
population left out, doses pooled, a setting with no effect) with ``warnings.warn(msg, UserWarning)``
(or a subclass: ``InertSettingWarning``, ``PreflightWarning``). On stderr such a warning is gone when
the user reads the run's folder later, so ``distgen run`` records, in the order shown, every
``UserWarning`` its fit, training and prediction showed, once each, in the evaluation's notes
(``summary.json`` ``notes``, ``summary.md`` and ``report.html`` "Notes"), and a training run
(``distgen train``, ``distgen.fit(..., run_dir=)``) records those it showed in its ``manifest.json``
``warnings`` (``distgen.train.manifest.add_warnings``; ``distgen predict`` and the report of its
predictions show them again). A plugin needs nothing
beyond ``warnings.warn``. Warnings are still shown as before; a warning the user's filters silence
(``-W ignore``, ``warnings.simplefilter``) is neither shown nor recorded. Deprecation, future and
runtime warnings are library maintenance or numerics messages, not notes about a run: not recorded.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Record the messages of ``UserWarning``\\ s shown inside (each once, in order) in the list this yields.

    Each warning is still passed on to the ``warnings.showwarning`` in effect (stderr, pytest's recorder,
    ``logging.captureWarnings``). Entering resets the "shown once per place" memory of the default warning
    filter, so a second run in the same process records the warnings of the first again.
    """
    notes: list[str] = []
    with warnings.catch_warnings():  # restores showwarning and the filters on exit
        passed_on = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            text = str(message)
            if issubclass(category, UserWarning) and text not in notes:
                notes.append(text)
            passed_on(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield notes


__all__ = ["recorded_warnings"]
