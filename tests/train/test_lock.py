"""Issue 17 item 3: one writer per run folder. A second process is refused with one line naming the
holder; a lock left by a killed process is stale and taken over; within a process the lock is re-entrant."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from distgen.train import fit
from distgen.train import lock as L
from distgen.train.lock import LOCK_NAME, RunLock, RunLockedError

HOLD = textwrap.dedent("""
    import sys
    from distgen.train.lock import RunLock
    lock = RunLock(sys.argv[1], "train").acquire()
    print("locked", flush=True)
    sys.stdin.read()          # hold until the parent closes stdin
    lock.release()
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of ``tmp_path / 'run'``."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_process_is_refused_naming_the_holder(holder):
    folder, proc = holder
    with pytest.raises(RunLockedError) as info:
        RunLock(folder).acquire()
    msg = str(info.value)
    assert f"pid {proc.pid} on {socket.gethostname()}" in msg and "distgen train" in msg and str(folder) in msg
    assert "\n" not in msg


def test_lock_is_free_again_after_a_clean_release(holder):
    folder, proc = holder
    proc.stdin.close()
    assert proc.stdout.readline().strip() == "released"
    proc.wait()
    assert not (folder / LOCK_NAME).exists()
    with RunLock(folder) as lock:
        assert lock.held and json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_NAME).exists()


def test_lock_of_a_killed_process_is_stale_and_taken_over(holder):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_NAME).exists()  # kill -9 left the file behind ...
    with pytest.warns(UserWarning, match=f"stale lock of distgen train \\(pid {proc.pid}"):
        lock = RunLock(folder).acquire()  # ... but not the lock
    lock.release()


@pytest.mark.parametrize("mode", ["flock", "exclusive"])
def test_a_stale_lock_warning_made_an_error_leaves_the_lock_as_it_was(tmp_path, monkeypatch, mode):
    # under python -W error the warning about taking over a stale lock raises: the lock file keeps its record and nothing
    # of this process holds it (the flock mode kept the descriptor it had locked, so the same process, warnings no
    # longer errors, was refused "in use" by the dead holder)
    import warnings

    from distgen.errors import DistgenWarning

    if mode == "exclusive":
        _no_flock(monkeypatch)
    stale = json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "purpose": "run"})
    (tmp_path / LOCK_NAME).write_text(stale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DistgenWarning, match="stale lock"):
            RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text() == stale
    with pytest.warns(UserWarning, match="stale lock"):
        lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_reentrant_within_a_process(tmp_path):
    outer = RunLock(tmp_path).acquire()
    inner = RunLock(tmp_path, "run").acquire()
    inner.release()
    assert (tmp_path / LOCK_NAME).exists()  # still held by the outer one
    outer.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_trainer_refuses_a_locked_run_folder_before_writing(holder, table, make_model):
    folder, _ = holder
    with pytest.raises(RunLockedError, match="is in use by distgen train"):
        fit(make_model(), table, set_size=4, run_dir=folder, steps=3, sets_per_batch=2, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]  # no metrics.csv, no checkpoints


def test_cli_train_into_a_locked_folder_is_one_line_exit_1(holder, tmp_path, capsys):
    from distgen.cli import main

    folder, proc = holder
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps({"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                                         "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                                         "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
                               "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4, "split": {"kind": "combo_seen2", "seed": 0}},
                               "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}))
    code = main(["train", str(cfg), "--out", str(folder)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and f"pid {proc.pid}" in err and len(err.splitlines()) == 1
    assert not (folder / "metrics.csv").exists()


# ---------------------------------------------------------------------------------------------- without flock
def _no_flock(monkeypatch):
    import errno
    import fcntl

    def unsupported(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)


@pytest.fixture
def no_flock(monkeypatch):
    _no_flock(monkeypatch)


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_exclusive_mode_takes_over_a_dead_local_holder(tmp_path, no_flock):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "purpose": "train"}))
    with pytest.warns(UserWarning, match="stale lock"):
        lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_exclusive_mode_refuses_a_live_or_remote_holder(tmp_path, no_flock, holder):
    _, proc = holder  # a live process on this host
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "purpose": "sweep"}))
    with pytest.raises(RunLockedError, match=f"distgen sweep \\(pid {proc.pid}"):
        RunLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "other-node", "purpose": "train"}))
    with pytest.raises(RunLockedError, match=f"on other-node.*delete {tmp_path / LOCK_NAME}"):
        RunLock(tmp_path).acquire()


def test_no_lock_left_held_by_this_process_after_tests():
    assert not L._HELD, L._HELD
