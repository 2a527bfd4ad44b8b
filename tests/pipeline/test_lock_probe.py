"""One liveness rule for a run folder's lock. ``RunLock`` (taking it) and ``distgen sweep`` (``live_holder``,
probing a run's folder before starting it) had each their own: without ``flock`` a holder recorded on another host was
alive for ``RunLock`` (``is_stale``) and gone for the sweep, and an unreadable lock file made both raise a bare
``PermissionError``. Each case below is asked of both, under ``flock`` and without it."""

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distgen.pipeline.sweep import live_holder
from distgen.train.lock import LOCK_NAME, FolderNotWritableError, RunLock, RunLockedError

from .conftest import without_write_rights

HOLD = textwrap.dedent("""
    import sys
    from distgen.train.lock import RunLock
    lock = RunLock(sys.argv[1], "run").acquire()
    print("locked", flush=True)
    sys.stdin.read()
    lock.release()
""")


@pytest.fixture(params=["flock", "no flock"])
def mode(request, monkeypatch):
    if request.param == "no flock":
        def unsupported(fd, op):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fcntl, "flock", unsupported)
    return request.param


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write(folder: Path, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / LOCK_NAME).write_text(text)


def test_no_lock_file_is_free_and_the_probe_creates_none(tmp_path, mode):
    run = tmp_path / "run"
    run.mkdir()
    assert live_holder(run) is None
    assert not (run / LOCK_NAME).exists()
    with RunLock(run):
        pass
    assert not (run / LOCK_NAME).exists()


def test_a_live_local_holder_is_held_for_both(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert live_holder(run)["pid"] == proc.pid
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            RunLock(run).acquire()
    finally:
        proc.communicate("")
    assert live_holder(run) is None


def test_a_live_local_holder_without_flock_is_held_for_both(tmp_path, mode):
    run = tmp_path / "run"
    _write(run, json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "purpose": "run"}))  # alive, not flocked
    if mode == "flock":  # the file alone holds nothing where flock answers: its holder would hold the flock
        assert live_holder(run) is None
        return
    assert live_holder(run)["pid"] == os.getppid()
    with pytest.raises(RunLockedError, match=f"pid {os.getppid()}"):
        RunLock(run).acquire()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getppid()  # untouched


@pytest.mark.parametrize("record", ["dead", "garbage", "remote"])
def test_a_lock_file_no_live_process_holds(tmp_path, mode, record):
    """A dead local pid's lock is free for both in both modes. A garbage record or another host's holder: free where flock
    answers (nobody holds the flock); without flock nothing says that holder is gone (``is_stale``): held for both (the
    sweep used to call another host's holder gone and start a run ``RunLock`` then refused)."""
    run = tmp_path / "run"
    text = {"dead": json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "purpose": "run"}),
            "garbage": "\x00not json{",
            "remote": json.dumps({"pid": 1, "host": "other-node", "purpose": "run"})}[record]
    _write(run, text)
    if mode == "flock" or record == "dead":
        assert live_holder(run) is None
        assert (run / LOCK_NAME).read_text() == text  # a probe never takes over or writes
        lock = RunLock(run).acquire()
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
        lock.release()
        return
    held = live_holder(run)
    assert held == ({} if record == "garbage" else json.loads(text))
    with pytest.raises(RunLockedError, match="other-node" if record == "remote" else "empty or unreadable"):
        RunLock(run).acquire()
    assert (run / LOCK_NAME).read_text() == text


@pytest.fixture
def unreadable(monkeypatch):
    """The lock file cannot be opened or read (another user's, mode 600): root reads everything, so refused by hand."""
    real_open, real_read = os.open, Path.read_text

    def no_open(path, flags, *a, **k):
        if Path(path).name == LOCK_NAME:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    def no_read(self, *a, **k):
        if self.name == LOCK_NAME:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self, *a, **k)

    monkeypatch.setattr(os, "open", no_open)
    monkeypatch.setattr(Path, "read_text", no_read)


def test_an_unreadable_lock_file_is_held_for_the_sweep_and_refused_with_a_message(tmp_path, mode, unreadable):
    """In the sweep's probe an unreadable lock file raised a bare PermissionError from
    ``read_holder``; nothing says its holder is gone, so it is held (``{}``: described as unreadable). ``RunLock`` refused
    it as not writable in both modes before too (review: its open for writing fails first; only the probe crashed)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_bytes(b"{}")
    assert live_holder(run) == {}
    with pytest.raises((RunLockedError, FolderNotWritableError), match="lock file"):
        RunLock(run).acquire()


PROBE = textwrap.dedent("""
    import sys
    from distgen.pipeline.sweep import live_holder
    from distgen.train.lock import RunLock, FolderNotWritableError
    from pathlib import Path
    print(live_holder(Path(sys.argv[1])))
    try:
        RunLock(sys.argv[1], "run").acquire()
    except FolderNotWritableError as e:
        print("refused:", e)
""")


@pytest.mark.parametrize("record", [None, "dead"])
def test_in_a_read_only_folder_the_probe_answers_and_runlock_says_not_writable(tmp_path, record):
    run = tmp_path / "run"
    run.mkdir()
    if record:
        _write(run, json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "purpose": "run"}))
        (run / LOCK_NAME).chmod(0o444)  # a read-only copy: its files read-only too
    run.chmod(0o555)
    try:
        out = subprocess.run([*without_write_rights(), sys.executable, "-c", PROBE, str(run)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    finally:
        run.chmod(0o755)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first == "None"
    assert second.startswith("refused:") and ("not writable" in second or "cannot be written" in second)
    assert (run / LOCK_NAME).exists() == bool(record)


def test_a_lock_file_removed_between_the_two_opens_is_made_again(tmp_path, monkeypatch):
    """``RunLock`` now opens its lock file in two steps (make it exclusively,
    else open the one there, to know whether it made it); a holder that released its lock (removing the file) between the
    two made the second open fail, read as "the folder was moved or removed" and the run refused. The one open of before
    (``O_CREAT``) made the file again; so does a retry now."""
    run = tmp_path / "run"
    _write(run, "")  # the file of a holder that is releasing it
    real_open = os.open
    released = []

    def release_now(path, flags, *a, **k):  # the holder removes its file at this very moment (before or after this open)
        if Path(path).name != LOCK_NAME or released:
            return real_open(path, flags, *a, **k)
        released.append(flags)
        if flags & os.O_EXCL:
            try:
                return real_open(path, flags, *a, **k)
            finally:
                os.unlink(path)
        os.unlink(path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", release_now)
    with RunLock(run, "run"):
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert released and not (run / LOCK_NAME).exists()


def test_a_run_path_that_is_a_file_or_a_lock_path_that_is_a_folder_holds_nothing(tmp_path, mode):
    """The sweep probe answered None (no holder) for a ``runs/SLUG`` that is a file (the run then
    fails with its own error) and for a ``.distgen.lock`` that is a folder; the shared probe called the first held by "another
    process (its lock file is empty or unreadable)", which is untrue, and crashed on the second (``IsADirectoryError`` from
    reading the folder's record)."""
    (tmp_path / "afile").write_text("not a run folder")
    assert live_holder(tmp_path / "afile") is None
    if mode == "flock":  # without flock a folder's record cannot be read: held, as for RunLock (an unreadable record)
        (tmp_path / "run" / LOCK_NAME).mkdir(parents=True)
        assert live_holder(tmp_path / "run") is None
