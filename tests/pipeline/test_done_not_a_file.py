"""A run folder's ``DONE`` that is not a file (a folder, a named pipe, a socket, a character device) is damaged, as one
that is neither ``distgen run``'s record nor the sweep's ``ok``: distgen writes ``DONE`` as a file only.

It was worse than a damaged file: a folder or a socket cannot be opened, and the reader took "cannot be read" as
"present", so the sweep skipped the run as finished without checking anything (and a read-only sweep returned its
results); a named pipe blocked the sweep and ``distgen run`` for ever at the read. Now ``DONE`` is opened only when it is a
file. A pipe, a socket or a device is said as damaged and the run is evaluated again (its removal and the new ``DONE``
replace it). A folder cannot be replaced by the ``DONE`` a new evaluation writes (``distgen run`` failed at its end,
after predicting again, with "'DONE' is a folder, but a file is needed here"): ``distgen run`` and a sweep that can write
refuse it before any work, naming it and the fix; a read-only sweep names it in its refusal."""

import json
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import pytest

from distgen.errors import InputFileError
from distgen.pipeline import experiment
from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.run_folder import DONE_FILE, RunFolder
from distgen.pipeline.sweep import sweep
from distgen.train.lock import FolderNotWritableError

from .test_damaged_finished_run import finished as made  # noqa: F401  (the fixture)
from .test_sweep import FakeRunner
from .test_sweep_read_only import GRID, Refused, _never, base, finished  # noqa: F401  (base, finished: the fixtures)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="named pipes and sockets as Linux makes them")

SLUG = "description=good__seed0"
METRICS = ["mse", "pearson_delta"]


class Blocked(Exception):
    """Raised by ``bounded`` in a test that blocked (not an ``OSError``, which a reader would take as "cannot be read")."""


@pytest.fixture
def bounded():
    """Fails a test that blocks (on the old tree, the open of a named pipe) instead of letting it hang the suite."""
    def stop(signum, frame):
        raise Blocked("blocked: a DONE that is a named pipe opened for reading")

    before = signal.signal(signal.SIGALRM, stop)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


def _make(kind: str, done: Path, monkeypatch) -> None:
    """``done`` replaced by a ``kind``: folder, pipe, socket, device (a link to ``/dev/null``)."""
    done.unlink()
    if kind == "folder":
        done.mkdir()
        (done / "notes.txt").write_text("kept\n")
    elif kind == "pipe":
        os.mkfifo(done)
    elif kind == "socket":  # bound by its name in its folder: AF_UNIX's path limit is 108 bytes
        monkeypatch.chdir(done.parent)
        server = socket.socket(socket.AF_UNIX)
        server.bind(DONE_FILE)
        server.close()
    else:
        done.symlink_to("/dev/null")


SAID = {"folder": "a folder", "pipe": "a pipe", "socket": "a socket", "device": "a character device"}


@pytest.mark.parametrize("kind", list(SAID))
def test_a_done_that_is_not_a_file_is_damaged_and_not_opened(tmp_path, monkeypatch, bounded, kind):
    done = tmp_path / DONE_FILE
    done.write_text("ok\n")
    _make(kind, done, monkeypatch)
    folder = RunFolder.read(tmp_path)  # before: a pipe blocked here
    assert folder.has_done and folder.done is None
    assert str(done) in (folder.damaged or "") and f"it is {SAID[kind]}, not a file" in (folder.damaged or "")
    assert not folder.finished()  # before: a folder and a socket were finished runs


@pytest.mark.parametrize("kind", ["pipe", "socket", "device"])
def test_the_sweep_evaluates_a_run_whose_done_is_not_a_file_again_saying_so(finished, base, capsys, monkeypatch,  # noqa: F811
                                                                              bounded, kind):
    done = finished / "runs" / SLUG / DONE_FILE
    _make(kind, done, monkeypatch)
    capsys.readouterr()
    again = FakeRunner()
    res = sweep(base, GRID, finished, runner=again, metrics=METRICS, progress=False)
    assert again.calls == [SLUG] and res.finished == [SLUG]  # before: skipped (socket), blocked (pipe)
    err = capsys.readouterr().err
    assert f"run {SLUG}" in err and str(done) in err and f"it is {SAID[kind]}, not a file" in err and "evaluated again" in err
    assert done.is_file() and not done.is_symlink() and done.read_text() == "ok\n"  # the sweep's marker replaced it


def test_a_sweep_refuses_a_run_whose_done_is_a_folder_before_any_run(finished, base, monkeypatch):  # noqa: F811
    done = finished / "runs" / SLUG / DONE_FILE
    _make("folder", done, monkeypatch)
    results = (finished / "results.csv").read_bytes()
    with pytest.raises(InputFileError) as err:  # before: the run was skipped as finished, nothing said
        sweep(base, GRID, finished, runner=_never, metrics=METRICS, progress=False)
    said = str(err.value)
    assert str(done) in said and "it is a folder, not a file" in said and "remove it" in said
    assert (done / "notes.txt").read_text() == "kept\n" and (finished / "results.csv").read_bytes() == results


def test_a_read_only_sweep_holding_a_done_folder_names_it_in_its_refusal(finished, base, monkeypatch):  # noqa: F811
    done = finished / "runs" / SLUG / DONE_FILE
    _make("folder", done, monkeypatch)
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    with pytest.raises(FolderNotWritableError) as err:  # before: read and returned as a finished sweep
        sweep(base, GRID, finished, runner=_never, metrics=METRICS, progress=False)
    said = str(err.value)
    assert "is not writable" in said and str(done) in said and "it is a folder, not a file" in said


def test_distgen_run_refuses_a_done_folder_before_any_work(made, tmp_path):  # noqa: F811
    cfg, src = made
    out = tmp_path / "out"
    shutil.copytree(src, out)
    done = out / DONE_FILE
    done.unlink()
    done.mkdir()
    record = (out / "experiment.yaml").stat()
    with pytest.raises(InputFileError) as err:  # before: IsADirectoryError after predicting, experiment.yaml rewritten
        experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    said = str(err.value)
    assert str(done) in said and "it is a folder, not a file" in said and "remove it" in said
    assert done.is_dir() and (out / "experiment.yaml").stat().st_mtime_ns == record.st_mtime_ns


def test_distgen_run_evaluates_a_done_pipe_again_saying_so(made, tmp_path, capsys, bounded):  # noqa: F811
    cfg, src = made
    out = tmp_path / "out"
    shutil.copytree(src, out)
    done = out / DONE_FILE
    done.unlink()
    os.mkfifo(done)
    capsys.readouterr()
    experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)  # before: blocked reading the pipe
    err = capsys.readouterr().err
    assert str(done) in err and "it is a pipe, not a file" in err and "evaluated again" in err
    assert done.is_file() and json.loads(done.read_text()) == {"metrics": ["mse"]}


def test_several_done_folders_are_refused_in_one_message_naming_each(tmp_path, monkeypatch):
    from distgen.pipeline.run_folder import check_done_replaceable

    folders = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / DONE_FILE).write_text("ok\n")
        _make("folder", tmp_path / name / DONE_FILE, monkeypatch)
        folders.append(RunFolder.read(tmp_path / name))
    check_done_replaceable([RunFolder.read(tmp_path)])  # no DONE: nothing refused
    with pytest.raises(InputFileError) as err:
        check_done_replaceable(folders)
    said = str(err.value)
    assert said.startswith("2 run folders' DONE are folders") and "remove them" in said and "the runs are evaluated again" in said
    assert all(str(tmp_path / name / DONE_FILE) in said for name in ("a", "b"))
