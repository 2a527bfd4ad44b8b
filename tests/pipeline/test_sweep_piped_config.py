"""``distgen sweep <(cat c.yaml) ...``: a config that can be read once (a pipe) was read for the sweep's settings, then
again for each run's document (and each run's ``distgen run`` reads it again), which found the pipe empty: refused with
"the config has no 'model' section", which did not say why. Now refused before anything is read or written, naming the
pipe and the fix (save the config to a file)."""

import os
import sys

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
