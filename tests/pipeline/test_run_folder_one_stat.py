"""``RunFolder.read`` answers from one ``stat`` of ``DONE`` and at most one open: whether it exists, what it is when it is
not a file, its bytes, or why it could not be read. It called ``Path.exists`` (a second ``stat``) whenever the ``stat``
or the open failed, to tell "absent" from "there but unreadable"; the error of the one that failed says which."""

import collections
import errno
import io
import os
from pathlib import Path

import pytest

from distgen.pipeline.run_folder import DONE_FILE, RunFolder


@pytest.fixture
def calls(monkeypatch):
    """``stat`` calls and opens for reading of a file named ``DONE`` (``Path.stat``, ``Path.exists`` and ``os.path`` all
    go through ``os.stat``; every read through ``io.open``)."""
    seen: collections.Counter[str] = collections.Counter()
    real_stat, real_open = os.stat, io.open

    def stat(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)).name == DONE_FILE:
            seen["stat"] += 1
        return real_stat(path, *args, **kwargs)

    def opened(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(os.fspath(file)).name == DONE_FILE and not set(mode) & set("wax+"):
            seen["open"] += 1
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(io, "open", opened)
    return seen


def _failing_read(monkeypatch, err):
    """Reading ``DONE`` fails with ``err`` (an errno), as after a ``stat`` that found it; ENOENT removes it first (a
    concurrent writer's removal between the two)."""
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == DONE_FILE:
            if err == errno.ENOENT:
                self.unlink()
            raise OSError(err, os.strerror(err), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_an_absent_done_is_one_stat(tmp_path, calls):
    folder = RunFolder.read(tmp_path)
    assert (folder.has_done, folder.done, folder.unreadable) == (False, None, None)
    assert dict(calls) == {"stat": 1}  # before: 2 (the stat, then exists())


def test_a_done_file_is_one_stat_and_one_open(tmp_path, calls):
    (tmp_path / DONE_FILE).write_text("ok\n")
    folder = RunFolder.read(tmp_path)
    assert (folder.has_done, folder.done) == (True, b"ok\n")
    assert dict(calls) == {"stat": 1, "open": 1}


def test_a_done_that_cannot_be_read_is_one_stat_and_keeps_why(tmp_path, calls, monkeypatch):
    (tmp_path / DONE_FILE).write_text("ok\n")
    _failing_read(monkeypatch, errno.EACCES)
    folder = RunFolder.read(tmp_path)
    assert (folder.has_done, folder.done, folder.unreadable) == (True, None, "Permission denied")
    assert calls["stat"] == 1  # before: 2


def test_a_done_removed_between_its_stat_and_its_read_is_absent(tmp_path, calls, monkeypatch):
    """The answer the second ``stat`` gave then: absent, not "cannot be read (No such file or directory)"."""
    (tmp_path / DONE_FILE).write_text("ok\n")
    _failing_read(monkeypatch, errno.ENOENT)
    folder = RunFolder.read(tmp_path)
    assert (folder.has_done, folder.done, folder.unreadable) == (False, None, None)
    assert calls["stat"] == 1


def test_a_stat_that_fails_for_another_reason_is_raised(tmp_path, monkeypatch):
    """A ``stat`` refused (a run folder this user cannot search) is raised, as ``Path.exists`` raised it."""
    real = os.stat

    def stat(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)).name == DONE_FILE:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(PermissionError):
        RunFolder.read(tmp_path)
