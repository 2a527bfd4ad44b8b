"""Run logging on rank 0: ``metrics.csv`` (wide, one row per log), TensorBoard when installed, tqdm."""

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
            with path.open() as fh:
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
            with self.path.open("a", newline="") as fh:
                csv.DictWriter(fh, self.columns, restval="").writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as fh:
            w = csv.DictWriter(fh, self.columns, restval="")
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.path)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar over optimizer steps (shows steps/s and ETA; loss goes in the postfix)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True, file=sys.stderr, desc="train")
