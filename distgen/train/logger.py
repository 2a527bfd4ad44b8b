"""Run logging on rank 0: ``metrics.csv`` (wide, one row per log), TensorBoard when installed, progress (tqdm or lines)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TENSORBOARD_NOTE = (
    "TensorBoard logging is off: the 'tensorboard' package is not installed "
    "(pip install 'distgen[tensorboard]'); metrics.csv holds the same numbers."
)


def tensorboard_writer(log_dir: Path) -> Any | None:
    """A ``SummaryWriter`` when ``tensorboard`` is importable, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


class MetricsLog:
    """Append rows to ``metrics.csv``; the header grows (one rewrite) when a new column appears.

    On resume, rows logged after the resumed step are dropped (they will be logged again).
    """

    def __init__(self, path: Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.path = path
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, str]] = []
        if resume_step is not None and path.exists():
            with path.open(encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or ["step"])
                self.rows = [r for r in reader if int(float(r["step"])) <= resume_step]
        self._rewrite()
        self.tb = tensorboard_writer(path.parent / "tensorboard") if tensorboard else None
        self.note = None if self.tb is not None or not tensorboard else TENSORBOARD_NOTE

    def log(self, step: int, values: Mapping[str, float]) -> None:
        row = {"step": str(step), **{k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in values.items()}}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with self.path.open("a", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, self.columns, restval="").writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, self.columns, restval="")
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.path)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


#: Seconds between progress lines when stderr is not a terminal (a log file, a batch job's output).
LINE_PROGRESS_SECONDS = 60.0


def duration(seconds: float) -> str:
    """A human duration: ``45 s``, ``13.3 min``, ``2.1 h``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class LineProgress:
    """Progress as plain lines, one at most every ``interval`` seconds, for output that is not a terminal.

    A tqdm bar redraws itself with carriage returns, which a log file keeps as one ever-growing line; a job
    writing to a file (a cluster's batch output, ``... 2> train.log``) gets ``train: step 480/1000 (48%),
    loss 0.0876, 2.4 s/step, about 20.8 min left`` instead. A run shorter than ``interval`` prints nothing.
    Same calls as the tqdm bar the trainer uses (``update``, ``set_postfix``, ``close``).
    """

    def __init__(self, total: int, initial: int, interval: float | None = None, file: Any = None,
                 desc: str = "train", clock: Any = None) -> None:
        import time

        self.total, self.n, self.desc = total, initial, desc
        self.interval = LINE_PROGRESS_SECONDS if interval is None else interval
        self.file = file if file is not None else sys.stderr
        self._clock = clock or time.perf_counter
        self._t0 = self._last = self._clock()
        self._n0 = initial
        self._postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            print(self.line(now), file=self.file, flush=True)

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def line(self, now: float) -> str:
        done = self.n - self._n0
        per = (now - self._t0) / done if done else float("nan")
        parts = [f"{self.desc}: step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%)"]
        if self._postfix:
            parts.append(self._postfix)
        if done:
            parts.append(f"{per:.3g} s/step, about {duration(per * (self.total - self.n))} left")
        return ", ".join(parts)

    def close(self) -> None:
        return None


def progress_bar(total: int, initial: int, enabled: bool, file: Any = None) -> Any:
    """Progress over optimizer steps: a tqdm bar on a terminal, :class:`LineProgress` lines otherwise.

    ``file`` defaults to ``sys.stderr`` (read at call time, so a redirected stream is honoured).
    """
    from tqdm.auto import tqdm

    stream = file if file is not None else sys.stderr
    if enabled and not _is_terminal(stream):
        return LineProgress(total, initial, file=stream)
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, file=stream, desc="train")


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
