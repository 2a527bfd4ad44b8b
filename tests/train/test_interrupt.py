"""Issue 17 (runs): SIGINT/SIGTERM stop training at the next step boundary with a final checkpoint and a
message saying how to resume; resuming gives exactly the uninterrupted result. A step too long to
wait for (or a second signal) stops at once, naming the last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from distgen.errors import EXIT_SIGINT, EXIT_SIGTERM, Interrupted
from distgen.train import fit, load_checkpoint
from distgen.train.interrupt import SAME_REQUEST_S, StopOnSignal

from .conftest import MODEL, same_params

RUN = {"steps": 12, "sets_per_batch": 4, "progress": False, "checkpoint_every": 5, "lr": 3e-3}


@pytest.fixture(autouse=True)
def python_default_ctrl_c():
    """Each test starts from Python's own Ctrl-C handler, as a terminal gives it. A process started in the background by
    a non-interactive shell (``cmd &``, as CI runners and nohup do) inherits SIGINT ignored, and Python then installs no
    handler: the tests that check the handler is given back, or that Ctrl-C interrupts, would test that inheritance."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def send_at(step, sig):
    def cb(trainer, s):
        if s == step:
            os.kill(os.getpid(), sig)

    return cb


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_final_checkpoint_and_resume_is_exact(sig, table, make_model, tmp_path):
    straight = make_model()
    fit(straight, table, set_size=4, run_dir=tmp_path / "a", **RUN)
    stopped = make_model()
    with pytest.raises(Interrupted) as info:
        fit(stopped, table, set_size=4, run_dir=tmp_path / "b", callbacks=[send_at(7, sig)], **RUN)
    exc = info.value
    assert exc.step == 7 and exc.checkpoint.name == "step_00000007" and exc.signal_name == sig.name
    assert exc.exit_code == (EXIT_SIGTERM if sig == signal.SIGTERM else EXIT_SIGINT)
    assert load_checkpoint(tmp_path / "b").step == 7
    assert signal.getsignal(sig) is not None and not isinstance(signal.getsignal(sig), type(StopOnSignal()._handle))
    resumed = make_model(seed=99)
    res = fit(resumed, table, set_size=4, run_dir=tmp_path / "b", resume=tmp_path / "b", **RUN)
    assert len(res.losses) == 5 and same_params(straight, resumed)


def test_signal_on_a_checkpoint_step_does_not_write_twice(table, make_model, tmp_path):
    with pytest.raises(Interrupted) as info:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, callbacks=[send_at(5, signal.SIGTERM)], **RUN)
    assert info.value.checkpoint.name == "step_00000005"


def test_slow_step_or_second_signal_stops_at_once():
    with StopOnSignal(grace_s=10) as stop:
        stop.step_done(30.0, 4, "runs/a/checkpoints/step_00000004")  # a step takes longer than the grace period
        with pytest.raises(Interrupted, match="without a final checkpoint; the last checkpoint is runs/a/checkpoints/step_00000004"):
            os.kill(os.getpid(), signal.SIGTERM)
    with StopOnSignal(grace_s=10) as stop:
        stop.step_done(0.1, 2, None)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal == "SIGINT"
        time.sleep(SAME_REQUEST_S + 0.1)
        with pytest.raises(Interrupted, match="a second signal"):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_one_request_delivered_twice_is_one_request():
    """Ctrl-C reaches every process of the terminal's group and distgen sweep passes it on to its runs: the run gets
    the same request twice within a moment, and still finishes its step and writes the final checkpoint."""
    with StopOnSignal(grace_s=10) as stop:
        stop.step_done(0.1, 2, None)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # no Interrupted: not a second request
        assert stop.requested and stop.signal == "SIGINT"


def test_in_memory_training_keeps_the_default_ctrl_c(table, make_model):
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), table, set_size=4, callbacks=[send_at(2, signal.SIGINT)], **RUN)


def test_cli_sigint_exits_130_with_the_resume_command(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps({"model": MODEL, "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4,
                                                          "split": {"kind": "combo_seen2", "seed": 0}},
                               "train": {"steps": 100000, "sets_per_batch": 2, "progress": False, "log_every": 1,
                                         "checkpoint_every": 100000}}))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "distgen", "train", str(cfg), "--out", str(out)], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) > 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_SIGINT, err
    assert "interrupted by SIGINT at step" in err and "Traceback" not in err
    assert f"resume: distgen train {cfg} --out {out} --resume" in err
    step = load_checkpoint(out).step
    assert step >= 3


@pytest.mark.parametrize("rank", ["0", "1", "3"])
def test_interrupted_message_comes_from_rank_0_only(rank, monkeypatch, capsys):
    # under torchrun every rank raises Interrupted at the same step; each printed "interrupted by SIGTERM ..." and the
    # resume line, so a 4-rank run said it four times. Rank 0 says it; the others exit with the same code, quietly.
    from distgen.cli import report

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", rank)
    exc = Interrupted("interrupted by SIGTERM at step 7 of 12; final checkpoint: run/checkpoints/step_00000007",
                      "SIGTERM", 7, "run/checkpoints/step_00000007", "run")
    assert report(exc, "train", ["train", "cfg.yaml", "--out", "run"]) == EXIT_SIGTERM
    err = capsys.readouterr().err
    if rank == "0":
        assert err.count("interrupted by SIGTERM at step 7") == 1 and "resume: distgen train cfg.yaml --out run --resume" in err
    else:
        assert err == ""
    # another error is still said by every rank (each may have its own)
    assert report(ValueError("boom"), "train", []) == 1 and "boom" in capsys.readouterr().err
