"""``distgen sweep <(cat c.yaml) ...``: the sweep reads its config for its settings, then again for each run's document
(and each run's ``distgen run`` reads it again), so a config that is not a file (a pipe, a character device such as a
terminal or ``/dev/null``, a socket) is refused before anything is read or written, naming what kind of file it is and
the fix (save the config to a file), not "the config has no 'model' section"."""

import os
import socket
import sys
import tempfile

import pytest

from distgen.cli import main
from distgen.config import ConfigError
from distgen.pipeline.sweep import sweep

from .test_sweep import FakeRunner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/fd/N names a pipe's read end on Linux")

CONFIG = b"model: {name: control}\n"


@pytest.fixture
def piped():
    """``/dev/fd/N`` of a pipe holding the config, as a shell's ``<(cat c.yaml)`` gives it."""
    read, write = os.pipe()
    os.write(write, CONFIG)
    os.close(write)
    yield f"/dev/fd/{read}"
    os.close(read)


def test_a_sweep_of_a_piped_config_is_refused_naming_the_pipe(tmp_path, piped):
    out = tmp_path / "sw"
    runner = FakeRunner()
    with pytest.raises(ConfigError) as e:
        sweep(piped, {}, out, seeds=[0], runner=runner, metrics=["mse"], progress=False)
    msg = str(e.value)
    assert piped in msg and "pipe" in msg and "save" in msg  # before: "the config has no 'model' section"
    assert "no 'model' section" not in msg
    assert runner.calls == [] and not out.exists()


def test_distgen_sweep_of_a_piped_config_exits_2_naming_the_pipe(tmp_path, piped, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", piped, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert piped in err and "pipe" in err
    assert not out.exists()


def test_a_config_file_is_still_swept(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(CONFIG)
    assert sweep(str(cfg), {}, tmp_path / "sw", seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False).finished


def _refusal(config):
    with pytest.raises(ConfigError) as e:
        sweep(config, {}, "never-made", seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False)
    return str(e.value)


def test_a_named_pipe_is_refused_as_a_pipe(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    said = _refusal(str(fifo))
    assert str(fifo) in said and "is a pipe" in said and "character device" not in said


@pytest.mark.parametrize("device", ["/dev/null", "a terminal"])
def test_a_character_device_is_refused_as_one_not_called_a_pipe(device):
    """``/dev/null`` and a terminal (``/dev/stdin`` of an interactive shell) were refused with "is a pipe"."""
    closing = []
    if device == "a terminal":
        main_end, terminal = os.openpty()
        closing = [main_end, terminal]
        device = os.ttyname(terminal)
    try:
        said = _refusal(device)
    finally:
        for fd in closing:
            os.close(fd)
    assert device in said and "is a character device" in said and "pipe" not in said  # before: "is a pipe"
    assert "save the config to a file" in said


def test_a_socket_is_refused_as_a_socket():
    with tempfile.TemporaryDirectory() as folder, socket.socket(socket.AF_UNIX) as server:  # a short path: AF_UNIX's limit
        path = os.path.join(folder, "c.yaml")
        server.bind(path)
        said = _refusal(path)
    assert path in said and "is a socket" in said and "pipe" not in said  # before: "is a pipe"
