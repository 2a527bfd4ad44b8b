"""``distgen.atomic``: temp files beside an output, published by rename."""

import os
import stat

from distgen.atomic import atomic_path, default_mode, same_file


def test_a_temp_file_gets_the_mode_of_a_plain_write_without_fchmod(tmp_path, monkeypatch):
    """``os.fchmod`` exists on Windows from Python 3.13 only (distgen supports 3.11): every output written through
    ``temp_beside`` (predictions, evaluations, checkpoints' pointers) failed there with an AttributeError."""
    monkeypatch.delattr(os, "fchmod", raising=False)
    with atomic_path(tmp_path / "sub" / "out.txt") as tmp, open(tmp, "w") as fh:
        fh.write("x")
    out = tmp_path / "sub" / "out.txt"
    assert out.read_text() == "x" and stat.S_IMODE(out.stat().st_mode) == default_mode()
    assert [p.name for p in out.parent.iterdir()] == ["out.txt"]


def test_same_file_sees_one_file_under_two_names(tmp_path):
    a = tmp_path / "a.h5ad"
    a.write_text("x")
    os.link(a, tmp_path / "b.h5ad")
    (tmp_path / "c.h5ad").symlink_to(a)
    assert same_file(a, tmp_path / "b.h5ad") and same_file(tmp_path / "c.h5ad", a) and same_file(a, tmp_path / "." / "a.h5ad")
    assert not same_file(a, tmp_path / "d.h5ad")  # not there yet: another file
