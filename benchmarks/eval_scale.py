"""Evaluation and reporting at genome-wide scale: seconds and peak memory of each command against the size.

Writes seeded synthetic prediction/truth pairs in distgen's evaluation layout (``target`` column,
``non-targeting`` controls, CSR ``X``) with ``P`` perturbations x ``G`` genes x ``N`` cells each, raw counts (for the
counts profiles ``celleval2`` and ``vcc2026``) and their log-normalisation (for the default evaluation and
``cell-eval-0.8.2``), then runs each command in a fresh process under ``/usr/bin/time -v`` with one thread:

* ``evaluate``: ``distgen evaluate`` with its defaults (baselines, ceiling, plots and report.html);
* ``celleval2`` / ``vcc2026`` / ``cell-eval-0.8.2``: ``distgen evaluate --profile NAME``;
* ``compare``: ``distgen compare`` of the default evaluation with a copy of itself;
* ``report``: ``python -m distgen.report`` on the default evaluation's folder (the page written again).

Prints one table: per size and command, wall seconds, CPU seconds (user + system), peak RSS in MB, that peak as a
multiple of the two dense float32 tables (``2 x cells x genes x 4`` bytes: prediction and truth as the evaluation holds
them; the interpreter and its imports, ~320 MB, are in the peak too) and, for the commands that write one, the size of
``report.html`` in KB. A command that fails prints its last lines and reads
``fail``.

    python -m benchmarks.eval_scale --perts 25,100,400 --genes 300,2000 --cells 50 --work /tmp/evscale
    python -m benchmarks.eval_scale --quick          # 25 x 300 and 100 x 300, every command (2 minutes on a busy 2-core box)
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

CONTROL, PERT_COL = "non-targeting", "target"
COMMANDS = ("evaluate", "celleval2", "vcc2026", "cell-eval-0.8.2", "compare", "report")


def write_pair(folder: str, n_perts: int, n_genes: int, n_cells: int, n_ctrl: int, seed: int = 0) -> dict[str, str]:
    """Write ``{real,pred}_{counts,log}.h5ad`` into ``folder``: seeded negative-binomial counts, CSR float32.

    Each perturbation changes 20 genes (knock-down of its own target gene included); the prediction scales each
    effect by a random factor and draws its own cells, so every metric takes a spread of values.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from distgen.data.layout import write_h5ad

    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    perts = [genes[i % n_genes] if i < n_genes else f"{genes[i % n_genes]}_{i}" for i in range(n_perts)]
    base = rng.gamma(0.6, 1.5, n_genes)
    hits = [np.unique(np.r_[i % n_genes, rng.choice(n_genes, 19, replace=False)]) for i in range(n_perts)]
    folds = [rng.choice([0.1, 0.3, 3.0, 5.0], len(h)) for h in hits]
    scale = rng.uniform(0.0, 1.2, n_perts)

    def counts(rate: np.ndarray, n: int) -> sp.csr_matrix:
        x = rng.negative_binomial(3, 3 / (3 + np.broadcast_to(rate, (n, n_genes))))
        return sp.csr_matrix(x.astype(np.float32))

    def lognorm(x: sp.csr_matrix) -> sp.csr_matrix:
        lib = np.asarray(x.sum(1)).ravel()
        y = sp.diags((1e4 / np.maximum(lib, 1)).astype(np.float32)) @ x
        y.data = np.log1p(y.data)
        return y.astype(np.float32).tocsr()

    labels = [CONTROL] * n_ctrl + [p for p in perts for _ in range(n_cells)]
    obs = pd.DataFrame({PERT_COL: labels}, index=[f"c{i}" for i in range(len(labels))])
    paths = {}
    for kind in ("real", "pred"):
        blocks = [counts(base, n_ctrl)]
        for i in range(n_perts):
            rate = base.copy()
            rate[hits[i]] *= folds[i] ** (1.0 if kind == "real" else scale[i])
            blocks.append(counts(rate, n_cells))
        x = sp.vstack(blocks, format="csr")
        for scale_name, mat in (("counts", x), ("log", lognorm(x))):
            a = ad.AnnData(X=mat, obs=obs.copy())
            a.var_names = genes
            paths[f"{kind}_{scale_name}"] = os.path.join(folder, f"{kind}_{scale_name}.h5ad")
            write_h5ad(a, paths[f"{kind}_{scale_name}"], compression=None)
    return paths


def timed(cmd: list[str], env: dict[str, str], timeout: float) -> dict[str, float] | None:
    """Run ``cmd`` under ``/usr/bin/time -v``: {'wall', 'cpu', 'rss_mb'}, or None when it failed."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  timed out after {timeout:.0f} s: {' '.join(cmd)}", file=sys.stderr)
        return None
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(f"  failed ({r.returncode}): {' '.join(cmd)}\n" + "\n".join(r.stderr.splitlines()[-15:]), file=sys.stderr)
        return None

    def field(name: str) -> float:
        m = re.search(rf"{re.escape(name)}: ([0-9.]+)", r.stderr)
        return float(m.group(1)) if m else float("nan")

    return {"wall": wall, "cpu": field("User time (seconds)") + field("System time (seconds)"),
            "rss_mb": field("Maximum resident set size (kbytes)") / 1024}


def commands(paths: dict[str, str], out: str) -> dict[str, list[str]]:
    """Each benchmarked command line (the default evaluation first: compare and report read its folder)."""
    py = [sys.executable, "-m", "distgen.cli", "evaluate", "--quiet", "--overwrite"]
    log = ["--pred", paths["pred_log"], "--real", paths["real_log"]]
    cnt = ["--pred", paths["pred_counts"], "--real", paths["real_counts"]]
    return {
        "evaluate": [*py, *log, "--out", os.path.join(out, "evaluate")],
        "celleval2": [*py, *cnt, "--profile", "celleval2", "--out", os.path.join(out, "celleval2")],
        "vcc2026": [*py, *cnt, "--profile", "vcc2026", "--out", os.path.join(out, "vcc2026")],
        "cell-eval-0.8.2": [*py, *log, "--profile", "cell-eval-0.8.2", "--out", os.path.join(out, "ce082")],
        "compare": [sys.executable, "-m", "distgen.cli", "compare", os.path.join(out, "evaluate"),
                    os.path.join(out, "evaluate_copy"), "--out", os.path.join(out, "compare")],
        "report": [sys.executable, "-m", "distgen.report", os.path.join(out, "evaluate"),
                   "--out", os.path.join(out, "report_again.html")],
    }


def page_kb(out: str, name: str) -> float | None:
    path = {"evaluate": "evaluate/report.html", "celleval2": "celleval2/report.html", "vcc2026": "vcc2026/report.html",
            "cell-eval-0.8.2": "ce082/report.html", "report": "report_again.html"}.get(name)
    full = os.path.join(out, path) if path else None
    return os.path.getsize(full) / 1024 if full and os.path.exists(full) else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--perts", default="25,100,400", help="comma-separated numbers of perturbations")
    ap.add_argument("--genes", default="300,2000", help="comma-separated numbers of genes")
    ap.add_argument("--cells", type=int, default=50, help="cells per perturbation (default 50)")
    ap.add_argument("--controls", type=int, default=1000, help="control cells (default 1000)")
    ap.add_argument("--commands", default=",".join(COMMANDS), help=f"subset of {','.join(COMMANDS)}")
    ap.add_argument("--work", default=None, help="folder for the pairs and outputs (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a command is given up (default 600)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="25 x 300 and 100 x 300, 30 cells, 300 controls")
    args = ap.parse_args(argv)
    if args.quick:
        args.perts, args.genes, args.cells, args.controls = "25,100", "300", 30, 300
    chosen = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(COMMANDS))
    if unknown:
        ap.error(f"unknown --commands {unknown}; choose from {', '.join(COMMANDS)}")
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                            "NUMBA_NUM_THREADS")}}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
    work = args.work or tempfile.mkdtemp(prefix="distgen-evscale-")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}, "
          f"threads {args.threads}, cells/pert {args.cells}, controls {args.controls}, work {work}")
    print("| perts | genes | cells | command | wall s | CPU s | peak MB | peak / tables | page KB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n_genes, n_perts in itertools.product(*( [int(v) for v in s.split(",")] for s in (args.genes, args.perts))):
        folder = os.path.join(work, f"p{n_perts}_g{n_genes}_c{args.cells}")
        os.makedirs(folder, exist_ok=True)
        paths = write_pair(folder, n_perts, n_genes, args.cells, args.controls)
        cmds = commands(paths, folder)
        n_total = args.controls + n_perts * args.cells
        for name in chosen:
            if name in ("compare", "report") and not os.path.exists(os.path.join(folder, "evaluate", "metrics.csv")):
                print(f"| {n_perts} | {n_genes} | {n_total} | {name} | skipped: no default evaluation | | | | |", flush=True)
                continue
            if name == "compare":
                shutil.rmtree(os.path.join(folder, "evaluate_copy"), ignore_errors=True)
                shutil.copytree(os.path.join(folder, "evaluate"), os.path.join(folder, "evaluate_copy"))
            r = timed(cmds[name], env, args.timeout)
            kb = page_kb(folder, name)
            cells = f"| {n_perts} | {n_genes} | {n_total} | {name} |"
            tables_mb = 2 * n_total * n_genes * 4 / 2**20
            print(f"{cells} fail | | | | |" if r is None else
                  f"{cells} {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | {r['rss_mb'] / tables_mb:.1f} | "
                  f"{'' if kb is None else f'{kb:.0f}'} |", flush=True)
    print(f"# load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
