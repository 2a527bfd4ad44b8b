"""Timing with warm-ups and medians, peak memory, FLOP counting and log-log exponents."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: Dense bf16 peak FLOP/s of common accelerators (vendor datasheets, without sparsity), for MFU.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12, "V100": 125e12, "T4": 65e12}


def timed(fn: Callable[[], Any], warmup: int = 1, repeats: int = 3, sync: bool = False) -> dict[str, float]:
    """Median / min / max seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times)}


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or the largest waited-for child), in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    kb = resource.getrusage(who).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def current_rss_mb() -> float:
    """Resident set size now (Linux ``/proc``; the peak elsewhere), in MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def loglog_exponent(x: list[float], y: list[float]) -> float:
    """Slope ``k`` of the least-squares fit ``log y = k log x + c`` (cost ~ x^k)."""
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (forward and backward) by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of a known CUDA device; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def hardware() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
        if model:
            info["cpu"] = model
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["ram_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
        info["cuda_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def measured_at() -> dict[str, Any]:
    """When a measurement ran and how busy the machine was: UTC time and the 1/5/15-minute load averages."""
    import datetime
    import os

    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"), "load": load}


def when(start: dict[str, Any] | None, end: dict[str, Any] | None) -> str:
    """``2026-12-05 16:58-17:03 UTC, load average 3.6 3.0 2.0 -> 4.1 3.2 2.1`` (what is known of it)."""
    if not start:
        return ""
    span = start["utc"] + (f" to {end['utc']}" if end else "") + " UTC"
    if start.get("load"):
        span += ", load average " + " ".join(f"{x:g}" for x in start["load"])
        if end and end.get("load"):
            span += " -> " + " ".join(f"{x:g}" for x in end["load"])
    return span


def describe(hw: dict[str, Any]) -> str:
    """One line naming the hardware."""
    dev = f"{hw['cuda']} ({hw['cuda_memory_gb']} GB)" if "cuda" in hw else "no GPU"
    return f"{hw['cpu']}, {hw['cpu_count']} cores ({hw['torch_threads']} torch threads), {hw.get('ram_gb', '?')} GB RAM, {dev}; torch {hw['torch']}"
