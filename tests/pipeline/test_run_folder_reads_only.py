"""``distgen.pipeline.run_folder`` only reads: no reader writes, removes, renames or creates a file (a lock file included)
in any state of a run folder, its data file moved or not, so a folder that cannot be written (read-only, another user's)
is read as one that can. Every write is seen by an audit hook (``open`` for writing, ``os.replace``, ``os.mkdir``, ...),
wherever it comes from (the readers' own code or what they call)."""

import contextlib
import shutil
import sys

import pytest

from distgen.cli import main
from distgen.config import ConfigError, save_yaml
from distgen.data import bundled
from distgen.pipeline import run_folder
from distgen.pipeline.experiment import experiment_document
from distgen.pipeline.grid import Run

from .conftest import TINY

_WRITES: list[tuple[str, tuple]] | None = None
_MUTATING = {"os.rename", "os.replace", "os.remove", "os.unlink", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod",
             "os.chown", "os.utime", "os.link", "os.symlink", "shutil.rmtree", "shutil.move", "shutil.copyfile"}


def _audit(event, args):
    if _WRITES is None:
        return
    if event == "open":
        _path, mode, flags = args
        import os

        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
        if writing:
            _WRITES.append((event, args))
    elif event in _MUTATING:
        _WRITES.append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed: this one records only while a test sets _WRITES


@pytest.fixture
def writes():
    global _WRITES
    _WRITES = []
    try:
        yield _WRITES
    finally:
        _WRITES = None


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished experiment trained (2 steps) on ``first/cells.h5ad``, the file then moved to ``now/cells.h5ad``."""
    root = tmp_path_factory.mktemp("reads_only")
    (root / "first").mkdir()
    (root / "now").mkdir()
    bundled.norman_k562().write_h5ad(root / "first" / "cells.h5ad")
    cfg = save_yaml({**TINY, "data": {**TINY["data"], "dataset": str(root / "first" / "cells.h5ad")},
                     "evaluate": {"ceiling": False, "baselines": [], "plots": False}}, root / "t.yaml")
    assert main(["run", str(cfg), "--out", str(root / "exp"), "--metrics", "mse", "--no-progress"]) == 0
    shutil.move(root / "first" / "cells.h5ad", root / "now" / "cells.h5ad")
    moved = save_yaml({**TINY, "data": {**TINY["data"], "dataset": str(root / "now" / "cells.h5ad")},
                       "evaluate": {"ceiling": False, "baselines": [], "plots": False}}, root / "now.yaml")
    return root, experiment_document(moved, (), False)


def _read_everything(out, doc):
    """Every reader of the module on run folder ``out`` (as ``runs/<slug>`` of a sweep folder too)."""
    for reader in (lambda: run_folder.check_same_experiment(out, doc),
                   lambda: run_folder.check_run_folder(run_folder.RunFolder.read(out), doc),
                   lambda: run_folder.finished_summary(out)):
        with contextlib.suppress(ConfigError):  # a refusal is an answer; a write before it is what is looked for
            reader()
    for metrics in (["mse"], None, ["pearson_delta"]):
        for each in (run_folder.read_finished, run_folder.finished_unlocked, run_folder.finished_or_none,
                     run_folder.is_finished):
            with contextlib.suppress(ConfigError):
                each(out, doc, metrics)
    run_folder.damaged_finished_file(out)
    run_folder.recorded_timings(out)
    folder = run_folder.RunFolder.read(out)
    _ = (folder.finished(["mse"]), folder.again_why(["mse", "pearson_delta"]), folder.damaged, folder.unrecorded)
    run_folder.record_stamp(out)
    run_folder.stale_record(out / run_folder.RECORD_FILE, doc)
    run_folder.unrecorded_runs(run_folder.run_folders(out.parent.parent, [Run("base", 0, ())]))


@pytest.mark.parametrize("state", ["finished", "DONE damaged", "DONE another runner's", "summary damaged",
                                   "timings damaged", "metrics.csv removed", "DONE removed", "record removed"])
def test_no_reader_writes_or_locks_in_any_state_of_the_folder(made, tmp_path, writes, state):
    root, doc = made
    out = tmp_path / "sweep" / "runs" / Run("base", 0, ()).slug
    shutil.copytree(root / "exp", out)
    damage = {"DONE damaged": ("DONE", '{"metrics": ["ms'), "DONE another runner's": ("DONE", "ok\n"),
              "summary damaged": ("eval/summary.json", "{bad"), "timings damaged": ("timings.json", "[1")}
    if state in damage:
        (out / damage[state][0]).write_text(damage[state][1])
    gone = {"metrics.csv removed": "eval/metrics.csv", "DONE removed": "DONE", "record removed": "experiment.yaml"}
    if state in gone:
        (out / gone[state]).unlink()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    writes.clear()
    _read_everything(out, doc)
    assert writes == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no lock file, no data_moved.json
    assert not (out / run_folder.MOVED_RECORD).exists()


def test_the_hook_sees_a_write_of_the_folder(made, tmp_path, writes):
    """The test above could not pass by not seeing: the writer of the same record is seen."""
    from distgen.pipeline.experiment import record_moved

    record_moved(tmp_path, {"dataset": "x", "stamp": [1], "data_hash": "h"})
    assert writes and (tmp_path / run_folder.MOVED_RECORD).exists()
