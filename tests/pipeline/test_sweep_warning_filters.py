"""A sweep's runs keep the warning filters the sweep was started with.

``python -W error -m distgen sweep`` started each run as ``python -m distgen run ...``: the ``-W`` options of the sweep's
interpreter were not passed on, so its runs printed the warnings the user had asked to be errors (``PYTHONWARNINGS``, an
environment variable, reached them already)."""

import sys

import pytest

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
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-W", "error", "-Wdefault::FutureWarning", "-m", "distgen", "sweep"])
    monkeypatch.setattr(sys, "warnoptions", ["error", "default::FutureWarning"])
    assert S.subprocess_runner("cfg.yaml", Run("base", 0, ("train.seed=0",)), tmp_path / "r") == S.INTERRUPTED
    cmd = stop.cmds[0]
    assert cmd[:5] == [sys.executable, "-Werror", "-Wdefault::FutureWarning", "-m", "distgen"], cmd
    assert (tmp_path / "r" / "log.txt").read_text().startswith("$ " + " ".join(cmd) + "\n")


def test_a_run_of_a_sweep_without_warning_options_gets_none(tmp_path, monkeypatch):
    stop = _NotStarted()
    monkeypatch.setattr(S, "_STOP", stop)
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "distgen", "sweep"])
    S.subprocess_runner("cfg.yaml", Run("base", 0, ()), tmp_path / "r")
    assert stop.cmds[0][:4] == [sys.executable, "-m", "distgen", "run"]


def _interpreter(args, env):
    """``sys.warnoptions``, the flags, ``PYTHONWARNINGS`` and ``sys.orig_argv`` of a bare interpreter started with ``args``
    and ``env``."""
    import json
    import os
    import subprocess

    code = ("import json, os, sys; print(json.dumps([sys.warnoptions, sys.flags.dev_mode, sys.flags.bytes_warning, "
            "sys.flags.ignore_environment, os.environ.get('PYTHONWARNINGS'), sys.orig_argv]))")
    out = subprocess.run([sys.executable, *args, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def _run_command(tmp_path, monkeypatch, args, env):
    """The command a sweep whose interpreter was started as ``python ARGS`` with ``env`` starts a run with (that
    interpreter's real ``sys.warnoptions``, flags and ``sys.orig_argv``)."""
    import types

    options, dev, bytes_warning, ignore_env, environ, argv = _interpreter(args, env)
    stop = _NotStarted()
    monkeypatch.setattr(S, "_STOP", stop)
    monkeypatch.setattr(sys, "warnoptions", options)
    monkeypatch.setattr(sys, "orig_argv", argv)
    monkeypatch.setattr(sys, "flags", types.SimpleNamespace(dev_mode=dev, bytes_warning=bytes_warning,
                                                            ignore_environment=ignore_env))
    if environ is None:
        monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    else:
        monkeypatch.setenv("PYTHONWARNINGS", environ)
    S.subprocess_runner("cfg.yaml", Run("base", 0, ()), tmp_path / "r")
    return options, stop.cmds[0]


def test_a_run_gets_only_the_sweeps_own_w_options_not_pythonwarnings_or_x_dev_or_b_twice(tmp_path, monkeypatch):
    """``sys.warnoptions`` holds more than the ``-W`` options: ``PYTHONWARNINGS``' entries (which each run inherits with
    the environment: passed again they were in every run's command twice), ``-X dev``'s ``default`` and ``-b``'s
    BytesWarning filter (which then showed in each run's command as ``-W`` options nobody gave). A run gets the sweep's
    ``-W`` options alone, in order, those with spaces and colons whole. The layout is a real interpreter's."""
    options, cmd = _run_command(tmp_path, monkeypatch,
                                ["-X", "dev", "-b", "-W", "error", "-W", "ignore:a b: c:UserWarning", "-Wonce::DeprecationWarning"],
                                {"PYTHONWARNINGS": "ignore::ImportWarning,,default::FutureWarning"})
    assert options[0] == "default" and options[-1] == "default::BytesWarning", options  # the layout this test relies on
    assert cmd[:6] == [sys.executable, "-Werror", "-Wignore:a b: c:UserWarning", "-Wonce::DeprecationWarning", "-m",
                       "distgen"], cmd


def test_a_run_of_a_sweep_with_only_pythonwarnings_starts_as_before(tmp_path, monkeypatch):
    """``PYTHONWARNINGS=error`` alone: the runs inherit it; their command is the one of a sweep without warning options."""
    _, cmd = _run_command(tmp_path, monkeypatch, [], {"PYTHONWARNINGS": "error,default::FutureWarning"})
    assert cmd[:4] == [sys.executable, "-m", "distgen", "run"], cmd


@pytest.mark.parametrize("args,env,given", [
    (["-X", "dev", "-W", "default"], {}, ["default"]),
    (["-b", "-W", "default::BytesWarning"], {}, ["default::BytesWarning"]),
    (["-bb", "-Werror::BytesWarning"], {}, ["error::BytesWarning"]),
    (["-W", "error"], {"PYTHONWARNINGS": "error"}, ["error"]),
    (["-W", "error", "-W", "ignore::FutureWarning", "-W", "error"], {}, ["error", "ignore::FutureWarning", "error"]),
], ids=["x-dev-and-w-default", "b-and-w-default-bytes", "bb-and-w-error-bytes", "pythonwarnings-and-w-the-same",
        "w-repeated"])
def test_a_run_gets_the_sweeps_w_options_even_where_they_equal_the_interpreters_own_filters(tmp_path, monkeypatch, args,
                                                                                             env, given):
    """The options were found by taking ``-X dev``'s and ``PYTHONWARNINGS``' entries off the front of ``sys.warnoptions``
    and ``-b``'s off its end (CPython's layout, not documented). CPython also drops an entry already there, so the
    user's own ``-W default`` under ``-X dev``, ``-W default::BytesWarning`` under ``-b``, ``-W error`` under
    ``PYTHONWARNINGS=error`` were taken for the interpreter's: the runs got none. The ``-W`` options are read from the
    command line (``sys.orig_argv``), as given, in order."""
    _, cmd = _run_command(tmp_path, monkeypatch, args, env)
    assert cmd[1 : 1 + len(given)] == [f"-W{option}" for option in given], cmd
    assert cmd[1 + len(given) : 3 + len(given)] == ["-m", "distgen"], cmd


@pytest.mark.parametrize("argv,given", [
    (["-bWerror", "-m", "distgen", "sweep"], ["error"]),
    (["-EsW", "ignore::UserWarning", "-m", "distgen"], ["ignore::UserWarning"]),
    (["-X", "W", "-Werror", "script.py", "-W", "ignore"], ["error"]),
    (["--check-hash-based-pycs", "always", "-W", "once", "-c", "code", "-W", "ignore"], ["once"]),
    (["-W", "error", "--", "-W", "ignore"], ["error"]),
    (["-W", "error", "-", "-W", "ignore"], ["error"]),
    (["-mdistgen", "-W", "error"], []),
    (["-W"], []),
    ([], []),
], ids=["grouped", "grouped-value-next", "x-value-w", "long-option-value", "double-dash", "stdin", "m-joined",
        "w-without-value", "none"])
def test_the_w_options_are_read_by_the_interpreters_option_grammar(monkeypatch, argv, given):
    """Grouped flags (``-bWerror``), a value joined or in the next argument, ``-X``'s and ``--check-hash-based-pycs``'
    values skipped, and the options end where the interpreter's do: ``-c``/``-m``, ``-``, ``--``, the script."""
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, *argv])
    monkeypatch.setattr(sys, "warnoptions", ["error", "ignore::UserWarning", "once", "ignore"])  # every value given, taken or not
    assert S.own_warning_options() == given


def test_an_embedding_programs_own_arguments_are_not_taken_for_w_options(monkeypatch):
    """A program embedding Python may have its own command line copied into ``sys.orig_argv`` without the interpreter
    reading it as options (``PyConfig.parse_argv = 0``): a host's ``-W error`` (its own option) was passed to every run
    as a warning filter. An option counts where the interpreter took it (``sys.warnoptions`` holds every ``-W``
    option)."""
    monkeypatch.setattr(sys, "orig_argv", ["/opt/host/bin/host", "-W", "error", "--render"])
    monkeypatch.setattr(sys, "warnoptions", [])
    assert S.own_warning_options() == []
    monkeypatch.setattr(sys, "warnoptions", ["error"])  # the same command line, read by the interpreter
    assert S.own_warning_options() == ["error"]
