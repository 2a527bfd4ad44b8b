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
  container, its cgroup CPU quota), at the start of its heavy calls; it never raises them.

The user keeps control: ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` already set are
left alone, ``DISTGEN_THREADS=N`` fixes the thread count, ``torch.set_num_threads(k)`` with ``k`` at
most the usable CPUs is kept, and ``DISTGEN_THREADING=off`` switches all of this off.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

OFF = "DISTGEN_THREADING"
THREADS = "DISTGEN_THREADS"
#: spin-then-sleep settings set before torch loads (see the module docstring)
WAIT_SETTINGS = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}


def enabled() -> bool:
    """False when ``DISTGEN_THREADING`` is ``off`` (or ``0``/``false``/``no``)."""
    return os.environ.get(OFF, "on").strip().lower() not in ("off", "0", "false", "no")


def configure_environment() -> bool:
    """Set short OpenMP spin-waits (``WAIT_SETTINGS``) if torch is not loaded yet and the user set none.

    Returns whether anything was set here. OpenMP reads these once, when torch's library loads;
    after that only the thread count can change (``apply_threads``).
    """
    if not enabled() or "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
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
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
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


def apply_threads() -> int:
    """Bound torch's intra-op threads (see the module docstring); returns the count in effect."""
    import torch

    if not enabled():
        return torch.get_num_threads()
    wanted = os.environ.get(THREADS)
    if wanted:
        try:
            n = int(wanted)
        except ValueError:
            raise ValueError(f"{THREADS}={wanted!r}: expected a whole number of threads (e.g. {THREADS}=4)") from None
        if n < 1:
            raise ValueError(f"{THREADS}={wanted!r}: expected at least 1 thread")
        torch.set_num_threads(n)
    elif torch.get_num_threads() > usable_cpus():
        torch.set_num_threads(usable_cpus())
    return torch.get_num_threads()


__all__ = ["apply_threads", "cgroup_cpus", "configure_environment", "enabled", "usable_cpus"]
