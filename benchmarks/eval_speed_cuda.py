"""Evaluation speed on a CUDA device (issue 21, item 8): distgen's profiles on CUDA tensors, beside its CPU path and cell-eval2's.

For each pair (``benchmarks/celleval2_pairs``: Papalexi, 25 perturbations x 299 genes; Kang, 5 x 1,267 genes;
raw counts, and log-normalised copies for the cell-eval 0.8.2 profile), in one process:

* distgen on the CPU: the files read (``load_pair``) and the profile computed (``run_profile``), timed as
  one call (median of ``--repeats`` after a warm-up), ``--threads`` threads;
* distgen on CUDA: the same, with the cells moved by ``EvalData.to("cuda")`` after reading (the transfer is
  inside the timing, CUDA-synchronised), and the largest relative difference from the CPU values over every
  metric and perturbation (NaN on one side only counts as a difference);
* cell-eval2 0.20.0 in process (``compute_metrics``, the ``full`` metric set that distgen's ``celleval2``
  profile equals) on the CPU, and on the GPU (``EvalConfig(device="cuda")``) where cupy and a GPU are
  present; otherwise its row says why it did not run.

A markdown table goes to ``--out`` (raw numbers in a ``.json`` beside it). Parts that would start after
``--budget`` seconds are skipped and say so.

    POLARS_MAX_THREADS=1 python -m benchmarks.eval_speed_cuda --shared-data ../shared/data   # on a CUDA machine
    python -m benchmarks.eval_speed_cuda --dry-run --out /tmp/evc.md              # CPU, synthetic pair, seconds (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any

NO_TARGET_GENES = {"kang"}  # cell-type labels name no gene (as in eval_speed_ce2)
PROFILES = {"celleval2": "counts", "cell-eval-0.8.2": "log"}


def synthetic_pair(folder: str, seed: int = 0) -> tuple[str, str]:
    """A small raw-count pair (4 perturbations named after genes, 120 controls, 200 genes) for the dry run."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    from distgen.data.layout import write_h5ad

    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(200)]
    perts = ["G3", "G7", "G11", "G19"]
    paths = []
    for side in ("pred", "real"):
        labels = ["non-targeting"] * 120 + [p for p in perts for _ in range(50)]
        base = rng.gamma(0.6, 1.0, len(genes)) + 0.02
        rows = []
        for lab in labels:
            rate = base.copy()
            if lab != "non-targeting":
                k = int(lab[1:])
                rate[k : k + 5] *= 3.0
            rows.append(rng.poisson(rate * rng.uniform(2.0, 6.0)))
        a = ad.AnnData(X=np.asarray(rows, dtype=np.float32),
                       obs=pd.DataFrame({"target": labels}, index=[f"{side}{i}" for i in range(len(labels))]),
                       var=pd.DataFrame(index=genes))
        path = os.path.join(folder, f"synthetic_{side}.h5ad")
        write_h5ad(a, path, compression=None)
        paths.append(path)
    return paths[0], paths[1]


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def timed(fn: Any, repeats: int, device: Any = "cpu") -> tuple[float, Any]:
    """(median seconds of ``repeats`` calls after one warm-up call, the last result)."""
    out = fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def largest_difference(a: Any, b: Any) -> tuple[float, str]:
    """Largest relative difference between two ``MetricTable``s over every metric and perturbation, and where."""
    worst, where = 0.0, ""
    for col, va in a.values.items():
        vb = b.values.get(col)
        if vb is None:
            return math.inf, f"{col} missing"
        for p, x, y in zip(a.perts, va, vb):
            if math.isnan(x) and math.isnan(y):
                continue
            d = math.inf if (math.isnan(x) or math.isnan(y)) else abs(x - y) / max(abs(x), abs(y), 1e-12)
            if d > worst:
                worst, where = d, f"{col} @ {p}"
    return worst, where


def distgen_rows(pred: str, real: str, profile: str, pair: str, device: Any, repeats: int) -> list[dict[str, Any]]:
    from distgen.evaluation.profiles import resolve_profile, run_profile
    from distgen.pipeline.profile_eval import load_pair, target_resolution

    scale = "counts" if PROFILES[profile] == "counts" else "lognorm"

    def once(target: Any) -> Any:  # from the files, as eval_speed_ce2's in-process timings and cell-eval2's below
        data, _ = load_pair(pred, real, "target", "non-targeting", scale=scale)
        target_resolution(data, resolve_profile(profile), no_target_genes=pair in NO_TARGET_GENES)
        return run_profile(data.to(target), profile)

    cpu_s, cpu_table = timed(lambda: once("cpu"), repeats)
    rows = [{"pair": pair, "tool": "distgen", "profile": profile, "device": "cpu", "seconds": cpu_s}]
    target = "cpu" if device == "dry-run" else device  # the dry run takes the device path on the CPU
    dev_s, dev_table = timed(lambda: once(target), repeats, target)
    diff, where = largest_difference(cpu_table, dev_table)
    rows.append({"pair": pair, "tool": "distgen", "profile": profile, "device": f"{target} (via EvalData.to)", "seconds": dev_s,
                 "vs_cpu_seconds": cpu_s / dev_s, "largest_rel_diff_vs_cpu": diff, "where": where})
    return rows


def celleval2_rows(pred: str, real: str, pair: str, repeats: int, threads: int, cuda: bool) -> list[dict[str, Any]]:
    from cell_eval2 import EvalConfig, compute_metrics

    tmap = {"*": None} if pair in NO_TARGET_GENES else None
    rows = []
    for device in ("cpu", "cuda"):
        row: dict[str, Any] = {"pair": pair, "tool": "cell-eval2", "profile": "full", "device": device}
        if device == "cuda":
            try:
                import cupy  # noqa: F401
            except ImportError:
                rows.append({**row, "skipped": "cupy is not installed, so cell-eval2 has no GPU path here"})
                continue
            if not cuda:
                rows.append({**row, "skipped": "no CUDA device"})
                continue
        cfg = EvalConfig(metrics="full", num_threads=threads, target_gene_map=tmap, device=device)
        row["seconds"], _ = timed(lambda cfg=cfg: compute_metrics(pred, real, config=cfg), repeats)
        rows.append(row)
    return rows


def markdown(res: dict[str, Any]) -> str:
    lines = [f"Evaluation speed ({res['device']}; {res['hardware']}; {res['threads']} CPU thread(s); medians of {res['repeats']} "
             f"after a warm-up; `{res['command']}`)", "",
             "| pair | tool | profile | device | seconds | CPU / device | largest relative difference from distgen's CPU values |",
             "|---|---|---|---|---:|---:|---|"]
    for r in res["rows"]:
        if "seconds" not in r:
            lines.append(f"| {r['pair']} | {r['tool']} | {r['profile']} | {r['device']} | | | {r.get('skipped') or r.get('error')} |")
            continue
        ratio = f"{r['vs_cpu_seconds']:.1f}x" if "vs_cpu_seconds" in r else ""
        diff = f"{r['largest_rel_diff_vs_cpu']:.1e} ({r['where']})" if "largest_rel_diff_vs_cpu" in r else ""
        lines.append(f"| {r['pair']} | {r['tool']} | {r['profile']} | {r['device']} | {r['seconds']:.3f} | {ratio} | {diff} |")
    return "\n".join(lines) + "\n"


def hardware() -> str:
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{gpu}, {platform.processor() or platform.machine()}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", default=None, help="the shared data folder (the pairs are built from it)")
    ap.add_argument("--pairs", default="papalexi,kang")
    ap.add_argument("--work", default=None, help="folder for the pair files (reused when present)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of the CPU rows (torch, numba, cell-eval2)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which remaining parts are skipped")
    ap.add_argument("--dry-run", action="store_true", help="CPU only, a synthetic pair, 1 repeat: checks the script itself")
    ap.add_argument("--out", default="eval_speed_cuda.md")
    args = ap.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not args.dry_run and not cuda:
        ap.error("no CUDA device; run with --dry-run for the CPU check of the script itself")
    if not args.dry_run and args.shared_data is None:
        ap.error("--shared-data is required (or --dry-run)")
    # thread counts set at run time (the process's environment is left alone: numba refuses a NUMBA_NUM_THREADS that
    # changes after its threads started); polars reads POLARS_MAX_THREADS at import, so set it in the command line
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    device: Any = "dry-run" if args.dry_run else torch.device("cuda")
    repeats = 1 if args.dry_run else args.repeats
    work = args.work or tempfile.mkdtemp(prefix="evalcuda_")
    os.makedirs(work, exist_ok=True)
    from benchmarks.eval_speed_ce2 import lognorm_copy

    start = time.perf_counter()
    res: dict[str, Any] = {"device": "cpu (dry run)" if args.dry_run else "cuda", "hardware": hardware(), "threads": args.threads,
                           "repeats": repeats, "command": "python -m benchmarks.eval_speed_cuda " + " ".join(argv or sys.argv[1:]),
                           "rows": []}
    for pair in (["synthetic"] if args.dry_run else args.pairs.split(",")):
        pred, real = (os.path.join(work, f"{pair}_{s}.h5ad") for s in ("pred", "real"))
        logs = tuple(os.path.join(work, f"{pair}_{s}_log.h5ad") for s in ("pred", "real"))
        if not all(os.path.isfile(f) for f in (pred, real, *logs)):
            if args.dry_run:
                pred, real = synthetic_pair(work)
            else:
                from benchmarks.celleval2_pairs import make_pair

                pred, real = make_pair(pair, args.shared_data, work)
            lognorm_copy(pred, logs[0])
            lognorm_copy(real, logs[1])
        parts: list[tuple[str, Any, tuple[Any, ...]]] = [
            (f"distgen {p}", distgen_rows, (*((pred, real) if PROFILES[p] == "counts" else logs), p, pair, device, repeats))
            for p in PROFILES]
        parts.append(("cell-eval2", celleval2_rows, (pred, real, pair, repeats, args.threads, cuda)))
        for name, part, part_args in parts:
            if time.perf_counter() - start > args.budget:
                res["rows"].append({"pair": pair, "tool": name, "profile": "", "device": "", "skipped": f"past the {args.budget:.0f} s budget"})
                continue
            try:
                rows = part(*part_args)
            except Exception as exc:
                rows = [{"pair": pair, "tool": name, "profile": "", "device": "", "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                         "traceback": traceback.format_exc(limit=6)}]
            for r in rows:
                print(json.dumps({k: v for k, v in r.items() if k != "traceback"}), flush=True)
            res["rows"].extend(rows)
    res["total_s"] = time.perf_counter() - start
    from benchmarks.gpu_check import write_results

    write_results(args.out, markdown(res), res)
    return 1 if any("error" in r for r in res["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
