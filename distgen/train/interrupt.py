"""Stopping a training run on SIGINT/SIGTERM at a step boundary, so that it can be resumed.

While ``StopOnSignal`` is active (the trainer enters it around its loop, in the main thread,
when it writes checkpoints), the first SIGINT or SIGTERM only records a request: the trainer
finishes the step in progress, writes a final checkpoint and raises ``distgen.errors.Interrupted``
(exit code 130 or 143 from the CLI, with the command that resumes). When the step in progress is
expected to take longer than ``grace_s`` (judged by the recent step time), or on a second signal,
the run stops at once, without a final checkpoint; the last periodic checkpoint stays intact
because every checkpoint is written atomically.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

from distgen.errors import Interrupted

#: Longest wait for the step in progress after a signal before stopping without a final checkpoint.
GRACE_S = 10.0
#: A second signal this soon after the first is the same request delivered twice (a terminal's Ctrl-C reaches every
#: process of its group, and ``distgen sweep`` passes the signal on to its runs; a job scheduler signals every process
#: too), not a second request to stop at once.
SAME_REQUEST_S = 1.0


class StopOnSignal:
    """Context manager: turns SIGINT/SIGTERM into a stop request honoured at the next step boundary."""

    def __init__(self, enabled: bool = True, grace_s: float = GRACE_S, last_checkpoint: Any = None) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.grace_s = grace_s
        self.signal: str | None = None
        self.step_s: float | None = None  #: recent step duration (exponential average)
        self.last_checkpoint = last_checkpoint
        self.step = 0
        self._previous: dict[int, Any] = {}
        self._first = 0.0

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def step_done(self, seconds: float, step: int, last_checkpoint: Any) -> None:
        """Record a finished step (its duration feeds the estimate of when the next boundary comes)."""
        self.step_s = seconds if self.step_s is None else 0.7 * self.step_s + 0.3 * seconds
        self.step, self.last_checkpoint = step, last_checkpoint

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        now = time.monotonic()
        if self.signal is not None and now - self._first < SAME_REQUEST_S:
            return  # one request delivered twice: Ctrl-C reaches the process group and distgen sweep passes it on
        slow = self.step_s is not None and self.step_s > self.grace_s
        if self.signal is not None or slow:
            why = "a second signal" if self.signal is not None else f"a step takes ~{self.step_s:.0f} s, more than {self.grace_s:.0f} s"
            last = self.last_checkpoint or "none was written yet"
            raise Interrupted(
                f"interrupted by {name} during step {self.step + 1} ({why}): stopped without a final checkpoint; "
                f"the last checkpoint is {last}", name, self.step, self.last_checkpoint,
            )
        self.signal, self._first = name, now

    def __enter__(self) -> StopOnSignal:
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
