"""Shared test setup: deterministic, single-threaded torch; denormals flushed; the worker count of ``-n auto``."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

# The tests' own fixture files stand for files users write: under pandas 3 (text in pandas' string dtype) anndata
# 0.11-0.12 writes them only with this opt-in, which such users set too. Read when anndata is first imported (after
# this file); distgen's own writers turn text into object and never need it (tests/data/test_layout_strings.py turns
# it off to check that). pandas 2 builds text as object, where the setting changes nothing.
os.environ.setdefault("ANNDATA_ALLOW_WRITE_NULLABLE_STRINGS", "1")

torch.set_num_threads(int(os.environ.get("DISTGEN_TEST_THREADS", "1")))
torch.set_flush_denormal(True)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


class FakePlugins:
    """Fake installed distributions (a dist-info folder and a module each) under ``root``, a folder on ``sys.path``,
    for the plugin tests (tests/test_registry.py, tests/test_plugin_author.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(self, dist: str, module: str, source: str, entry_points: dict[str, str], group: str = "distgen.encoders") -> None:
        """Install distribution ``dist`` (version 0.3) whose module ``module`` holds ``source`` and whose
        ``entry_points`` (name -> "module:attr") are declared in ``group``."""
        info = self.root / f"{dist}-0.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
        (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))

    def run(self, code: str) -> subprocess.CompletedProcess:
        """Run ``code`` in a fresh one-thread interpreter that also sees the fake distributions."""
        env_path = str(self.root) + ":" + ":".join(p for p in sys.path if p)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """``FakePlugins`` in a fresh folder on ``sys.path``; the ``fake_*`` modules the test imported are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield FakePlugins(tmp_path)
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


@pytest.fixture
def shared_data() -> str:
    """Path to ``../shared/data`` (CI has it); tests needing it skip when absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("../shared/data is not present")
    return os.path.abspath(SHARED_DATA)


#: ``pytest`` runs with ``-n auto`` (pyproject's addopts): one worker per CPU this process may use, at most this
#: many (each worker imports torch and builds its own models; more workers than this mostly add memory).
MAX_AUTO_WORKERS = 4


def pytest_xdist_auto_num_workers(config) -> int | None:
    """Workers for ``-n auto``: the CPUs of this process's affinity, capped; ``PYTEST_XDIST_AUTO_NUM_WORKERS`` wins.

    pytest-xdist's own rule counts physical cores through psutil when it is installed (1 on a 2-vCPU VM) and every
    core of a large machine otherwise; the tests are single-threaded (``DISTGEN_TEST_THREADS``), so the CPUs this
    process may run on are the right count, and a cap keeps a 64-core workstation from starting 64 torch processes.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads the variable
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_AUTO_WORKERS))


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
