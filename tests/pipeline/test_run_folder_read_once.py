"""A sweep pass reads each run folder's ``DONE`` once (``run_folder.RunFolder``) and asks that one reading every question
(finished? damaged? evaluated with which ``--metrics``? recorded?), where it read the file again for each question: 3
times per run in a writable pass, 4 (the sweep's ``ok``) or 7 (``distgen run``'s record) in a read-only one. The
read-only pass reads a record a second time after the summary, by design: a ``DONE`` gone or changed meanwhile means the
summary may be of a run being rewritten."""

import builtins
import collections
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from distgen.pipeline import experiment
from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.run_folder import DONE_FILE, RunFolder
from distgen.pipeline.sweep import sweep

from .test_damaged_finished_run import finished as made  # noqa: F401  (the fixture)
from .test_sweep import FakeRunner
from .test_sweep_read_only import GRID, Refused, _never, base, finished  # noqa: F401  (base, finished: the fixtures)

RECORDED = ("description=bad__seed0", "description=bad__seed1")  # made distgen run's runs, the others the sweep's "ok"


@pytest.fixture
def mixed(finished):  # noqa: F811
    """The finished sweep with two runs made ``distgen run``'s: its ``DONE`` record beside a summary."""
    for slug in RECORDED:
        run = finished / "runs" / slug
        (run / "eval" / "summary.json").write_text("{}")
        (run / DONE_FILE).write_text('{"metrics": null}\n')
    return finished


@pytest.fixture
def done_reads(monkeypatch):
    """How many times each ``DONE`` is opened to be read (by run folder name), whatever reads it: ``Path.read_bytes``,
    ``Path.read_text``, ``Path.open`` and the builtin ``open`` all go through ``io.open``."""
    reads: collections.Counter[str] = collections.Counter()
    real = io.open

    def counted(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and not set(mode) & set("wax+"):
            path = Path(os.fspath(file))
            if path.name == DONE_FILE:
                reads[path.parent.name] += 1
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counted)
    monkeypatch.setattr(builtins, "open", counted)
    return reads


def test_a_sweep_pass_over_finished_runs_reads_each_done_once(mixed, base, done_reads):  # noqa: F811
    res = sweep(base, GRID, mixed, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    assert len(res.skipped) == 4 and not res.finished
    assert dict(done_reads) == {slug: 1 for slug in res.skipped}  # before: 3 each


def test_a_sweep_pass_adopting_an_unrecorded_run_reads_its_done_once(finished, base, done_reads):  # noqa: F811
    """A run another runner finished without a record of its config (no ``experiment.yaml``) is asked whether it is
    unrecorded, adopted, checked and skipped from one reading too."""
    (finished / "runs" / "description=good__seed1" / "experiment.yaml").unlink()
    res = sweep(base, GRID, finished, runner=_never, metrics=["mse", "pearson_delta"], progress=False, adopt_unrecorded=True)
    assert len(res.skipped) == 4 and (finished / "runs" / "description=good__seed1" / "experiment.yaml").is_file()
    assert dict(done_reads) == {slug: 1 for slug in res.skipped}


def test_a_read_only_sweep_pass_reads_each_done_once_and_a_recorded_one_again_after_its_summary(mixed, base, done_reads,  # noqa: F811
                                                                                                 monkeypatch):
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    res = sweep(base, GRID, mixed, runner=_never, metrics=["mse", "pearson_delta"], progress=False)
    assert len(res.skipped) == 4
    assert dict(done_reads) == {slug: 2 if slug in RECORDED else 1 for slug in res.skipped}  # before: 7 and 4


class RecordingRunner(FakeRunner):
    """Finishes a run as ``distgen run`` does: its summary, then its ``DONE`` record, written last."""

    def __call__(self, config, run, run_dir):
        code = super().__call__(config, run, run_dir)
        (run_dir / "eval" / "summary.json").write_text("{}")
        (run_dir / DONE_FILE).write_text('{"metrics": null}\n')
        return code


def test_a_run_run_again_is_read_again_after_its_run(finished, base, done_reads):  # noqa: F811
    """A run the pass runs again (here its ``DONE`` removed) is read again after it (``record_run``): the run wrote the
    folder in between. Asked of the reading made before the run (no ``DONE`` then), the sweep would write its own marker
    over the ``DONE`` record the run wrote; an absent ``DONE`` is not opened."""
    done = finished / "runs" / "description=good__seed0" / DONE_FILE
    done.unlink()
    runner = RecordingRunner()
    sweep(base, GRID, finished, runner=runner, metrics=["mse", "pearson_delta"], progress=False)
    assert runner.calls == ["description=good__seed0"]
    assert done_reads["description=good__seed0"] == 1  # read after the run (absent before it: not opened)
    assert all(done_reads[r] == 1 for r in ("description=good__seed1", "description=bad__seed0", "description=bad__seed1"))
    assert done.read_text() == '{"metrics": null}\n'  # the run's record kept, not replaced by the sweep's "ok"


def test_the_questions_are_asked_of_what_was_read(tmp_path):
    """A ``RunFolder`` answers from the bytes it read, not from the file as it is now."""
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.csv").write_text("perturbation,mse\nP0,1\n")
    (tmp_path / DONE_FILE).write_text('{"metrics": ["pearson_delta"]}')
    (tmp_path / "eval" / "summary.json").write_text("{}")
    folder = RunFolder.read(tmp_path)
    (tmp_path / DONE_FILE).write_text("ok\n")
    assert folder.evaluated_with == ["pearson_delta"] and folder.metrics_lost(["mse", "pearson_delta"]) == ["mse"]
    assert not folder.finished(["mse"]) and RunFolder.read(tmp_path).finished(["mse"])


def test_distgen_run_reads_a_damaged_done_once_before_its_lock_and_once_under_it(made, tmp_path, done_reads):  # noqa: F811
    """``distgen run`` reads ``DONE`` before its lock (every rank alike) and again under it (another process may have
    finished it meanwhile); the note that names a damaged ``DONE`` is said from the reading under the lock, not a third."""
    cfg, src = made
    out = tmp_path / "run"  # not the copied folder's name ("out"), whose DONE the copy opens
    shutil.copytree(src, out)
    (out / DONE_FILE).write_bytes(b"[]")
    experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    assert done_reads[out.name] == 2  # before: 3
    assert json.loads((out / DONE_FILE).read_text()) == {"metrics": ["mse"]}
