"""Stopping a sweep: Ctrl-C (SIGINT to the process group) or ``kill`` (SIGTERM to the sweep alone).

Before, the sweep's run kept going after a ``kill`` of the sweep (an orphan still writing and holding its
folder's lock), and Ctrl-C stopped the run in progress only for the sweep to retry it at once and then start
the next run. Now the sweep passes the signal on, starts and retries nothing more, waits for the run to stop
at a checkpoint and exits 130/143 naming the command that resumes; running it again finishes the sweep,
each training step logged once.
"""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from distgen.train.lock import read_holder

CONFIG = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
              "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
              "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
    "data": {"dataset": "norman_k562", "hvg": 64, "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8},
    "train": {"steps": 400, "sets_per_batch": 2, "checkpoint_every": 20, "log_every": 20, "progress": False},
    "evaluate": {"plots": False, "baselines": ["control"], "ceiling": False},
    "predict": {"max_cells_per_condition": 20},
}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _sweep(cfg, out):
    cmd = [sys.executable, "-m", "distgen", "sweep", str(cfg), "--grid", "model.backbone.hidden=[16,32]", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _interrupted_sweep(tmp_path, how):
    """A sweep stopped (``how``) once its first run wrote a checkpoint; checks how it stopped; returns (config, sweep, run)."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "sweep"
    first, second = out / "runs" / "hidden=16__seed0", out / "runs" / "hidden=32__seed0"
    proc = _sweep(cfg, out)
    deadline = time.monotonic() + 240
    while not (first / "train" / "checkpoints" / "latest").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    child = read_holder(first)["pid"]
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the sweep and its run
    else:
        os.kill(proc.pid, signal.SIGTERM)  # only the sweep
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), err
    assert "resume: distgen sweep" in err and "interrupted" in err
    assert not _alive(child)  # the run stopped with the sweep, not left running on its own
    assert not (first / "DONE").exists() and not (second / "train").exists()  # not retried, the next not started
    with (first / "train" / "metrics.csv").open() as fh:
        logged = [int(r["step"]) for r in csv.DictReader(fh)]
    final = int((first / "train" / "checkpoints" / "latest").read_text().strip().removeprefix("step_"))
    assert final < 400 and logged[-1] <= final  # it stopped at a checkpoint, before the end
    return cfg, out, first


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_a_stopped_sweep_stops_its_run_at_a_checkpoint(tmp_path, how):
    _interrupted_sweep(tmp_path, how)


@pytest.mark.slow
def test_running_a_stopped_sweep_again_finishes_it(tmp_path):
    cfg, out, first = _interrupted_sweep(tmp_path, "ctrl-c")
    again = _sweep(cfg, out)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    with (first / "train" / "metrics.csv").open() as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == list(range(20, 401, 20))  # each logged step once: resumed, not restarted
    with (out / "results.csv").open() as fh:
        assert {r["variant"] for r in csv.DictReader(fh)} == {"hidden=16", "hidden=32"}
