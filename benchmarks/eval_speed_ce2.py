"""Evaluation speed: distgen vs cell-eval2 0.20.0 (CPU) and cell-eval 0.8.2, same files, same metric set, 1 thread.

Pairs (``benchmarks/celleval2_pairs.py``, from ``../shared/data``): Papalexi ECCITE-seq (25
perturbations x 299 genes, 14,728 real cells) and Kang PBMC (5 x 1,267 genes, 954 real cells).

* vs cell-eval2: raw counts; ``cell-eval2 run --profile full`` against distgen's ``celleval2``
  profile (the same 54 metrics, equal to < 1e-6).
* vs cell-eval 0.8.2: the same pairs log-normalised (``normalize_total(1e4)`` + ``log1p``);
  ``cell-eval run --profile full --skip-metrics clustering_agreement`` against distgen's
  ``cell-eval-0.8.2`` profile (the same 25 metrics).

Each side runs as a fresh process per timing ("cold": imports, numba JIT where cached or not, file
reading, metrics, result CSV), the tools ALTERNATING, after one untimed warm-up run each; and
in-process a second time ("warm": imports done, JIT compiled, from the files). Medians over
``--repeats``; the load average is printed with the table.

    python -m benchmarks.eval_speed_ce2 --shared-data ../shared/data [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

THREADS = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "POLARS_MAX_THREADS": "1"}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def lognorm_copy(path: str, out: str) -> str:
    """The pair file normalised to 1e4 counts per cell and log1p'd (cell-eval 0.8.2 scores log data)."""
    import anndata as ad
    import scanpy as sc

    a = ad.read_h5ad(path)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    a.write_h5ad(out)
    return out


def distgen_worker(profile: str, pred: str, real: str, out: str) -> None:
    """What ``distgen evaluate --profile PROFILE`` does for the metrics: read, compute, write the table."""
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from distgen.evaluation.profiles import resolve_profile, run_profile
    from distgen.evaluation.report import write_csv
    from distgen.pipeline.evaluate import load_pair

    data, _ = load_pair(pred, real, "target", "non-targeting", scale=resolve_profile(profile).scale)
    write_csv(run_profile(data, profile), out)


NO_TARGET_GENES = {"kang"}  # cell-type labels name no gene: cell-eval2 asks to be told so


def commands(tool: str, pred: str, real: str, out: str, pair: str = "") -> list[str]:
    bin_dir = os.path.dirname(sys.executable)
    if tool == "cell-eval2":
        return [os.path.join(bin_dir, "cell-eval2"), "run", "-ap", pred, "-ar", real, "--profile", "full", "-o", out,
                "--set", "num_threads=1", *(["--no-target-genes"] if pair in NO_TARGET_GENES else [])]
    if tool == "cell-eval":
        return [os.path.join(bin_dir, "cell-eval"), "run", "-ap", pred, "-ar", real, "--pert-col", "target", "--control-pert",
                "non-targeting", "--num-threads", "1", "--profile", "full", "--skip-metrics", "clustering_agreement", "-o", out]
    profile = "celleval2" if tool == "distgen:celleval2" else "cell-eval-0.8.2"
    return [sys.executable, "-m", "benchmarks.eval_speed_ce2", "--worker", profile, pred, real, os.path.join(out, "metrics.csv")]


def cold(cmd: list[str]) -> float:
    env = {**os.environ, **THREADS}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def warm_times(pred: str, real: str, pred_log: str, real_log: str, repeats: int, pair: str = "") -> dict[str, float]:
    """In-process medians (second call on), alternating the tools."""
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from cell_eval import MetricsEvaluator
    from cell_eval2 import EvalConfig, compute_metrics

    from distgen.evaluation.profiles import run_profile
    from distgen.pipeline.evaluate import load_pair

    def ce2() -> None:
        tmap = {"*": None} if pair in NO_TARGET_GENES else None
        compute_metrics(pred, real, config=EvalConfig(metrics="full", num_threads=1, target_gene_map=tmap))

    def ce() -> None:
        import anndata as ad

        ev = MetricsEvaluator(adata_pred=ad.read_h5ad(pred_log), adata_real=ad.read_h5ad(real_log), control_pert="non-targeting",
                              pert_col="target", num_threads=1, outdir=tempfile.mkdtemp())
        ev.compute(profile="full", skip_metrics=["clustering_agreement"], write_csv=False)

    def dg2() -> None:
        run_profile(load_pair(pred, real, "target", "non-targeting", scale="counts")[0], "celleval2")

    def dg082() -> None:
        run_profile(load_pair(pred_log, real_log, "target", "non-targeting")[0], "cell-eval-0.8.2")

    runs: dict[str, list[float]] = {"cell-eval2": [], "distgen:celleval2": [], "cell-eval": [], "distgen:cell-eval-0.8.2": []}
    fns = {"cell-eval2": ce2, "distgen:celleval2": dg2, "cell-eval": ce, "distgen:cell-eval-0.8.2": dg082}
    for f in fns.values():
        f()  # warm-up: imports, numba compilation
    for _ in range(repeats):
        for name, f in fns.items():
            t = time.perf_counter()
            f()
            runs[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in runs.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pairs", default="papalexi,kang")
    ap.add_argument("--worker", nargs=4, metavar=("PROFILE", "PRED", "REAL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        distgen_worker(*args.worker)
        return 0
    if args.shared_data is None:
        ap.error("--shared-data is required")
    os.environ.update(THREADS)
    from benchmarks.celleval2_pairs import make_pair

    work = tempfile.mkdtemp(prefix="evalspeed_")
    rows = []
    for name in args.pairs.split(","):
        pred, real = make_pair(name, args.shared_data, work)
        pred_log = lognorm_copy(pred, os.path.join(work, f"{name}_pred_log.h5ad"))
        real_log = lognorm_copy(real, os.path.join(work, f"{name}_real_log.h5ad"))
        files = {"cell-eval2": (pred, real), "distgen:celleval2": (pred, real), "cell-eval": (pred_log, real_log),
                 "distgen:cell-eval-0.8.2": (pred_log, real_log)}
        times: dict[str, list[float]] = {k: [] for k in files}
        for rep in range(args.repeats + 1):
            for tool, (p, r) in files.items():
                out = os.path.join(work, f"{name}_{tool.replace(':', '_')}_{rep}")
                os.makedirs(out, exist_ok=True)
                t = cold(commands(tool, p, r, out, name))
                if rep:  # the first round warms the file cache and numba's on-disk cache
                    times[tool].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        warm = warm_times(pred, real, pred_log, real_log, args.repeats, name)
        rows.append((name, med, warm))
        print(f"{name}: cold {med}  warm {warm}  load {loadavg()}", flush=True)
    print("\n| pair | reference | metrics | reference cold | distgen cold | ratio | reference warm | distgen warm | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, med, warm in rows:
        for ref, ours, n in (("cell-eval2", "distgen:celleval2", 54), ("cell-eval", "distgen:cell-eval-0.8.2", 25)):
            print(f"| {name} | {ref} | {n} | {med[ref]:.2f} s | {med[ours]:.2f} s | {med[ref] / med[ours]:.1f}x | "
                  f"{warm[ref]:.2f} s | {warm[ours]:.2f} s | {warm[ref] / warm[ours]:.1f}x |")
    print(f"\nload average at the end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
