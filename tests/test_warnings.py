"""distgen's own warnings: shown at the caller's line from Python, as ``distgen COMMAND: warning: ...`` by the command.

Python's warning hooks (``showwarning``, ``formatwarning``) are global, so distgen never replaces them for a Python
session; ``errors.warn`` only chooses the frame a warning is attributed to, and the command (which owns its process)
formats distgen's categories for as long as it runs.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import distgen
from distgen import cli
from distgen.config import InertSettingWarning, save_yaml
from distgen.errors import DistgenRuntimeWarning, DistgenWarning, warn
from distgen.models.preflight import PreflightWarning

ADDITIVE = {"model": {"name": "additive"},
            "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 8}}


def test_distgen_warning_categories_are_one_family_and_still_user_or_runtime_warnings():
    assert issubclass(InertSettingWarning, DistgenWarning) and issubclass(PreflightWarning, DistgenWarning)
    assert issubclass(DistgenWarning, UserWarning)  # filters on UserWarning keep working
    assert issubclass(DistgenRuntimeWarning, DistgenWarning) and issubclass(DistgenRuntimeWarning, RuntimeWarning)


def test_a_warning_from_deep_inside_distgen_points_at_the_callers_line(tmp_path):
    """``distgen.run`` -> ``pipeline.experiment.run`` warns; with a fixed stacklevel Python showed ``distgen/api.py``
    and its line ``return _run(config, out, overrides, **kwargs)``, not the user's call."""
    config = save_yaml(ADDITIVE, tmp_path / "additive.yaml")
    (tmp_path / "taken").write_text("a file where the run folder would go: the run stops right after the warning")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OSError):
            distgen.run(config, tmp_path / "taken", ["train.steps=3"], metrics=["mse"], plots=False, progress=False)
    (w,) = [w for w in caught if issubclass(w.category, InertSettingWarning)]
    assert Path(w.filename) == Path(__file__) and "train.steps has no effect" in str(w.message)
    assert "distgen.run(config" in Path(w.filename).read_text().splitlines()[w.lineno - 1]


def test_warn_called_from_outside_distgen_points_at_that_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn("from a plugin")
        line = sys._getframe().f_lineno - 1
    assert [(Path(w.filename), w.lineno, w.category) for w in caught] == [(Path(__file__), line, DistgenWarning)]


def test_the_command_prints_distgen_warnings_as_its_own_lines_and_others_as_python_does(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cli.command_warnings("run"):
            warn("setting x has no effect", InertSettingWarning)
            warnings.warn("a library's own warning", FutureWarning, stacklevel=1)
        warn("after the command")  # the hook is restored
    assert capsys.readouterr().err == "distgen run: warning: setting x has no effect\n"
    assert [(w.category, str(w.message)) for w in caught] == [(FutureWarning, "a library's own warning"),
                                                               (DistgenWarning, "after the command")]
    assert warnings.showwarning is not None and "command_warnings" not in repr(warnings.showwarning)


def test_the_command_prints_a_repeated_warning_once(capsys):
    """Loading, assembly and the trainer each check a setting; a filter reset between them made one warning print thrice."""
    with cli.command_warnings("train"):
        for _ in range(3):
            with warnings.catch_warnings():  # resets the once-per-location registry, as the stages' own contexts do
                warnings.simplefilter("default")
                warn("data.replacement=true has no effect", InertSettingWarning)
        warn("another setting has no effect", InertSettingWarning)
    assert capsys.readouterr().err.splitlines() == ["distgen train: warning: data.replacement=true has no effect",
                                                    "distgen train: warning: another setting has no effect"]


def test_the_distgen_command_prints_one_clean_warning_line(tmp_path):
    config = save_yaml(ADDITIVE, tmp_path / "additive.yaml")
    (tmp_path / "taken").write_text("x")
    env = {**os.environ, "PYTHONPATH": str(Path(distgen.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "distgen", "run", str(config), "train.steps=3", "--out", str(tmp_path / "taken"),
                          "--metrics", "mse", "--no-plots"], capture_output=True, text=True, env=env, timeout=300)
    lines = res.stderr.splitlines()
    assert lines[0].startswith("distgen run: warning: train.steps has no effect: model 'additive' fits itself"), res.stderr
    assert not any("InertSettingWarning" in x or "runpy" in x for x in lines)
