"""Evaluation speed: distgen vs cell-eval2 0.20.0 (CPU) and cell-eval 0.8.2, same files, same metric set, 1 thread.

Pairs (``benchmarks/celleval2_pairs.py``, from ``../shared/data``): Papalexi ECCITE-seq (25
perturbations x 299 genes, 14,728 real cells) and Kang PBMC (5 x 1,267 genes, 954 real cells).

* vs cell-eval2: raw counts; ``cell-eval2 run --profile full`` against distgen's ``celleval2``
  profile (the same 54 metrics, equal to < 1e-6).
* vs cell-eval 0.8.2: the same pairs log-normalised (``normalize_total(1e4)`` + ``log1p``);
  ``cell-eval run --profile full --skip-metrics clustering_agreement`` against distgen's
  ``cell-eval-0.8.2`` profile (the same 25 metrics).

Each side runs as a fresh process per timing ("cold": each tool's own command line, ``distgen
evaluate --profile ...`` for distgen: imports, numba JIT where cached or not, file reading,
metrics, result files), the tools ALTERNATING, after one untimed warm-up run each; and in-process
a second time ("warm": imports done, JIT compiled, from the files). Medians over ``--repeats`` of
the wall time and of the CPU time (user + system; less sensitive to other jobs on a shared
machine); the load average is printed with the table.

    python -m benchmarks.eval_speed_ce2 --shared-data ../shared/data [--repeats 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
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

    from distgen.data.layout import write_h5ad

    a = ad.read_h5ad(path)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    write_h5ad(a, out, compression=None)
    return out


def pair_files(name: str, shared_data: str | None, work: str) -> tuple[str, str, str, str]:
    """``(pred, real, pred_log, real_log)`` paths of pair ``name`` in ``work``, made from ``shared_data`` (counts by
    ``celleval2_pairs.make_pair``, then ``lognorm_copy``) where any of the four is missing; the files there are reused."""
    pred, real = (os.path.join(work, f"{name}_{s}.h5ad") for s in ("pred", "real"))
    pred_log, real_log = (os.path.join(work, f"{name}_{s}_log.h5ad") for s in ("pred", "real"))
    if not all(os.path.isfile(f) for f in (pred, real, pred_log, real_log)):
        if shared_data is None:
            raise SystemExit(f"{work} lacks the {name} pair files: pass --shared-data (the folder of the small datasets, "
                             "e.g. /work/shared/data) to make them there")
        from benchmarks.celleval2_pairs import make_pair

        os.makedirs(work, exist_ok=True)
        pred, real = make_pair(name, shared_data, work)
        lognorm_copy(pred, pred_log)
        lognorm_copy(real, real_log)
    return pred, real, pred_log, real_log


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
    return [os.path.join(bin_dir, "distgen"), "evaluate", "--profile", profile, "--pred", pred, "--real", real, "--pert-col", "target",
            "--control", "non-targeting", "--out", out, "--quiet", "--overwrite",
            *(["--no-target-genes"] if pair in NO_TARGET_GENES and profile == "celleval2" else [])]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cold(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of ``cmd`` as a fresh process (CPU: user + system of the child and its children)."""
    env = {**os.environ, **THREADS}
    c, t = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, _children_cpu() - c


def warm_times(pred: str, real: str, pred_log: str, real_log: str, repeats: int, pair: str = "") -> dict[str, tuple[float, float]]:
    """In-process medians (second call on) of (wall, process CPU) seconds, alternating the tools."""
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

    fns = {"cell-eval2": ce2, "distgen:celleval2": dg2, "cell-eval": ce, "distgen:cell-eval-0.8.2": dg082}
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up: imports, numba compilation
    for _ in range(repeats):
        for name, f in fns.items():
            c, t = time.process_time(), time.perf_counter()
            f()
            runs[name].append((time.perf_counter() - t, time.process_time() - c))
    return {k: _medians(v) for k, v in runs.items()}


def _medians(v: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pairs", default="papalexi,kang")
    ap.add_argument("--work", default=None, help="folder for the pair files (reused when present) and outputs (default: a new temp folder)")
    args = ap.parse_args(argv)
    if args.shared_data is None:
        ap.error("--shared-data is required")
    os.environ.update(THREADS)
    work = args.work or tempfile.mkdtemp(prefix="evalspeed_")
    os.makedirs(work, exist_ok=True)
    rows = []
    for name in args.pairs.split(","):
        pred, real, pred_log, real_log = pair_files(name, args.shared_data, work)
        files = {"cell-eval2": (pred, real), "distgen:celleval2": (pred, real), "cell-eval": (pred_log, real_log),
                 "distgen:cell-eval-0.8.2": (pred_log, real_log)}
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in files}
        load = [loadavg()]
        for rep in range(args.repeats + 1):
            for tool, (p, r) in files.items():
                out = os.path.join(work, f"{name}_{tool.replace(':', '_')}_{rep}")
                os.makedirs(out, exist_ok=True)
                t = cold(commands(tool, p, r, out, name))
                if rep:  # the first round warms the file cache and numba's on-disk cache
                    times[tool].append(t)
        med = {k: _medians(v) for k, v in times.items()}
        warm = warm_times(pred, real, pred_log, real_log, args.repeats, name)
        load.append(loadavg())
        rows.append((name, med, warm, load))
        print(f"{name}: cold {med}  warm {warm}  load {load}", flush=True)
    print("\nwall seconds (CPU seconds in brackets: user + system of the process), medians; ratio = reference / distgen")
    print("\n| pair | reference | metrics | reference cold | distgen cold | ratio wall (CPU) | reference warm | distgen warm "
          "| ratio wall (CPU) | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, med, warm, load in rows:
        for ref, ours, n in (("cell-eval2", "distgen:celleval2", 54), ("cell-eval", "distgen:cell-eval-0.8.2", 25)):
            (rw, rc), (ow, oc) = med[ref], med[ours]
            (wrw, wrc), (wow, woc) = warm[ref], warm[ours]
            print(f"| {name} | {ref} | {n} | {rw:.2f} s ({rc:.2f}) | {ow:.2f} s ({oc:.2f}) | {rw / ow:.1f}x ({rc / oc:.1f}x) | "
                  f"{wrw:.3f} s ({wrc:.3f}) | {wow:.3f} s ({woc:.3f}) | {wrw / wow:.1f}x ({wrc / woc:.1f}x) | {load[0]} -> {load[1]} |")
    print(f"\nload average at the end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
