"""Threading defaults of distgen's entry points (distgen.runtime)."""

import os
import subprocess
import sys

import pytest
import torch

from distgen import runtime


def _wait_after_import(env_extra: dict[str, str], script: str = "import distgen") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", runtime.OFF, runtime.THREADS)}
    env.update(env_extra)
    code = f"{script}\nimport os\nprint([os.environ.get(k) for k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'KMP_BLOCKTIME')])"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()


def test_import_sets_short_spin_waits_unless_the_user_chose():
    assert _wait_after_import({}) == "[None, '10000', '1']"
    assert _wait_after_import({"OMP_WAIT_POLICY": "ACTIVE"}) == "['ACTIVE', None, None]"
    assert _wait_after_import({"GOMP_SPINCOUNT": "5"}) == "[None, '5', '1']"
    assert _wait_after_import({runtime.OFF: "off"}) == "[None, None, None]"
    assert _wait_after_import({}, "import torch\nimport distgen") == "[None, None, None]"  # too late to matter: left alone


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_capped_at_usable_cpus_never_raised(threads, monkeypatch):
    monkeypatch.delenv(runtime.THREADS, raising=False)
    monkeypatch.delenv(runtime.OFF, raising=False)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 1)
    torch.set_num_threads(2)
    assert runtime.apply_threads() == 1
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 4)
    assert runtime.apply_threads() == 1  # the user's (or an earlier) lower setting is kept


def test_user_overrides(threads, monkeypatch):
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 1)
    monkeypatch.setenv(runtime.THREADS, "2")
    assert runtime.apply_threads() == 2
    monkeypatch.setenv(runtime.THREADS, "two")
    with pytest.raises(ValueError, match="DISTGEN_THREADS='two'"):
        runtime.apply_threads()
    monkeypatch.delenv(runtime.THREADS)
    monkeypatch.setenv(runtime.OFF, "off")
    torch.set_num_threads(2)
    assert runtime.apply_threads() == 2


def test_usable_cpus_follow_affinity_and_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(runtime, "cgroup_cpus", lambda: None)
    assert runtime.usable_cpus() == 4
    monkeypatch.setattr(runtime, "cgroup_cpus", lambda: 1.5)
    assert runtime.usable_cpus() == 2
    monkeypatch.undo()
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert runtime.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.cgroup_cpus(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert runtime.cgroup_cpus(tmp_path) == 2.0
    assert runtime.cgroup_cpus(tmp_path / "absent") is None
