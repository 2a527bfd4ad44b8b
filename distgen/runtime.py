"""CPU threading defaults for distgen's entry points: fast on an idle machine, no collapse on a busy one.

By default OpenMP worker threads busy-wait (spin) for a long time between parallel regions
(libgomp: 300,000 spins). When the machine has more runnable threads than cores (a laptop running
other work, a shared workstation, a cluster node with neighbours) the spinning threads take cores
from the threads doing the work, and training can slow down tens of times. Sleeping at once
(``OMP_WAIT_POLICY=PASSIVE``) avoids that but costs a wake-up per parallel region: up to 2.6x
slower on an idle machine for small models. A short spin keeps both (``docs/benchmarks.md``,
"Threading": within 4% of torch's defaults idle, no collapse with two busy-loop processes). distgen therefore

* sets ``GOMP_SPINCOUNT=10000`` (libgomp, torch's OpenMP on Linux) and ``KMP_BLOCKTIME=1`` (ms;
  LLVM/Intel OpenMP, e.g. macOS; not measured here) before torch loads, unless the user set a
  wait policy or these variables (``import distgen`` does it, so the ``distgen`` command and any
  script that imports distgen before torch get it);
* caps torch's intra-op threads at the CPUs this process may use (its affinity mask and, in a
  container, its cgroup CPU quota), at the start of its heavy calls; it never raises them;
* gives the other thread pools a process of distgen may start the same count (``POOL_VARIABLES``):
  JAX/XLA's CPU client (the Bayesian plugin's numpyro; ``PJRT_NPROC``, read when JAX creates its CPU
  backend, sizes XLA's Eigen intra-op pool and its PjRt pool), numba's parallel layer
  (``NUMBA_NUM_THREADS``, read when numba is imported) and polars (``POLARS_MAX_THREADS``, read
  when its pool starts), as environment variables set before those libraries start; and the BLAS of numpy and scipy (OpenBLAS, MKL, BLIS), bounded
  where it is loaded, through ``threadpoolctl``. distgen's own numba kernels are serial and distgen
  does not use polars; plugins and user code that do get the same bound. A pool that started before
  the setting (JAX computed in this process before ``import distgen``) keeps its size.

It also asks numba for a fork-safe threading layer (``NUMBA_THREADING_LAYER=forksafe``: TBB where installed, else numba's
workqueue) before numba starts its threads (numba imported first, by ``import scanpy``, included), unless the user chose a layer: under GNU OpenMP, numba's default on Linux without TBB,
a ``DataLoader`` worker forked after scanpy's ``normalize_total`` ran in its parent was killed at its first normalisation
(streaming raw counts with ``num_workers > 0``; docs/reliability.md, "Streaming round"). Row-wise kernels give the same
values under either layer.

The user keeps control: ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` already set are
left alone, ``DISTGEN_THREADS=N`` fixes the thread count of every pool above, ``torch.set_num_threads(k)``
with ``k`` at most the usable CPUs is kept (and becomes the other pools' count), a library's own
variable set by the user (``PJRT_NPROC`` or ``NPROC``, ``NUMBA_NUM_THREADS``, ``POLARS_MAX_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``BLIS_NUM_THREADS``) wins over ``DISTGEN_THREADS`` for
that library, and ``DISTGEN_THREADING=off`` switches all of this off.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Any

OFF = "DISTGEN_THREADING"
THREADS = "DISTGEN_THREADS"
#: spin-then-sleep settings set before torch loads (see the module docstring)
WAIT_SETTINGS = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}
#: thread pools sized by an environment variable read when the library starts its pool: the variable distgen
#: sets first, then any other the library reads (a user's value of any of them is kept)
POOL_VARIABLES = {
    "jax": ("PJRT_NPROC", "NPROC"),  # XLA's CPU client (xla/pjrt/utils.cc DefaultThreadPoolSize), at backend creation
    "numba": ("NUMBA_NUM_THREADS",),  # numba.config, at import
    "polars": ("POLARS_MAX_THREADS",),  # polars' rayon pool, when it starts
}
#: a user's value of any of these keeps distgen from changing the BLAS threads of numpy and scipy
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: numba's threading layer distgen asks for before numba loads (a user's NUMBA_THREADING_LAYER is kept): one that survives
#: a fork (DataLoader workers), TBB where installed, else workqueue; GNU OpenMP's does not
NUMBA_LAYER = ("NUMBA_THREADING_LAYER", "forksafe")
#: the pool variables distgen set and their values, kept in the environment too (``MARK``) so that a child process
#: (``distgen sweep`` runs each cell in one) tells them from a user's: a later call may change its own, never the user's
MARK = "DISTGEN_THREADS_SET"
_SET: dict[str, str] = dict(kv.split("=", 1) for kv in os.environ.get(MARK, "").split(",") if "=" in kv)


def enabled() -> bool:
    """False when ``DISTGEN_THREADING`` is ``off`` (or ``0``/``false``/``no``)."""
    return os.environ.get(OFF, "on").strip().lower() not in ("off", "0", "false", "no")


def _numba_threads_started() -> bool:
    """Whether numba's parallel threads started in this process (their layer is then fixed)."""
    par = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(par, "_is_initialized", False))


def configure_environment() -> bool:
    """Set short OpenMP spin-waits (``WAIT_SETTINGS``) if torch is not loaded yet and the user set none, and the
    pool variables (``bound_pools``: ``DISTGEN_THREADS``, else the usable CPUs) before JAX, numba or polars start.

    Returns whether a wait setting was set here. OpenMP reads these once, when torch's library loads;
    after that only the thread count can change (``apply_threads``).
    """
    if not enabled():
        return False
    with contextlib.suppress(ValueError):  # a malformed DISTGEN_THREADS: apply_threads says so; importing distgen never fails
        bound_pools(requested_threads() or usable_cpus())
    if NUMBA_LAYER[0] not in os.environ and not _numba_threads_started():  # read when numba starts its threads
        os.environ[NUMBA_LAYER[0]] = NUMBA_LAYER[1]
        config: Any = sys.modules.get("numba.core.config")
        if config is not None:  # numba imported first (scanpy before distgen): it read the variable already; its threads
            config.THREADING_LAYER = NUMBA_LAYER[1]  # read this at their start (numba.np.ufunc.parallel._launch_threads)
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    done = False
    for key, value in WAIT_SETTINGS.items():
        if key not in os.environ:
            os.environ[key] = value
            done = True
    return done


def cgroup_cpus(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max`` or v1 ``cfs_quota/period``), or None."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text(encoding="utf-8").split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text(encoding="utf-8"))
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, bounded by a cgroup quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def requested_threads() -> int | None:
    """The thread count ``DISTGEN_THREADS`` asks for, or None when it is not set (``ValueError`` when malformed)."""
    wanted = os.environ.get(THREADS, "").strip()
    if not wanted:
        return None
    try:
        n = int(wanted)
    except ValueError:
        raise ValueError(f"{THREADS}={wanted!r}: expected a whole number of threads (e.g. {THREADS}=4)") from None
    if n < 1:
        raise ValueError(f"{THREADS}={wanted!r}: expected at least 1 thread")
    return n


def _user_set(names: tuple[str, ...]) -> bool:
    """Whether the user (not distgen) set any of these environment variables."""
    return any(k in os.environ and os.environ[k] != _SET.get(k) for k in names)


def bound_pools(n: int) -> None:
    """Size the pools of ``POOL_VARIABLES`` to ``n`` threads where the user set none of their variables.

    The variables take effect in libraries that start their pool later: numba's and polars' are left as they are
    once that library is imported (numba reads its variable at import, and a later change makes its next compile
    fail once its threads run; ``numba.set_num_threads`` is not called: it would start numba's threading layer).
    """
    for lib, names in POOL_VARIABLES.items():
        if lib != "jax" and lib in sys.modules:  # read at import: too late, and numba refuses (RuntimeError at its next
            continue  # compile) a NUMBA_NUM_THREADS changed after its threads started
        if not _user_set(names):
            os.environ[names[0]] = _SET[names[0]] = str(n)
    os.environ[MARK] = ",".join(f"{k}={v}" for k, v in sorted(_SET.items()))


def bound_blas(n: int, fixed: bool) -> None:
    """Set the BLAS threads of the libraries loaded in this process (numpy's, scipy's) to ``n`` (``fixed``), or
    lower those above ``n``; left alone when the user set a BLAS variable or ``threadpoolctl`` is not installed."""
    if _user_set(BLAS_VARIABLES):
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency of distgen (and of scikit-learn)
        return
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if fixed or lib.num_threads > n:
            lib.set_num_threads(n)


def apply_threads() -> int:
    """Bound torch's intra-op threads and the other pools (see the module docstring); returns torch's count in effect."""
    import torch

    if not enabled():
        return torch.get_num_threads()
    n = requested_threads()
    if n is not None:
        torch.set_num_threads(n)
    elif torch.get_num_threads() > usable_cpus():
        torch.set_num_threads(usable_cpus())
    count = torch.get_num_threads()
    bound_pools(count)
    bound_blas(count, fixed=n is not None)
    return count


__all__ = ["apply_threads", "bound_blas", "bound_pools", "cgroup_cpus", "configure_environment", "enabled", "requested_threads",
           "usable_cpus"]
