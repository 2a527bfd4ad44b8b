"""What a run folder holds and whose it is: the reading of ``distgen run``'s and ``distgen sweep``'s run folders.

A run folder (``distgen run --out``, or ``runs/<slug>`` of a sweep) holds:

- ``experiment.yaml``: the config it ran (``RECORD_FILE``), written by ``distgen run`` before any work, or by the sweep
  beside the ``DONE`` of a run another runner made (``sweep.record_run``); which config the folder's results are of;
- ``DONE``: written last once its evaluation is complete; ``distgen run``'s is a JSON record ``{"metrics": ...}`` (the
  ``--metrics`` it was evaluated with, ``RunFolder.record``), the sweep's for another runner's run a plain ``ok``;
- ``eval/summary.json``, ``eval/metrics.csv`` and ``timings.json`` (``SUMMARY_FILES``): what a finished run returns;
- ``data_moved.json`` (``MOVED_RECORD``): the data file at a new path that was checked to hold the experiment's data;
- ``train/`` (checkpoints, ``manifest.json``, ``split.json``) for a trained model.

Everything here only reads: no lock is taken and no file written, so a folder that cannot be locked or written
(read-only, another user's) is read the same way. The writers are ``experiment`` (``experiment.yaml``, ``timings.json``,
``DONE``, ``record_moved``; under the folder's lock) and ``sweep.record_run`` (another runner's run, under the sweep's).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from distgen.config import ConfigError, load_yaml, result_settings
from distgen.data.prepared import Dataset
from distgen.errors import InputFileError, clip_message
from distgen.jsonfile import JsonProblem, parse_json_object, read_json
from distgen.train.checkpoint import config_diff, list_checkpoints
from distgen.wording import first_of

if TYPE_CHECKING:
    from distgen.pipeline.grid import Run

#: Written (last) into a run folder once its evaluation is complete.
DONE_FILE = "DONE"
#: The config a run folder's results are of.
RECORD_FILE = "experiment.yaml"
#: Where ``distgen run`` leaves the per-perturbation metrics of one run, relative to its folder.
METRICS_FILE = Path("eval") / "metrics.csv"
#: ``same_data_moved``'s record of the file it checked, beside ``experiment.yaml`` (which keeps the path trained on).
MOVED_RECORD = "data_moved.json"
#: The files of a finished experiment ``read_finished`` reads (``timings.json`` where present).
SUMMARY_FILES = ("eval/summary.json", "timings.json")


def check_same_experiment(out: str | Path, doc: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Refuse ``out`` when its ``experiment.yaml`` was written for another config (``ConfigError`` naming the keys).

    A folder whose earlier run stopped before producing anything (no checkpoint, prediction or evaluation:
    e.g. refused by the preflight or a data check) is not refused: the new config replaces that record.

    It only reads. Returns the ``data_moved.json`` record of the data file it found, by its hash, to hold the experiment's
    data at a new path (``same_data_moved``), for its caller to write (``experiment.record_moved``); None when there is none
    to write. ``known``: such a record found before (before the lock), trusted while the file's stamp is the same.
    Writing no file and taking no lock, the check of a sweep does not refuse a ``distgen run`` into that folder as "in use".
    """
    out = Path(out)
    path = out / RECORD_FILE
    if not path.exists():
        return None
    if not (list_checkpoints(out / "train" / "checkpoints") or (out / "pred.h5ad").exists() or (out / "eval").exists()):
        return None
    try:
        previous = load_yaml(path)
    except (ConfigError, OSError, ValueError):
        return None  # an unreadable earlier record (cut short while written): this run replaces it
    diff = config_diff(result_settings(previous), result_settings(doc))
    moved, record = "", None
    if moved_only(diff):  # the file's path alone: the data, if its content is the run's
        moved, record = same_data_moved(out, doc, known)
        if not moved:
            return record
    if diff:
        shown = first_of(diff, 3, "; ", enclosed=True)
        raise ConfigError(f"{out} holds an experiment of another config ({shown}){moved}; rerun with that config to resume "
                          "it, or choose another --out")
    return None


def moved_only(diff: Sequence[str]) -> bool:
    """Whether a ``config_diff`` of two experiment records changes the data file's path alone (``data.dataset``): the same
    experiment when the file at the new path holds its data (``same_data_moved``). Read by ``check_same_experiment`` and
    ``stale_record``."""
    return bool(diff) and all(d.startswith("data.dataset:") for d in diff)


def same_data_moved(out: Path, doc: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any] | None]:
    """``('', record)`` when ``doc``'s data file (another path than the experiment's) holds the data the experiment trained
    on (its ``train/manifest.json`` hash, read with its ``train/split.json``): a file moved or a run folder copied elsewhere.
    Otherwise ``(why not, None)``, the why as a clause for the refusal.

    ``record``: what ``out/data_moved.json`` is to say of the file (its absolute path and ``file_stamp``, with the hash it
    matched), or None when it says so already (or the file has no stamp). ``distgen run`` and ``distgen sweep`` write it
    (``experiment.record_moved``; this only reads): a later run of the experiment with the same path reads the record
    instead of hashing the file again (``experiment.yaml`` still names the old path), unless the file's stamp (inode, size,
    modification time) changed: the content is not read again, so the same file rewritten in place with as many bytes and
    its time set back is trusted (only to read the finished experiment: whatever reads its cells compares their hash;
    removing the record forces the check, docs/training.md). ``known``: a record this process found before, trusted as
    the file's under the same rule."""
    from distgen.train.manifest import recorded_data_hash

    want = recorded_data_hash(out / "train")
    if not want:
        return " (it records no data hash to tell whether the file at the new path holds the same data)", None
    checked = _moved_record(doc, want)
    if checked is not None and read_json(out / MOVED_RECORD)[0] == checked:
        return "", None
    if checked is not None and known == checked:
        return "", checked
    split = out / "train" / "split.json"
    try:
        got = Dataset.load(doc.get("data"), split if split.is_file() else None).data.hash
    except (ConfigError, OSError, ValueError) as exc:
        return f" (the file at the new path could not be read as its data: {str(exc)[:200]})", None
    if got != want:
        return f" (the file at the new path holds other data: hash {got}, the run's {want})", None
    return "", checked if checked is not None and checked == _moved_record(doc, want) else None


def _moved_record(doc: Mapping[str, Any], data_hash: str) -> dict[str, Any] | None:
    """What ``data_moved.json`` says of ``doc``'s data file holding ``data_hash`` (None: not a file or store on disk)."""
    from distgen.data.disk import file_stamp

    dataset = (doc.get("data") or {}).get("dataset")
    if not isinstance(dataset, str) or not os.path.exists(path := os.path.abspath(os.path.expanduser(dataset))):
        return None
    stamp = file_stamp(Path(path))
    return None if stamp == (-1,) else {"dataset": path, "stamp": list(stamp), "data_hash": data_hash}


def is_finished(out: str | Path, doc: Mapping[str, Any], metrics: Sequence[str] | None = None) -> bool:
    """True when ``out`` holds this experiment, evaluated with ``metrics`` and complete.

    Raises ``ConfigError`` when ``out`` holds an experiment of another config (or as ``read_finished`` does). Other
    metrics than the finished evaluation's mean evaluating again (training is not repeated).
    """
    return read_finished(out, doc, metrics).summary is not None


class Finished(NamedTuple):
    """What ``read_finished`` read of a run folder."""

    #: the summary ``run`` returned (``eval/summary.json`` with ``timings.json`` as ``timings_s``); None: not finished
    summary: dict[str, Any] | None
    #: ``DONE``'s bytes as read before the summary (None when it could not be read)
    done: bytes | None
    #: ``data_moved.json``'s record to write (``check_same_experiment``)
    moved: dict[str, Any] | None
    #: ``DONE`` as read (``RunFolder.read``; the note of a damaged one is said from it); None: nothing read
    folder: RunFolder | None = None


def read_finished(out: str | Path, doc: Mapping[str, Any], metrics: Sequence[str] | None = None,
                  known: Mapping[str, Any] | None = None, folder: RunFolder | None = None) -> Finished:
    """``out`` read once: its summary when it holds this experiment, evaluated with ``metrics`` and complete (each file
    parsed once, and the summary returned is the one parsed). Only reads (no lock). ``folder``: ``out``'s ``DONE`` as read
    before (``RunFolder.read``; a sweep's pass), taken as read, not read again; else it is read here.

    Raises ``ConfigError`` when ``out`` holds an experiment of another config, or a finished one whose record is not usable
    (``check_finished_record``); ``InputFileError`` for a ``DONE`` that is a folder or cannot be read
    (``check_done_replaceable``). An evaluation part-removed,
    a damaged ``SUMMARY_FILES`` (``damaged_finished_file``: every rank reads the same files, all predict and evaluate
    again; rank 0 says why) or other metrics is not finished."""
    out = Path(out)
    moved = check_same_experiment(out, doc, known)
    read = folder if folder is not None else RunFolder.read(out)  # before the summary: a writer removes DONE first, writes it last
    check_done_replaceable([read])  # before any work: a DONE folder is not replaced by the run's record
    if not all((out / f).exists() for f in (DONE_FILE, "eval/summary.json", "eval/metrics.csv")):
        return Finished(None, None, moved, read)  # an evaluation part-removed is done again (a sweep reads its metrics.csv)
    check_finished_record(out)
    if read.done is None:
        return Finished(None, None, moved, read)
    summary, _ = _read_summary(out)
    wanted = list(metrics) if metrics is not None else None
    if summary is None or read.record is None or read.record.get("metrics") != wanted:
        return Finished(None, read.done, moved, read)
    return Finished(summary, read.done, moved, read)


def check_finished_record(out: Path) -> None:
    """Refuse a finished experiment (``DONE``) whose ``experiment.yaml`` is missing or cannot be read (``ConfigError`` naming
    the file and the fix): which config it ran cannot be told, and ``DONE`` would make the folder a finished experiment of
    any config asked, its summary returned as theirs (``check_same_experiment`` passes over an unreadable record as one cut
    short while written). Without ``DONE`` an unreadable record is replaced by the new run."""
    path = out / RECORD_FILE
    try:
        doc = load_yaml(path)
        if isinstance(doc, Mapping) and "model" in doc:
            return
        why = "it holds no experiment config (no model section)"
    except (ConfigError, OSError, ValueError) as exc:
        why = "it is missing" if not path.exists() else f"it cannot be read ({clip_message(str(exc), 200)})"
    raise ConfigError(
        f"{out} holds a finished experiment ({DONE_FILE}) but its record {path} of the config it ran is not usable: {why}, so "
        "whether it is this config's cannot be told. Restore that file (the config the experiment ran with, e.g. from a "
        f"copy of the folder), or remove {out / DONE_FILE} to continue the experiment with this config, or choose another --out")


def finished_or_none(out: Path, doc: Mapping[str, Any], metrics: Sequence[str] | None,
                     known: Mapping[str, Any] | None = None, folder: RunFolder | None = None) -> dict[str, Any] | None:
    """The summary of ``out`` when it holds this experiment finished (with ``metrics``), read without its lock; else None.
    ``known``: the ``data_moved.json`` record a check of ``out`` found before (``check_same_experiment``), not hashed again;
    ``folder``: its ``DONE`` as read before (``read_finished``)."""
    return finished_unlocked(out, doc, metrics, known, folder).summary


def finished_unlocked(out: Path, doc: Mapping[str, Any], metrics: Sequence[str] | None,
                      known: Mapping[str, Any] | None = None, folder: RunFolder | None = None) -> Finished:
    """``read_finished`` without the folder's lock. It only reads, so it needs no lock (a finished read-only archived run
    is read, not refused at its lock). A writer of the folder (its owner re-running it with other metrics) removes
    ``DONE`` first and writes it last, so ``DONE`` is read before the summary and again after it: gone or changed, the
    summary may be of a run being rewritten, and no summary is returned (the caller then takes the lock, which that writer
    holds). Another config's experiment is refused (``ConfigError``): ``experiment.yaml`` is never rewritten to another
    config, so this holds without the lock. A file that cannot be read now (``OSError``, ``ValueError``) leaves the
    decision to the lock: nothing is returned."""
    try:
        read = read_finished(out, doc, metrics, known, folder)
    except (ConfigError, InputFileError):  # another config's run, a DONE that cannot be read: refused, not left to the lock
        raise
    except (OSError, ValueError):
        return Finished(None, None, None)
    if read.summary is None:
        return read
    return read if RunFolder.read(out).done == read.done else read._replace(summary=None)  # unreadable now: None, not same


def _finished_json(out: Path, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(document, None)`` of ``out/name`` (None when ``timings.json`` is absent), or ``(None, why)`` naming the file."""
    path = out / name
    if name == "timings.json" and not path.exists():
        return None, None
    return read_json(path, clip=120)


def recorded_timings(out: Path) -> dict[str, Any]:
    """``out/timings.json`` as recorded (the seconds of each stage of its last run); {} when absent or unreadable."""
    return _finished_json(out, "timings.json")[0] or {}


def _read_summary(out: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(summary, None)``: ``eval/summary.json`` with ``timings.json`` as ``timings_s`` (as ``run`` returned it), or
    ``(None, why)`` naming the first file of ``SUMMARY_FILES`` that cannot be read."""
    summary, why = _finished_json(out, "eval/summary.json")
    timings, why = (None, why) if why else _finished_json(out, "timings.json")
    if summary is None or why:
        return None, why
    if timings is not None:
        summary["timings_s"] = timings
    return summary, None


def damaged_finished_file(out: Path) -> str | None:
    """Why a finished experiment's summary cannot be returned (``SUMMARY_FILES``: one cut short or edited), naming the file;
    None when both read. ``read_finished`` counts such an experiment as unfinished, on every rank: it is predicted and
    evaluated again, which writes them again (and no rank trains alone while another stops)."""
    return _read_summary(out)[1]


def finished_summary(out: str | Path) -> dict[str, Any]:
    """The evaluation summary of a finished experiment (as ``run`` returned it); ``ConfigError`` naming a file of
    ``SUMMARY_FILES`` that cannot be read (run the experiment again: it is evaluated again)."""
    out = Path(out)
    summary, why = _read_summary(out)
    if summary is None:
        raise ConfigError(f"{why}: run the experiment again (distgen run with its config and --out {out}) to evaluate it "
                          "again, no step trained again")
    return summary


#: The ``DONE`` the sweep writes for a run another runner finished (``sweep.record_run``); read with surrounding
#: whitespace stripped.
SWEEP_DONE = "ok"


@dataclass(frozen=True)
class RunFolder:
    """A run folder's ``DONE`` read once (``read``), and the questions a sweep asks of a run, each answered from that one
    reading: whose ``DONE`` it is (``record``), whether it is damaged (``damaged``), what a finished run lacks
    (``removed_part``, ``metrics_lost``), whether it is finished (``finished``), whether its config is recorded
    (``unrecorded``). The other files (``eval/metrics.csv``, the summary) are looked at when a question needs them, the
    summary read at most once (``removed_part``). Read again to see the folder after a run wrote it."""

    path: Path
    #: whether ``DONE`` exists (``Path.exists``; also when it cannot be read)
    has_done: bool
    #: ``DONE``'s bytes; None: absent, not a file (``kind``), or a file that cannot be read
    done: bytes | None
    #: what ``DONE`` is when it is not a file (``"a folder"``, ``"a pipe"``, ...: ``file_kind``); None: a file or absent
    kind: str | None = None
    #: why a ``DONE`` that exists could not be read (the ``OSError``'s words, e.g. permission denied); None: read or absent
    unreadable: str | None = None
    #: ``DONE``'s device, inode, size and modification time (ns) at the ``stat`` before its read (``changed``); None: absent
    stamp: tuple[int, ...] | None = None

    @classmethod
    def read(cls, path: str | Path) -> RunFolder:
        """``path``'s ``DONE``, read once: one ``stat`` (whether it exists, what it is when not a file) and, for a file,
        one open (its bytes, or why they could not be read: the error answers whether it is there). Opened only when it
        is a file (a named pipe would block the read, a device might never end it, a folder or a socket cannot be
        opened). A ``stat`` refused for another reason than absence (a folder this user cannot search) is raised."""
        path = Path(path)
        done = path / DONE_FILE
        try:
            st = done.stat()
        except OSError as exc:
            if exc.errno in _ABSENT:
                return cls(path, False, None)
            raise  # a run folder this user cannot search, as Path.exists raises it
        kind, stamp = file_kind(st.st_mode), _stamp(st)
        if kind is not None:
            return cls(path, True, None, kind, stamp=stamp)
        try:
            return cls(path, True, done.read_bytes(), stamp=stamp)
        except OSError as exc:  # removed since the stat: absent; else there but unreadable (permission denied)
            if exc.errno in _ABSENT:
                return cls(path, False, None)
            return cls(path, True, None, unreadable=exc.strerror or str(exc), stamp=stamp)

    def changed(self) -> str | None:
        """Whether ``DONE`` is still the file this reading is of, by one ``stat`` of it now: ``"gone"``, ``"rewritten"``
        (written again: its size or modification time differ; ``distgen run`` removes ``DONE`` before it evaluates again
        and writes it whole, last), or None: the same file. Where only the device or inode number differ, ``DONE`` is read
        again and its bytes decide: FAT/exFAT (once the file's inode left the kernel's cache), CIFS mounted
        ``noserverino`` and FUSE file systems without stable inode numbers (sshfs) give a file nothing wrote another
        number, and a file copied over it with its time kept (``cp -p``) is a rewrite only when its bytes differ. A
        ``stat`` that fails for another reason than absence is raised."""
        try:
            now = _stamp((self.path / DONE_FILE).stat())
        except OSError as exc:
            if exc.errno in _ABSENT:
                return "gone"
            raise
        if now == self.stamp:
            return None
        if self.stamp is None or now[2:] != self.stamp[2:] or self.done is None:
            return "rewritten"
        again = RunFolder.read(self.path)
        return "gone" if not again.has_done else None if again.done == self.done else "rewritten"

    @cached_property
    def record(self) -> dict[str, Any] | None:
        """The ``DONE`` record ``distgen run`` writes (``{"metrics": ...}``: the JSON object of the bytes, UTF-8 whatever
        the locale), or None: absent, unreadable, the sweep's marker of another runner's run, or damaged (``damaged``)."""
        if self.done is None:
            return None
        record = parse_json_object(self.done)
        return None if isinstance(record, JsonProblem) else record

    @property
    def damaged(self) -> str | None:
        """Why ``DONE`` is damaged, naming the file: it is neither ``distgen run``'s record (a JSON object: ``record``) nor
        the sweep's marker (``SWEEP_DONE``), e.g. cut short, a list, with a byte-order mark, empty, not UTF-8. Both are
        written whole (``atomic_write_text``), so only a hand edit makes one. ``distgen run`` and the sweep alike take such
        a run as unfinished and evaluate it again, saying so; so is a ``DONE`` that is not a file (``kind``), which distgen
        never writes (a folder is refused instead: ``check_done_replaceable``). None: no ``DONE``, one of the two, or a
        file that cannot be read."""
        held = f"it is {self.kind}, not a file" if self.kind is not None else None
        if self.kind == _FOLDER:
            held = f"{held} (remove it: an evaluation cannot replace a folder with its {DONE_FILE} file)"
        if held is None and (self.done is None or self.done.strip() == SWEEP_DONE.encode() or self.record is not None):
            return None
        return (f"{self.path / DONE_FILE} is neither distgen run's record (a JSON object) nor the sweep's marker "
                f"({SWEEP_DONE}): {held or f'it holds {clip_message(repr(self.done), 60)}'}")

    @cached_property
    def removed_part(self) -> str | None:
        """Why a finished run (its ``DONE``) is run again, naming the file (``eval/metrics.csv`` removed; ``DONE`` damaged:
        ``damaged``; a ``distgen run`` run's ``eval/summary.json`` removed, or it or ``timings.json`` unreadable:
        ``damaged_finished_file``), or None. The sweep says so when it runs such a run again."""
        if not self.has_done:
            return None
        if not (self.path / METRICS_FILE).exists():
            return "it has no eval/metrics.csv (removed since it finished)"
        if (damaged := self.damaged) is not None:
            return damaged
        if self.record is None:
            return None
        if not (self.path / "eval" / "summary.json").exists():
            return "it has no eval/summary.json (removed since it finished)"
        return damaged_finished_file(self.path)

    @property
    def evaluated_with(self) -> list[str] | None:
        """The ``--metrics`` a finished run was last evaluated with (``distgen run ... --metrics``: its ``DONE`` record), or
        None: its config's ``evaluate.metrics`` (what the sweep launches) or no record. A run evaluated again by hand with
        other metrics is evaluated again with the sweep's (``metrics_lost``), not shown with "- (no value)" for a metric
        it lost."""
        metrics = self.record.get("metrics") if self.record is not None else None
        return [str(m) for m in metrics] if isinstance(metrics, list) else None

    def metrics_lost(self, metrics: Sequence[str]) -> list[str]:
        """The ``metrics`` (those the sweep compares) a finished run lacks because it was evaluated again by hand with other
        ``--metrics`` (``evaluated_with``); [] for a run its config's evaluation scored (no record) or one whose
        ``--metrics`` kept them all. Such a run is evaluated again with its config's metrics. A run evaluated by hand with
        more metrics (the sweep's own advice for a metric no run computed) keeps its table: evaluating it again would drop
        the metric it was just given, and the sweep would warn of it again."""
        by_hand = self.evaluated_with
        if by_hand is None:
            return []
        have = {m.strip() for m in by_hand}
        return [m for m in metrics if m not in have]

    def again_why(self, metrics: Sequence[str]) -> str | None:
        """Why a finished run is evaluated again for a sweep comparing ``metrics``, as a clause: ``removed_part``, else the
        metrics it lacks (``metrics_lost``); None: not finished, or finished for ``metrics``."""
        if self.removed_part is not None:
            return self.removed_part
        if lost := self.metrics_lost(metrics):
            return (f"it was evaluated with {self.by_hand_said} (by hand, after the sweep), "
                    f"without {', '.join(lost)}, which the sweep compares")
        return None

    @property
    def by_hand_said(self) -> str:
        """The ``--metrics`` of ``evaluated_with`` as said in a note: ``--metrics mse,pearson_delta``, or, for a record of
        an empty list (``{"metrics": []}``), that it names no metric."""
        by_hand = self.evaluated_with or []
        return f"--metrics {','.join(by_hand)}" if by_hand else f'no metric (its {DONE_FILE} records "metrics": [])'

    def finished(self, metrics: Sequence[str] = ()) -> bool:
        """Whether the folder holds a finished run the sweep can read: its ``DONE`` and its ``eval/metrics.csv``, evaluated
        with each of ``metrics`` (the ones the sweep compares; ``metrics_lost``). A ``DONE`` without the table (removed
        since, a folder copied in part) is run again (``distgen run`` evaluates it again without training), not skipped
        with its rows left out of the results. So is a run ``distgen run`` finished (its ``DONE`` record) whose
        ``eval/summary.json`` went missing (it would be read without its truth record, which the truth checks need), as
        ``distgen run`` counts it unfinished, and a run whose ``DONE`` is damaged (``damaged``: neither of the two), which
        ``distgen run`` evaluates again too; another runner's run (the sweep's own ``DONE``) needs no summary."""
        return self.has_done and self.again_why(metrics) is None

    @property
    def unrecorded(self) -> bool:
        """Whether the folder holds a run another runner finished without a record of its config: a ``DONE`` but no
        ``experiment.yaml`` (looked for now: a sweep that predates the record wrote none for another runner), and not
        ``distgen run``'s ``DONE`` record beside its ``timings.json`` (whose ``experiment.yaml`` was written and is gone:
        restoring it is the fix)."""
        if not self.has_done or (self.path / RECORD_FILE).exists():
            return False
        return self.record is None or not (self.path / "timings.json").exists()


#: The ``errno`` of a ``stat`` or open that means no ``DONE`` is there (``Path.exists`` answers False for these).
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What tells one ``DONE`` from another written since: device, inode, size, modification time (ns)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


#: What a path that is not a regular file is, by ``stat`` test (``file_kind``).
_NOT_A_FILE = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
_FOLDER = _NOT_A_FILE[0][1]


def file_kind(mode: int) -> str | None:
    """What a path of ``st_mode`` ``mode`` is when it is not a regular file (``"a folder"``, ``"a pipe"``, ``"a socket"``,
    ``"a character device"``, ``"a block device"``, else ``"not a file"``); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((said for test, said in _NOT_A_FILE if test(mode)), "not a file")


def check_done_readable(folders: Iterable[RunFolder]) -> None:
    """Refuse (``InputFileError``, before any work) run folders whose ``DONE`` file exists but cannot be read
    (``RunFolder.unreadable``: permission denied), naming the first and the fix: whether the run finished, and with which
    metrics, cannot be told, so it is neither skipped as finished nor evaluated again. ``distgen run`` and the sweep (also
    one that only reads a finished sweep it cannot lock) refuse it alike."""
    if not (unreadable := [folder for folder in folders if folder.unreadable is not None]):
        return
    first = unreadable[0]
    more = f" (and {len(unreadable) - 1} more run folder(s)' {DONE_FILE})" if len(unreadable) > 1 else ""
    raise InputFileError(
        f"{first.path / DONE_FILE} cannot be read ({first.unreadable}){more}, so whether its run finished cannot be told. "
        f"Give this user read permission on it (chmod u+r {first.path / DONE_FILE}, or ask its owner), or remove it to "
        "evaluate the run again (no step trained again); or use another --out")


def check_done_replaceable(folders: Iterable[RunFolder]) -> None:
    """Refuse (``InputFileError``, exit 1, as a ``DONE`` that cannot be read: the fix is on disk, not in the config or the
    command line) run folders whose ``DONE`` is a folder, before any work, naming each ``DONE`` and the fix.
    Such a ``DONE`` is damaged (``RunFolder.damaged``), so the run is not finished; but where a damaged file is removed
    and replaced by the ``DONE`` the new evaluation writes, a folder is not (``distgen run`` would fail at its end, after
    predicting again, and a sweep count the run failed), and what it holds is not distgen's to remove. A ``DONE`` that
    cannot be read is refused first (``check_done_readable``)."""
    folders = list(folders)
    check_done_readable(folders)
    bad = [folder for folder in folders if folder.kind == _FOLDER]
    if not bad:
        return
    if len(bad) == 1:
        said, they, runs = f"{bad[0].damaged}", "it holds", "the run is"
    else:
        said, they, runs = (f"{len(bad)} run folders' {DONE_FILE} are folders, not files "
                            f"({first_of([str(f.path / DONE_FILE) for f in bad], 3, enclosed=True)}): neither distgen run's record (a JSON "
                            f"object) nor the sweep's marker ({SWEEP_DONE}) (remove them: an evaluation cannot replace a "
                            f"folder with its {DONE_FILE} file)"), "they hold", "the runs are"
    raise InputFileError(f"{said}; distgen never makes one, so look at what {they} first. Then {runs} evaluated again "
                         "(no step trained again); or use another --out")


def run_folders(out: Path, runs: Sequence[Run]) -> dict[str, RunFolder]:
    """Each run's folder under ``out/runs`` read (``RunFolder.read``), by slug: one reading of a sweep's pass."""
    return {r.slug: RunFolder.read(out / "runs" / r.slug) for r in runs}


def check_run_folder(folder: RunFolder, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """Refuse (``ConfigError``) a run folder that holds another config's run (its ``experiment.yaml``:
    ``check_same_experiment``) or a finished run (``DONE``) whose ``experiment.yaml`` is missing or unreadable, so that
    which config it ran cannot be told (``check_finished_record``), whichever runner made it: the sweep records the config
    of another runner's run beside the ``DONE`` it writes (``sweep.record_run``), so another runner's run is not read as
    finished for any config, its rows taken as the asking sweep's. Returns ``check_same_experiment``'s
    ``data_moved.json`` record for the caller to write where it may (or None)."""
    moved = check_same_experiment(folder.path, doc)
    if folder.has_done:
        check_finished_record(folder.path)
    return moved


def unrecorded_runs(folders: Mapping[str, RunFolder]) -> list[str]:
    """The runs (slugs of ``folders``, ``run_folders``) whose folder holds a run another runner finished without a record
    of its config (``RunFolder.unrecorded``)."""
    return [slug for slug, folder in folders.items() if folder.unrecorded]


def record_stamp(run_dir: Path) -> tuple[int, ...]:
    """``file_stamp`` of ``run_dir``'s ``experiment.yaml`` (``(-1,)`` when there is none), taken before its run."""
    from distgen.data.disk import file_stamp

    return file_stamp(run_dir / RECORD_FILE)


def stale_record(path: Path, doc: Mapping[str, Any]) -> bool:
    """Whether ``path`` is a distgen experiment record (a mapping with a ``model`` section) of another config than ``doc``,
    beyond the data file's path: one the check before the run let stand because its folder had produced nothing
    (``check_same_experiment``; a ``distgen run`` refused before training). A runner that writes no record of its own
    leaves it beside the run's results, where that config's sweep would read them as its own and this one's would be
    refused as another config: ``sweep.record_run`` replaces it. A file of the runner's own (not such a record) is not
    stale."""
    try:
        previous = load_yaml(path)
    except (ConfigError, OSError, ValueError):
        return False
    if not isinstance(previous, Mapping) or "model" not in previous:
        return False
    diff = config_diff(result_settings(previous), result_settings(doc))
    return bool(diff) and not moved_only(diff)
