"""A block device (a disk, a partition, a loop device) given as a sweep's config, or found as a run folder's ``DONE``.

By the rule the sweep's config check follows (a path that cannot give the sweep and each run's ``distgen run`` the same
config again is named, not read: a pipe, a character device, a socket), a block device is named too: it holds no
config, and each of those reads would read the whole device (a detached loop device reads empty, "no 'model' section";
a disk would be read to its end). It passed the check and was read. A ``DONE`` that is a block device is never opened
(a damaged ``DONE``, as a character device). No block device can be made without root, so the ``stat`` of the path is
made to say one."""

import io
import os
import stat
from pathlib import Path

import pytest

from distgen.cli import main
from distgen.config import ConfigError
from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.run_folder import DONE_FILE, RunFolder
from distgen.pipeline.sweep import check_config_readable_again


@pytest.fixture
def as_block(monkeypatch):
    """``os.stat`` of a path named in ``said`` gives a block device's mode (its other fields those of the real path)."""
    said: set[str] = set()
    real = os.stat

    def fake(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        if isinstance(path, (str, os.PathLike)) and os.path.basename(os.fspath(path)) in said:
            fields = list(st)
            fields[stat.ST_MODE] = stat.S_IFBLK | 0o660
            return os.stat_result(fields)
        return st

    monkeypatch.setattr(os, "stat", fake)
    return said


def test_a_block_device_as_a_sweeps_config_is_refused_naming_it(tmp_path, as_block):
    config = tmp_path / "sda1"
    config.write_text("model: {name: control}\n")
    as_block.add(config.name)
    with pytest.raises(ConfigError) as err:  # before: passed, the device read as the config
        check_config_readable_again(config)
    said = str(err.value)
    assert f"the config {config} is a block device" in said and "save the config to a file" in said
    assert "pipe" not in said


def test_distgen_sweep_of_a_block_device_exits_2(tmp_path, as_block, capsys, monkeypatch):
    def never(*args):
        raise AssertionError("a run started")

    monkeypatch.setattr(sweep_module, "subprocess_runner", never)
    config = tmp_path / "loop7"
    config.write_text("model: {name: control}\n")
    as_block.add(config.name)
    out = tmp_path / "never-made"
    assert main(["sweep", str(config), "--grid", "train.seed=[0]", "--out", str(out)]) == 2  # before: swept
    assert "is a block device" in capsys.readouterr().err and not out.exists()


def test_a_done_that_is_a_block_device_is_damaged_and_not_opened(tmp_path, as_block, monkeypatch):
    (tmp_path / DONE_FILE).write_text("ok\n")
    as_block.add(DONE_FILE)
    real = io.open

    def never(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(os.fspath(file)).name == DONE_FILE:
            raise AssertionError("a block device DONE opened")
        return real(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", never)
    folder = RunFolder.read(tmp_path)
    assert folder.has_done and folder.done is None and folder.kind == "a block device"
    assert folder.damaged is not None and folder.damaged.endswith("it is a block device, not a file")
    assert not folder.finished()
