"""Where a PerturbDiff training step's time goes on a GPU (issue 18): official size, bf16 autocast, eager.

Per number of sets per step (32 cells each): the host synchronisations inside two steps (where in the code,
from ``torch.cuda.set_sync_debug_mode``), the fused AdamW update alone, the median step, and from
``torch.profiler`` over 4 steps the GPU's busy time, the host's time and the kernel launches per step, with the
top operators by GPU time and by host time. Not part of the test suite (it needs CUDA).

    python benchmarks/gpu_profile.py --sets 4 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness.models import build, random_batch, synthetic_info, training_step  # noqa: E402


def profile_sets(sets: int, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    info = synthetic_info(2000)
    model = build("perturbdiff", info, [], device)
    model.train()
    step, opt = training_step(model, [random_batch(info, sets, 32, seed=s, device=device) for s in range(2)], device)

    for i in range(3):
        step(i)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step(0)
        step(1)
    torch.cuda.set_sync_debug_mode(0)
    print(f"== {sets} sets x 32 cells: {len(caught)} synchronising calls in 2 steps")
    for w in caught[:8]:
        print(f"   at {w.filename}:{w.lineno}")
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        opt.step()
    torch.cuda.synchronize()
    print(f"   optimizer update alone: {(time.perf_counter() - t) / 10 * 1e3:.2f} ms")
    times = []
    for i in range(10):
        torch.cuda.synchronize()
        t = time.perf_counter()
        step(i)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    print(f"   step median {statistics.median(times) * 1e3:.1f} ms")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], acc_events=True, record_shapes=True) as prof:
        for i in range(4):
            step(i)
        torch.cuda.synchronize()
    ka = prof.key_averages()
    gpu = sum(e.self_device_time_total for e in ka) / 4 / 1e3
    host = sum(e.self_cpu_time_total for e in ka) / 4 / 1e3
    launches = sum(e.count for e in ka if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")) / 4
    print(f"   per step: GPU busy {gpu:.1f} ms, host (self CPU, profiled) {host:.1f} ms, kernel launches {launches:.0f}")
    print(ka.table(sort_by="self_device_time_total", row_limit=14, max_name_column_width=60))
    print(ka.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=60))
    # dtype conversions by input shape: a parameter is [out, in] (or [out]); an activation carries the cells
    casts = sorted((e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::_to_copy"),
                   key=lambda e: -e.device_time_total)
    print(f"   dtype conversions (aten::_to_copy) by input shape, {sum(e.device_time_total for e in casts) / 4 / 1e3:.2f} ms per step:")
    for e in casts[:12]:
        print(f"     {e.input_shapes} x{e.count / 4:.0f} per step: {e.device_time_total / 4 / 1e3:.3f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", type=int, nargs="+", default=[4, 256], help="sets of 32 cells per step, one profile each")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    for sets in args.sets:
        profile_sets(sets, torch.device("cuda"))
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
