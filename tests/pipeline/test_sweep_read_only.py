"""A finished sweep in a folder whose lock cannot be taken (read-only, another user's): ``distgen sweep`` of it only reads
its results, as ``distgen run`` of a finished experiment does (``experiment.finished_or_none``), and says where a
report can be written. Until helper 189 it was refused at the lock ("is not writable"). A sweep with anything left to do
there, or asked for another grid, is still refused."""

import json
import os
import subprocess
import sys

import pytest

from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.sweep import DONE_FILE, sweep
from distgen.train.lock import FolderNotWritableError, not_writable

from .conftest import without_write_rights
from .test_sweep import FakeRunner

GRID = {"description": ["good", "bad"], "train.seed": [0, 1]}


@pytest.fixture
def base(tmp_path):
    from distgen.config import save_yaml

    return str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))


@pytest.fixture
def finished(tmp_path, base):
    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=FakeRunner(), metrics=["mse", "pearson_delta"], progress=False)
    return out


class Refused:
    """``RunLock`` of a folder that cannot be written."""

    def __init__(self, folder, purpose):
        self.folder, self.purpose = folder, purpose

    def acquire(self):
        raise not_writable(self.folder, self.purpose)

    __enter__ = acquire

    def __exit__(self, *exc):
        return None


def _never(config, run, run_dir):
    raise AssertionError(f"run {run.slug} started in a finished sweep")


def test_a_finished_sweep_whose_lock_cannot_be_taken_returns_its_results(finished, base, monkeypatch, capsys):
    summary = json.loads((finished / "summary.json").read_text())
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    capsys.readouterr()
    res = sweep(base, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    assert sorted(res.skipped) == sorted(summary["finished"] + summary["skipped"]) and not res.failed and not res.finished
    assert {(c.variant, c.metric) for c in res.comparisons} == {(c["variant"], c["metric"]) for c in summary["comparisons"]}
    err = capsys.readouterr().err
    assert "already holds this finished sweep" in err and f"python -m distgen.report {finished} --out" in err


@pytest.mark.parametrize("change", ["a run unfinished", "another grid", "other metrics", "a run evaluated again since"])
def test_a_sweep_with_anything_to_do_in_such_a_folder_is_still_refused(finished, base, monkeypatch, change):
    grid, metrics = GRID, ["mse", "pearson_delta"]
    if change == "a run unfinished":
        (finished / "runs" / "description=bad__seed1" / DONE_FILE).unlink()
    elif change == "another grid":
        grid = {**GRID, "train.seed": [0, 1, 2]}
    elif change == "other metrics":
        metrics = ["mse"]
    else:  # its table now other than the summary's results.csv: the summary is not of the runs as they are
        table = finished / "runs" / "description=bad__seed1" / "eval" / "metrics.csv"
        lines = table.read_text().splitlines()
        head, first = lines[0].split(","), lines[1].split(",")
        first[head.index("mse")] = "7.5"
        table.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(FolderNotWritableError, match="is not writable"):
        sweep(base, grid, finished, runner=_never, metrics=metrics, progress=False)


@pytest.mark.slow
def test_a_finished_sweep_in_a_read_only_folder_prints_its_summary(finished, base, tmp_path):
    """The same with the folder made read-only, in a process that cannot write it (the CLI's lines: summary.md, the note)."""
    code = ("import sys\nfrom distgen.cli import main\nfrom distgen.pipeline import sweep as s\n"
            "def never(*a):\n    raise SystemExit('a run started')\n"
            "s.subprocess_runner = never\n"
            f"sys.exit(main(['sweep', {base!r}, '--grid', 'description=[good,bad]', '--grid', 'train.seed=[0,1]', '--out', "
            f"{str(finished)!r}, '--metrics', 'mse', 'pearson_delta']))\n")
    for p in [finished, *finished.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        done = subprocess.run([*without_write_rights(), sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        for p in [finished, *finished.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert done.returncode == 0, done.stderr
    assert "description=bad" in done.stdout and "already holds this finished sweep" in done.stderr
    assert not (finished / ".distgen.lock").exists()


def test_a_finished_read_only_sweep_asked_by_another_config_is_refused_naming_the_run_folder(finished, tmp_path, monkeypatch):
    """Helper 209: runs another runner finished recorded no config, so a read-only finished sweep was returned to a sweep
    of ANY config (its control rows as another model's). Now each run folder is checked as in a writable sweep, before the
    read: another config's is refused naming the folder and the setting, not only as 'not writable'."""
    from distgen.config import ConfigError, save_yaml

    other = str(save_yaml({"model": {"name": "additive"}}, tmp_path / "other.yaml"))
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(ConfigError) as err:  # before: the control sweep returned as the additive one's
        sweep(other, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    assert str(finished / "runs") in str(err.value) and "model.name" in str(err.value)
