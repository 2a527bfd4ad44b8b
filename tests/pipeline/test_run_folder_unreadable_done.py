"""A ``DONE`` that exists but cannot be read (permission denied) is refused, naming the file and the fix, by the sweep (a
writable pass and one that only reads a finished sweep it cannot lock) and by ``distgen run`` alike. It was taken as
present and not damaged: the sweep skipped it as its ``ok`` marker, ``distgen run`` evaluated the experiment again without
a note. Root reads a ``chmod 000`` file, so the refusal is also tested with the read made to fail as it does for another
user, and on the command line with the file's read permission removed and root's override rights dropped."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distgen.errors import InputFileError
from distgen.pipeline import experiment
from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.run_folder import DONE_FILE, RunFolder
from distgen.pipeline.sweep import sweep

from .conftest import without_write_rights
from .test_damaged_finished_run import finished as made  # noqa: F401  (the fixture)
from .test_sweep_read_only import GRID, Refused, _never, base, finished  # noqa: F401  (base, finished: the fixtures)

SLUG = "description=good__seed1"


@pytest.fixture
def denied(monkeypatch):
    """Reading a file named ``DONE`` fails with permission denied, as it does for a user without read permission."""
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == DONE_FILE:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def _refused(excinfo, done):
    said = str(excinfo.value)
    assert str(done) in said and "cannot be read (Permission denied)" in said and "chmod u+r" in said


def test_a_run_folder_remembers_why_its_done_could_not_be_read(tmp_path, denied):
    (tmp_path / DONE_FILE).write_text("ok\n")
    folder = RunFolder.read(tmp_path)
    assert folder.has_done and folder.done is None and folder.unreadable == "Permission denied"
    assert RunFolder.read(tmp_path / "absent").unreadable is None


def test_a_sweep_refuses_a_done_it_cannot_read(finished, base, denied):  # noqa: F811
    with pytest.raises(InputFileError) as excinfo:
        sweep(base, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    _refused(excinfo, finished / "runs" / "description=good__seed0" / DONE_FILE)  # the first run of the four
    assert "and 3 more run folder(s)' DONE" in str(excinfo.value)


def test_a_read_only_sweep_refuses_a_done_it_cannot_read(finished, base, denied, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(InputFileError) as excinfo:
        sweep(base, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    _refused(excinfo, finished / "runs" / "description=good__seed0" / DONE_FILE)


def test_distgen_run_refuses_a_done_it_cannot_read(made, tmp_path, denied):  # noqa: F811
    cfg, src = made
    out = tmp_path / "run"
    shutil.copytree(src, out)
    before = (out / "eval" / "metrics.csv").read_bytes()
    with pytest.raises(InputFileError) as excinfo:
        experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    _refused(excinfo, out / DONE_FILE)
    assert (out / "eval" / "metrics.csv").read_bytes() == before and (out / DONE_FILE).exists()  # nothing evaluated again


@pytest.mark.slow
def test_a_chmod_000_done_is_refused_on_the_command_line(finished, base):  # noqa: F811
    """The same with the file's read permission removed, in a process that cannot read it (root's override rights
    dropped: ``without_write_rights``): the CLI's error line names the file, exit 1, no run started."""
    done = finished / "runs" / SLUG / DONE_FILE
    code = ("import sys\nfrom distgen.cli import main\nfrom distgen.pipeline import sweep as s\n"
            "def never(*a):\n    raise SystemExit('a run started')\n"
            "s.subprocess_runner = never\n"
            f"sys.exit(main(['sweep', {base!r}, '--grid', 'description=[good,bad]', '--grid', 'train.seed=[0,1]', '--out', "
            f"{str(finished)!r}, '--metrics', 'mse', 'pearson_delta']))\n")
    done.chmod(0)
    try:
        ran = subprocess.run([*without_write_rights(), sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        done.chmod(0o644)
    assert ran.returncode == 1 and "a run started" not in ran.stderr, ran.stderr
    assert f"{done} cannot be read (Permission denied)" in ran.stderr and "chmod u+r" in ran.stderr
    assert done.read_text() == "ok\n"
