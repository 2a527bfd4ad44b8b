"""Issue 17 item 3 for the commands above train: ``distgen run``, ``distgen sweep`` and ``distgen predict``
into a run folder take the folder's lock. A second process is refused with one line naming the
holder, before it writes anything; the lock of a killed process is stale and taken over."""

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.pipeline.sweep import sweep
from distgen.train.lock import LOCK_NAME, RunLockedError

# The lock protocol of distgen.train.lock (flock on .distgen.lock holding the holder's identity), in a
# process that does not import distgen (and torch): quick to start. tests/train/test_lock.py uses RunLock itself.
HOLD = textwrap.dedent("""
    import fcntl, json, os, socket, sys
    os.makedirs(sys.argv[1], exist_ok=True)
    fd = os.open(os.path.join(sys.argv[1], ".distgen.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "now", "purpose": sys.argv[2]}).encode())
    print("locked", flush=True)
    sys.stdin.read()
""")
DATA = {"dataset": "norman_k562", "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4}
FITTED = {"model": {"name": "control"}, "data": DATA, "evaluate": {"plots": False, "baselines": ["control"]}}
TRAINED = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                     "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                     "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
           "data": DATA, "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}


@pytest.fixture
def hold(tmp_path):
    """``hold(folder, purpose)``: another process holding the lock of ``folder``; returns the process."""
    procs = []

    def start(folder, purpose="train"):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), purpose], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _one_line_naming(err, proc, purpose):
    lines = err.strip().splitlines()
    return len(lines) == 1 and f"distgen {purpose} (pid {proc.pid} on " in lines[0] and "Traceback" not in err


def test_run_into_a_locked_folder_is_refused_before_writing(tmp_path, hold, capsys):
    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    proc = hold(tmp_path / "exp", "sweep")
    assert main(["run", str(cfg), "--out", str(tmp_path / "exp"), "--metrics", "mse", "--no-progress"]) == 1
    assert _one_line_naming(capsys.readouterr().err, proc, "sweep")
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [LOCK_NAME]  # nothing written


def test_sweep_into_a_locked_folder_is_refused_before_any_run(tmp_path, hold, capsys):
    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    proc = hold(tmp_path / "sw", "sweep")
    calls = []
    with pytest.raises(RunLockedError, match=f"in use by distgen sweep \\(pid {proc.pid}"):
        sweep(str(cfg), {"train.seed": [0, 1]}, tmp_path / "sw", runner=lambda *a: calls.append(a) or 0, progress=False)
    assert calls == [] and not (tmp_path / "sw" / "sweep.yaml").exists()
    assert main(["sweep", str(cfg), "--grid", "train.seed=[0,1]", "--out", str(tmp_path / "sw")]) == 1
    assert _one_line_naming(capsys.readouterr().err, proc, "sweep")


def test_predict_into_a_run_being_trained_is_refused_and_elsewhere_allowed(tmp_path, hold, capsys):
    cfg = save_yaml(TRAINED, tmp_path / "t.yaml")
    run_dir = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run_dir)]) == 0
    proc = hold(run_dir, "train")  # e.g. a resumed training
    capsys.readouterr()
    assert main(["predict", str(run_dir), "--out", str(run_dir / "pred.h5ad")]) == 1
    assert _one_line_naming(capsys.readouterr().err, proc, "train")
    assert not (run_dir / "pred.h5ad").exists()
    assert main(["predict", str(run_dir), "--out", str(tmp_path / "pred.h5ad"), "--real", str(run_dir / "real.h5ad")]) == 1
    capsys.readouterr()
    # reading a run is safe (checkpoints are written atomically): predicting elsewhere is allowed
    assert main(["predict", str(run_dir), "--out", str(tmp_path / "pred.h5ad")]) == 0
    proc.stdin.close()  # the holder ends (its lock file stays: taken over as stale)
    proc.wait()
    with pytest.warns(UserWarning, match="stale lock"):
        assert main(["predict", str(run_dir), "--out", str(run_dir / "pred.h5ad")]) == 0
    assert (run_dir / "pred.h5ad").exists() and not (run_dir / LOCK_NAME).exists()


def test_the_lock_of_a_killed_run_is_stale_and_taken_over(tmp_path, hold, capsys):
    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    proc = hold(tmp_path / "exp", "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / "exp" / LOCK_NAME).read_text())["pid"] == proc.pid  # left behind
    with pytest.warns(UserWarning, match=f"stale lock of distgen run \\(pid {proc.pid}"):
        assert main(["run", str(cfg), "--out", str(tmp_path / "exp"), "--metrics", "mse", "--no-progress"]) == 0
    assert (tmp_path / "exp" / "DONE").exists() and not (tmp_path / "exp" / LOCK_NAME).exists()


def _lock_refused_as_not_writable(monkeypatch):
    """The lock of any folder refused as ``distgen.train.lock`` refuses one it cannot write (root writes into read-only
    folders, so the refusal is made here; ``test_read_only_runs.py`` makes it for real, in slow tests)."""
    from distgen.train.lock import RunLock, not_writable

    def refused(self):
        raise not_writable(self.folder, self.purpose, self.path if self.path.exists() else None)

    monkeypatch.setattr(RunLock, "_take", refused)


def test_a_run_refused_at_the_lock_as_not_writable_leaves_no_folder_it_made(tmp_path, monkeypatch, capsys):
    """The read-without-lock path of a finished experiment re-raised the
    refusal past the clean-up, so a --out the run had made was left behind, empty (made under ``umask 0222``, then refused
    at its lock: 0c06e41 removed it, as ``run``'s docstring promises)."""
    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    _lock_refused_as_not_writable(monkeypatch)
    assert main(["run", str(cfg), "--out", str(tmp_path / "new" / "exp"), "--metrics", "mse", "--no-progress"]) == 1
    assert "is not writable" in capsys.readouterr().err
    assert not (tmp_path / "new" / "exp").exists()


def test_a_finished_run_whose_lock_file_is_another_users_is_read_saying_so(tmp_path, monkeypatch, capsys):
    """A finished experiment in a writable folder whose lock file is another
    user's (left by a process of theirs) is read without the lock; the note said "the folder is not writable", which it
    is: it named the lock file. A finished experiment is read before its lock is tried (``finished_or_none``,
    for every rank), so the note says nothing of the lock."""
    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    args = ["run", str(cfg), "--out", str(tmp_path / "exp"), "--metrics", "mse", "--no-progress"]
    assert main(args) == 0
    (tmp_path / "exp" / LOCK_NAME).write_text("{}")  # another user's: this process cannot open it for writing
    _lock_refused_as_not_writable(monkeypatch)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "already holds this finished experiment" in err
    assert "not writable" not in err and "cannot be written" not in err  # a finished experiment is read
    assert (tmp_path / "exp" / LOCK_NAME).read_text() == "{}"  # before the lock, which is not tried (nor rewritten)


def test_a_read_only_folder_holding_another_configs_experiment_says_so(tmp_path, monkeypatch, capsys):
    """A read-only folder holding another config's finished experiment was refused as not
    writable ("copy the folder to one you can write and run there"), advice that then meets the other-config refusal.
    ``experiment.yaml`` is never rewritten to another config, so that refusal is read without the lock too."""
    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "exp"), "--metrics", "mse", "--no-progress"]) == 0
    _lock_refused_as_not_writable(monkeypatch)
    capsys.readouterr()
    assert main(["run", str(cfg), "data.hvg=24", "--out", str(tmp_path / "exp"), "--metrics", "mse", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds an experiment of another config (data.hvg" in err and "not writable" not in err


def test_a_stale_lock_taken_over_under_warnings_as_errors_ends_in_a_clear_message(tmp_path, hold, capsys):
    # python -W error makes the stale lock's warning an error: the command stops there with that warning's message and
    # what made it an error (was "internal error: DistgenWarning ... this is a bug in distgen"), nothing written
    import warnings

    cfg = save_yaml(FITTED, tmp_path / "c.yaml")
    proc = hold(tmp_path / "exp", "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["run", str(cfg), "--out", str(tmp_path / "exp"), "--metrics", "mse", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"stale lock of distgen run (pid {proc.pid}" in err and "-W error" in err
    assert "internal error" not in err and "bug" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [LOCK_NAME]
