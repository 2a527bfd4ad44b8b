"""Threading defaults of distgen's entry points (distgen.runtime)."""

import json
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


#: run in a fresh process: distgen's entry-point setup, then each library starts its pool and reports the size it got
#: (JAX: the threads of XLA's Eigen intra-op pool that one matmul started, counted by name in /proc)
_POOLS_SCRIPT = """
import json, os, sys
import distgen
from distgen.cli import main
main(["components", "--kind", "kernels", "--brief"])  # the CLI's entry (apply_threads) before any library below starts its pool
import numpy, torch
from threadpoolctl import threadpool_info
out = {"torch": torch.get_num_threads(), "blas": sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})}
import numba, polars
out["numba"], out["polars"] = numba.get_num_threads(), polars.thread_pool_size()
if "jax" in sys.argv:
    import jax.numpy as jnp
    (jnp.ones((256, 256)) @ jnp.ones((256, 256))).block_until_ready()
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    out["xla"] = sum(n.endswith("XLAEigen") for n in names)
print(json.dumps(out))
"""


def _pools(env_extra: dict[str, str], jax: bool = False) -> dict:
    names = ("OMP_NUM_THREADS", "PJRT_NPROC", "NPROC", "NUMBA_NUM_THREADS", "POLARS_MAX_THREADS", runtime.MARK, runtime.OFF,
             runtime.THREADS, *runtime.BLAS_VARIABLES)
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(env_extra)
    res = subprocess.run([sys.executable, "-c", _POOLS_SCRIPT, *(["jax"] if jax else [])], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_distgen_threads_sizes_every_pool_a_run_may_start():
    for lib in ("numba", "polars", "threadpoolctl", "jax"):
        pytest.importorskip(lib)
    n = runtime.usable_cpus() + 1  # above every library's own default (the CPUs), so the setting is what is observed
    assert _pools({runtime.THREADS: str(n)}, jax=True) == {"torch": n, "blas": [n], "numba": n, "polars": n, "xla": n}
    # a library's own variable set by the user wins for that library (torch follows DISTGEN_THREADS); a value distgen
    # set in a parent process (distgen sweep runs each cell in a child) is not the user's: the child's count replaces it
    mine = {"PJRT_NPROC": "1", "POLARS_MAX_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
            runtime.MARK: "NUMBA_NUM_THREADS=1"}
    assert _pools({runtime.THREADS: str(n), **mine}, jax=True) == {"torch": n, "blas": [1], "numba": n, "polars": 1, "xla": 1}
    off = _pools({runtime.THREADS: str(n), runtime.OFF: "off"})  # switched off: every library keeps its own default
    assert off["numba"] < n and off["polars"] < n and off["blas"] != [n]


def test_a_later_thread_count_leaves_a_started_numba_working():
    """numba reads NUMBA_NUM_THREADS again at each compile and refuses a value other than its running pool's
    (RuntimeError); a second entry point with another count (DISTGEN_THREADS changed, torch's count lowered) changed
    it after numba's threads started, and every later numba compile in that process failed."""
    pytest.importorskip("numba")
    script = """
import os
os.environ["DISTGEN_THREADS"] = "1"
from distgen.runtime import apply_threads
apply_threads()
import numba, numpy as np

@numba.njit(parallel=True)
def total(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i]
    return s

total(np.ones(8))  # numba's threads start, with distgen's count
os.environ["DISTGEN_THREADS"] = "2"
apply_threads()

@numba.njit
def plus(x):
    return x + 1

print(plus(1.0), numba.get_num_threads())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", runtime.MARK, runtime.THREADS, runtime.OFF)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["2.0", "1"]
