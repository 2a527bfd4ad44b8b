"""An exclusive lock on a run folder, so that two processes never write into the same run.

The lock is the file ``<folder>/.distgen.lock`` holding who took it (pid, host, start time,
command line), locked with ``flock``: the kernel drops the lock when its process dies, so a lock
left behind by a killed run (``kill -9``, a crash, a lost node) is recognised as stale and taken
over. On file systems without ``flock`` (and on Windows) the file is created exclusively instead,
and a leftover lock whose process no longer runs on this host is taken over; one from another host
is reported with the command to remove it. Within one process the lock is re-entrant (``distgen
run`` may lock a folder whose trainer locks it again).

Usage::

    with RunLock(out, "train"):
        ...write into out...

A second process gets ``RunLockedError``: ``runs/a is in use by distgen train (pid 4121 on node3,
since 2025-01-02 10:00:00); wait for it to finish or use another --out``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distgen.errors import DistgenError, warn

LOCK_NAME = ".distgen.lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

#: Locks held by this process: resolved lock path -> [fd or None, count].
_HELD: dict[Path, list[Any]] = {}


class RunLockedError(DistgenError):
    """The run folder is locked by another process (exit code 1); ``holder``: what its lock file said when refused (``{}``
    when unknown), for a caller that words its own refusal (the file may be gone by the time it would read it again)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder: dict[str, Any] = holder or {}


class FolderNotWritableError(DistgenError, PermissionError):
    """The folder to write into (and lock) cannot be written: read-only, or another user's (exit code 1)."""


#: What each purpose writes into its folder, and where to write instead (``FolderNotWritableError``).
_WRITES = {
    "train": ("a resume writes its checkpoints, metrics.csv and manifest.json into the run folder",
              "copy the run to a folder you can write (cp -r {folder} NEW) and resume the copy, or continue it in a new "
              "folder: distgen train CONFIG --out NEW --resume {folder}/checkpoints/STEP (its newest: --resume {folder})"),
    "predict": ("writing a prediction into the run folder takes its lock",
                "write it outside the run folder (--out OTHER/pred.h5ad): predicting from a run into another folder only "
                "reads it"),
    "run": ("distgen run writes its training, predictions and evaluation into its --out folder",
            "copy the folder to one you can write and run there, or give another --out; distgen predict FOLDER --out "
            "OTHER/pred.h5ad and distgen evaluate --out OTHER read a read-only run"),
    "sweep": ("distgen sweep writes its runs and tables into its --out folder",
              "copy the sweep folder to one you can write and run the sweep there; python -m distgen.report FOLDER --out "
              "OTHER/report.html reads a read-only sweep"),
}


#: What a folder holds when it is a run of each purpose (``_WRITES``'s advice is for such a folder, not for a new one).
_HOLDS = {"train": "checkpoints", "predict": "checkpoints", "run": "experiment.yaml", "sweep": "sweep.yaml"}


def not_writable(folder: Path, purpose: str, lock_file: Path | None = None) -> FolderNotWritableError:
    """The error for a ``purpose`` (train, predict, run, sweep) that cannot write into ``folder``; a folder that holds no
    run yet (a new ``--out``) is told to choose another, not how to continue a run it does not hold. ``lock_file``: the
    lock file is there and cannot be opened for writing (another user's, or the folder read-only): named, not the folder."""
    head = (f"{lock_file}, the lock file of {folder}, cannot be written (another user's, left by a process of theirs, or "
            "the folder is read-only)" if lock_file is not None else f"{folder} is not writable (read-only, or another user's)")
    if purpose not in _WRITES or not (folder / _HOLDS[purpose]).exists():
        return FolderNotWritableError(f"{head}: distgen {purpose} writes into it; choose a folder you can write (--out)")
    what, fix = _WRITES[purpose]
    return FolderNotWritableError(f"{head}: {what}; {fix.format(folder=folder)}")


def _identity(purpose: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": _dt.datetime.now().isoformat(sep=" ", timespec="seconds"),
        "purpose": purpose,
        "command": " ".join(sys.argv)[:300],
    }


def _parse(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def read_holder(folder: str | Path) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says about its holder (None without a lock file)."""
    path = Path(folder) / LOCK_NAME
    try:
        return _parse(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None


def describe(info: dict[str, Any]) -> str:
    """``"distgen train (pid 4121 on node3, since 2025-01-02 10:00:00)"``."""
    if not info:
        return "another process (its lock file is empty or unreadable)"
    what = f"distgen {info['purpose']}" if info.get("purpose") else "another distgen process"
    return f"{what} (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')})"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    return True


def is_stale(info: dict[str, Any]) -> bool:
    """A holder recorded on this host whose process is gone (only checkable on the same host)."""
    return info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and not pid_alive(info["pid"])


class RunLock:
    """An exclusive, re-entrant (per process), stale-aware lock on ``folder`` (created if missing)."""

    def __init__(self, folder: str | Path, purpose: str = "train") -> None:
        self.folder = Path(folder)
        self.purpose = purpose
        self.path = self.folder / LOCK_NAME
        self.held = False

    # ------------------------------------------------------------------ public
    def acquire(self) -> RunLock:
        """Take the lock or raise ``RunLockedError`` naming the holder; returns ``self``."""
        if self.held:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:  # exc.filename: the folder mkdir could not make, so its parent is the one not writable
            parent = Path(exc.filename).parent if exc.filename else self.folder.parent
            raise FolderNotWritableError(
                f"{parent} is not writable (read-only, or another user's), so {self.folder} cannot be made in it; choose a "
                "folder you can write (--out)") from None
        key = self.path.resolve()
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _HELD[key] = [self._take(), 1]
        self.held = True
        return self

    def release(self) -> None:
        """Give the lock back (the lock file is removed when this process's last holder releases)."""
        if not self.held:
            return
        self.held = False
        key = self.path.resolve()
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[key]
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still locked: a waiter that opened the old file notices it is gone
        if entry[0] is not None:
            with contextlib.suppress(OSError):
                os.close(entry[0])

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------ mechanisms
    def _refuse(self, info: dict[str, Any], remote: bool = False) -> RunLockedError:
        fix = "wait for it to finish or choose another --out"
        if remote:
            fix += f"; if that process is gone, delete {self.path}"
        return RunLockedError(f"{self.folder} is in use by {describe(info)}; {fix}", info)

    def _moved(self, info: dict[str, Any], moved_to: Path | None = None) -> RunLockedError:
        """The folder was renamed or removed (by the holder ``info``, when known) while this process took its lock."""
        by = f" by {describe(info)}" if info else ""
        where = f"It is now {moved_to}: give that folder" if moved_to is not None else "If it was renamed, give its new name"
        return RunLockedError(f"{self.folder} was moved or removed{by} while this process was taking its lock; nothing was "
                              f"written. {where} (--out) to continue its run, or run again to start a new one under this name")

    def _take(self) -> int | None:
        """Lock the file; the open descriptor (``flock`` mode) or None (exclusive-create mode)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._take_exclusive()
            return None
        for _ in range(100):
            try:
                fd, made = _open_or_make(self.path)
            except FileNotFoundError:  # the folder itself is gone since acquire made it
                raise self._moved({}) from None
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise not_writable(self.folder, self.purpose, self.path if self.path.exists() else None) from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_record(fd)
                os.close(fd)
                raise self._refuse(info) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in _UNSUPPORTED:
                    if made:  # the empty file this open made would read as an unreadable holder: exclusive mode makes its own
                        with contextlib.suppress(OSError):
                            self.path.unlink()
                    self._take_exclusive()
                    return None
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the holder released (and removed) it between our open and our lock: retry
                if not self.folder.is_dir():  # ... and moved or removed the folder (a sweep renaming a former run folder)
                    info, moved_to = _read_record(fd), _now_at(fd)
                    os.close(fd)
                    raise self._moved(info, moved_to)
                os.close(fd)
                continue
            previous = _read_record(fd)
            if previous:
                try:
                    warn(f"{self.folder}: taking over the stale lock of {describe(previous)}, which ended without releasing it")
                except BaseException:  # the warning raised as an error (python -W error): the lock is not taken, nor kept
                    os.close(fd)
                    raise
            self._write(fd)
            return fd
        raise RunLockedError(f"{self.folder}: could not take the lock {self.path} (it keeps being replaced); retry")

    def _take_exclusive(self) -> None:
        """Exclusive-create lock file, for file systems without ``flock``; stale holders on this host are replaced."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # the folder itself is gone since acquire made it
                raise self._moved({}) from None
            except PermissionError:
                raise not_writable(self.folder, self.purpose) from None
            except FileExistsError:
                found = probe_holder(self.folder)
                if found is None:  # released since the open: try again
                    continue
                info, held = found
                if not held:
                    warn(f"{self.folder}: removing the stale lock of {describe(info)}, which is no longer running")
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    continue
                raise self._refuse(info, remote=info.get("host") != socket.gethostname()) from None
            self._write(fd)
            os.close(fd)
            return None
        raise RunLockedError(f"{self.folder}: could not take the lock {self.path}; retry")

    def _write(self, fd: int) -> None:
        data = json.dumps(_identity(self.purpose)).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)


def _open_or_make(path: Path) -> tuple[int, bool]:
    """``path`` open for reading and writing, made when missing; and whether this call made it. A file removed between
    the two opens (its holder released it) is made again, as one ``O_CREAT`` open did, not taken for a folder moved or
    removed; ``FileNotFoundError`` only when the folder is gone."""
    for _ in range(100):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            pass
        with contextlib.suppress(FileNotFoundError):
            return os.open(path, os.O_RDWR), False
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644), False  # made and removed 100 times over: the one open of before


def _read_record(fd: int) -> dict[str, Any]:
    """The holder recorded in the lock file open as ``fd`` (``{}``: empty, garbage, or not a file to read)."""
    try:
        return _parse(os.pread(fd, 4096, 0).decode(errors="replace"))
    except OSError:  # a .distgen.lock that is a folder
        return {}


def probe_holder(folder: str | Path) -> tuple[dict[str, Any], bool] | None:
    """What ``folder``'s lock file records (``{}`` empty, garbage or unreadable) and whether a live process holds it, or
    None without a lock file. The one liveness rule of ``RunLock`` and ``distgen sweep`` (``live_holder``): ``flock``
    answers where the file system has it (a killed holder's lock is free, whichever host the file names); without it,
    ``is_stale``'s rule: held unless the file names a process of this host that is gone (another host's holder, or an
    unreadable record, cannot be judged from here and counts as held). Never creates, writes or takes over the file."""
    path = Path(folder) / LOCK_NAME
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return _recorded_holder(path)
    try:
        fd = os.open(path, os.O_RDONLY)  # never O_CREAT: a lock released since stays released
    except (FileNotFoundError, NotADirectoryError):  # no lock file, or the run's path is a file: nothing holds it
        return None
    except OSError:  # unreadable (another user's): judged by its record, which then says nothing
        return _recorded_holder(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # shares nothing with a taker: closed (and dropped) below
        except BlockingIOError:
            return _read_record(fd), True
        except OSError:  # no flock on this file system
            return _recorded_holder(path)
        return _read_record(fd), False
    finally:
        os.close(fd)


def _recorded_holder(path: Path) -> tuple[dict[str, Any], bool] | None:
    """``probe_holder`` without ``flock``: the lock file's record, held unless ``is_stale``; None without the file."""
    try:
        info = _parse(path.read_text(encoding="utf-8", errors="replace"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # unreadable: nothing says its holder is gone
        return {}, True
    return info, not is_stale(info)


def live_holder(folder: str | Path) -> dict[str, Any] | None:
    """Who holds ``folder``'s lock now (its record, ``{}`` unreadable), or None: no lock file, or one no live process holds
    (``probe_holder``'s rule, which ``RunLock`` takes over)."""
    found = probe_holder(folder)
    return found[0] if found is not None and found[1] else None


def _now_at(fd: int) -> Path | None:
    """Where the folder of the lock file open as ``fd`` is now (Linux ``/proc``), when the file was moved, not removed."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    folder = Path(target.removesuffix(" (deleted)")).parent
    return folder if folder.is_dir() else None


@contextlib.contextmanager
def run_lock(folder: str | Path, purpose: str = "train") -> Iterator[RunLock]:
    """``with run_lock(out, "sweep"):`` hold the lock of ``out`` for the block."""
    lock = RunLock(folder, purpose).acquire()
    try:
        yield lock
    finally:
        lock.release()
