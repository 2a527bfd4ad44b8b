"""A sweep's runs keep the warning filters the sweep was started with.

``python -W error -m distgen sweep`` started each run as ``python -m distgen run ...``: the ``-W`` options of the sweep's
interpreter were not passed on, so its runs printed the warnings the user had asked to be errors (``PYTHONWARNINGS``, an
environment variable, reached them already)."""

import sys

from distgen.pipeline import sweep as S
from distgen.pipeline.grid import Run


class _NotStarted:
    def __init__(self):
        self.cmds = []

    def popen(self, cmd, **kwargs):
        self.cmds.append(cmd)
        return None  # as for a sweep asked to stop: nothing is started


def test_a_run_is_started_with_the_sweeps_warning_options(tmp_path, monkeypatch):
    stop = _NotStarted()
    monkeypatch.setattr(S, "_STOP", stop)
    monkeypatch.setattr(sys, "warnoptions", ["error", "default::FutureWarning"])
    assert S.subprocess_runner("cfg.yaml", Run("base", 0, ("train.seed=0",)), tmp_path / "r") == S.INTERRUPTED
    cmd = stop.cmds[0]
    assert cmd[:5] == [sys.executable, "-Werror", "-Wdefault::FutureWarning", "-m", "distgen"], cmd
    assert (tmp_path / "r" / "log.txt").read_text().startswith("$ " + " ".join(cmd) + "\n")


def test_a_run_of_a_sweep_without_warning_options_gets_none(tmp_path, monkeypatch):
    stop = _NotStarted()
    monkeypatch.setattr(S, "_STOP", stop)
    monkeypatch.setattr(sys, "warnoptions", [])
    S.subprocess_runner("cfg.yaml", Run("base", 0, ()), tmp_path / "r")
    assert stop.cmds[0][:4] == [sys.executable, "-m", "distgen", "run"]
