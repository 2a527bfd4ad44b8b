"""A finished sweep in a folder whose lock cannot be taken (read-only, another user's): ``distgen sweep`` of it only reads
its results, as ``distgen run`` of a finished experiment does (``experiment.finished_or_none``), and says where a
report can be written, rather than being refused at the lock ("is not writable"). A sweep with anything left to do
there, or asked for another grid, is still refused; one refused because a finished run's file is damaged names that file."""

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


def _sweep_made_read_only(finished, base):
    """``distgen sweep`` of ``finished`` (GRID, mse and pearson_delta) made read-only, in a process that cannot write it
    (root's override rights dropped: ``without_write_rights``), no run started; the folder made writable again after."""
    code = ("import sys\nfrom distgen.cli import main\nfrom distgen.pipeline import sweep as s\n"
            "def never(*a):\n    raise SystemExit('a run started')\n"
            "s.subprocess_runner = never\n"
            f"sys.exit(main(['sweep', {base!r}, '--grid', 'description=[good,bad]', '--grid', 'train.seed=[0,1]', '--out', "
            f"{str(finished)!r}, '--metrics', 'mse', 'pearson_delta']))\n")
    for p in [finished, *finished.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        return subprocess.run([*without_write_rights(), sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        for p in [finished, *finished.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


@pytest.mark.slow
def test_a_finished_sweep_in_a_read_only_folder_prints_its_summary(finished, base, tmp_path):
    """The same with the folder made read-only, in a process that cannot write it (the CLI's lines: summary.md, the note)."""
    done = _sweep_made_read_only(finished, base)
    assert done.returncode == 0, done.stderr
    assert "description=bad" in done.stdout and "already holds this finished sweep" in done.stderr
    assert not (finished / ".distgen.lock").exists()


def test_a_finished_read_only_sweep_asked_by_another_config_is_refused_naming_the_run_folder(finished, tmp_path, monkeypatch):
    """A read-only finished sweep is read for its own config only: each run folder (a run another runner finished
    included) is checked as in a writable sweep, before the read, and another config's is refused naming the folder and
    the setting, not only as 'not writable' (not its control rows returned as another model's)."""
    from distgen.config import ConfigError, save_yaml

    other = str(save_yaml({"model": {"name": "additive"}}, tmp_path / "other.yaml"))
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(ConfigError) as err:  # before: the control sweep returned as the additive one's
        sweep(other, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    assert str(finished / "runs") in str(err.value) and "model.name" in str(err.value)


@pytest.mark.parametrize("raw", [b'{"metrics": nu', b"[]", b""])
def test_a_read_only_sweep_holding_a_damaged_done_is_refused_naming_that_file(finished, base, monkeypatch, raw):
    """A run's ``DONE`` hand-edited (``RunFolder.damaged``) makes the sweep evaluate the run again, which a folder
    that cannot be written refuses: the refusal names the run folder and the file, not only that the folder is not
    writable (the sweep folder's mode alone does not say why a finished sweep is not read)."""
    done = finished / "runs" / "description=bad__seed1" / DONE_FILE
    done.write_bytes(raw)
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(FolderNotWritableError) as err:
        sweep(base, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    said = str(err.value)
    assert "is not writable" in said and str(done) in said and "evaluated again" in said  # before: "not writable" only
    assert "copy the sweep folder" in said


@pytest.mark.slow
def test_a_really_read_only_sweep_with_a_damaged_done_says_so_on_the_command_line(finished, base):
    """The same in a folder made read-only, by a process that cannot write it: the CLI's error line names the file."""
    done = finished / "runs" / "description=good__seed0" / DONE_FILE
    done.write_bytes(b"done\n")
    ran = _sweep_made_read_only(finished, base)
    assert ran.returncode != 0 and "a run started" not in ran.stderr, ran.stderr
    assert "is not writable" in ran.stderr and str(done) in ran.stderr and "'done\\n'" in ran.stderr
    assert done.read_bytes() == b"done\n" and not (finished / ".distgen.lock").exists()


def test_a_read_only_sweep_holding_a_run_evaluated_by_hand_with_fewer_metrics_names_that_run(finished, base, monkeypatch):
    """A run evaluated again by hand with fewer ``--metrics`` than the sweep compares (``RunFolder.metrics_lost``) is
    evaluated again by the sweep, which a folder that cannot be written refuses: the refusal names that run folder and
    the metrics it lacks, as it names a run whose ``DONE`` or summary is damaged."""
    run = finished / "runs" / "description=good__seed1"
    (run / "eval" / "metrics.csv").write_text("perturbation,pearson_delta\nP0,0.1\n")  # distgen run --metrics pearson_delta
    (run / "eval" / "summary.json").write_text("{}")
    (run / DONE_FILE).write_text('{"metrics": ["pearson_delta"]}\n')
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(FolderNotWritableError) as err:
        sweep(base, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    said = str(err.value)
    assert "is not writable" in said and "copy the sweep folder" in said
    assert f"{run}: it was evaluated with --metrics pearson_delta" in said and "without mse" in said  # before: not named
    assert "1 finished run(s)" in said
