"""Speed of ``distgen evaluate`` vs ``cell-eval run`` on the same prediction/truth pair, and their agreement.

Builds the pair from the bundled Norman K562 data: test = every two-gene combination (15), train =
singles + half of the controls; predictions = the ``additive`` baseline (control + sum of single
deltas) applied to the other half of the controls. Optionally (``--synthetic P``) a larger synthetic
pair with ``P`` perturbations. Then runs, on the same files:

* cold: ``cell-eval run --profile full --skip-metrics clustering_agreement`` and
  ``distgen evaluate --baselines '' --no-ceiling --no-plots`` (same metric set) as subprocesses;
* warm: both in-process a second time (cell-eval's numba kernels compiled, imports done);
* the full ``distgen evaluate`` (all baselines, ceiling, plots) into ``--out``.

Prints the time ratios and the largest per-metric disagreement.

    python benchmarks/eval_speed.py --out /tmp/norman_eval [--synthetic 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from distgen.data.layout import write_h5ad

CONTROL, PERT_COL = "non-targeting", "target_gene"
CELL_EVAL_SET = (
    "mse,mae,mse_delta,mae_delta,pearson_delta,discrimination_score_l1,discrimination_score_l2,discrimination_score_cosine,"
    "overlap_at_N,overlap_at_50,overlap_at_100,overlap_at_200,overlap_at_500,precision_at_N,precision_at_50,precision_at_100,"
    "precision_at_200,precision_at_500,de_direction_match,de_spearman_lfc_sig,de_sig_genes_recall,de_spearman_sig,roc_auc,pr_auc,"
    "pearson_edistance"
)


def norman_pair(folder: str) -> dict[str, str]:
    """Write train/real/pred h5ad files from the bundled Norman data (additive-baseline predictions)."""
    import anndata as ad
    import pandas as pd
    import torch

    from distgen.data import layout
    from distgen.data.groups import draw_order
    from distgen.data.prepared import control_draw
    from distgen.datasets import norman_k562
    from distgen.models import models
    from distgen.seeds import content_keys
    from distgen.types import labels_in, vocabulary

    a = norman_k562()
    X = a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)
    cond = a.obs["condition"].astype(str).to_numpy()
    ctrl_idx = np.flatnonzero(cond == "control")
    rng = np.random.default_rng(0)
    rng.shuffle(ctrl_idx)
    half = len(ctrl_idx) // 2
    pairs = sorted({c for c in cond if "+" in c})
    test = np.isin(cond, pairs)
    labels = np.where(cond == "control", CONTROL, cond)

    def make(rows: np.ndarray, x: np.ndarray | None = None) -> ad.AnnData:
        out = ad.AnnData(X=np.asarray(X[rows] if x is None else x, dtype=np.float32),
                         obs=pd.DataFrame({PERT_COL: labels[rows]}, index=[f"c{i}" for i in range(len(rows))]))
        out.var_names = [str(g) for g in a.var_names]
        return out

    train_rows = np.concatenate([np.flatnonzero(~test & (cond != "control")), ctrl_idx[:half]])
    real_rows = np.concatenate([np.flatnonzero(test), ctrl_idx[half:]])
    paths = {k: os.path.join(folder, f"{k}.h5ad") for k in ("train", "real", "pred")}
    write_h5ad(make(train_rows), paths["train"], compression=None)
    real = make(real_rows)
    write_h5ad(real, paths["real"], compression=None)
    genes = tuple(real.var_names)
    train_cells, real_cells = layout.read(make(train_rows), PERT_COL, CONTROL), layout.read(real, PERT_COL, CONTROL)
    info = vocabulary([train_cells, real_cells])
    model = models.get("additive")().fit(train_cells.to_table(info))

    def to_labels(names: list[str]) -> Any:
        return labels_in(info, [real_cells.atoms(p) for p in names], [info.contexts[0]] * len(names), [info.batches[0]] * len(names))
    ctrl = torch.from_numpy(np.asarray(X[ctrl_idx[half:]], dtype=np.float32))
    ctrl = ctrl[torch.from_numpy(draw_order(content_keys(ctrl, genes)))]  # the pool in the order control_draw's positions refer to
    canonical = dict(zip(labels[real_rows].tolist(), real_cells.conditions.tolist()))  # the file's label -> the condition read
    xs, labs = [], []
    for p in pairs:  # predict each pair from the held-out controls, as many cells as the truth has, drawn as distgen draws them
        n = int((cond == p).sum())
        pick = ctrl[torch.from_numpy(control_draw(ctrl.shape[0], n, canonical[p], str(real_cells.contexts[0]), str(real_cells.batches[0])))]
        xs.append(model.predict(pick[None], torch.ones(1, n, dtype=torch.bool), to_labels([p]))[0].clamp_min(0).numpy())
        labs += [p] * n
    pred = ad.AnnData(X=np.concatenate(xs + [ctrl.numpy()]).astype(np.float32),
                      obs=pd.DataFrame({PERT_COL: labs + [CONTROL] * ctrl.shape[0]}, index=[f"p{i}" for i in range(len(labs) + ctrl.shape[0])]))
    pred.var_names = list(genes)
    write_h5ad(pred, paths["pred"], compression=None)
    return paths


def synthetic_pair(folder: str, n_perts: int) -> dict[str, str]:
    """A larger seeded pair: ``n_perts`` perturbations x 60 cells, 1,000 controls, 1,000 genes."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "evaluate"))
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    g, n_c, n_p = 1000, 1000, 60
    base = rng.gamma(1.2, 1.0, g)

    def file(noise: float) -> ad.AnnData:
        labels = [CONTROL] * n_c + [f"P{i}" for i in range(n_perts) for _ in range(n_p)]
        rates = np.repeat(base[None], len(labels), 0)
        for i in range(n_perts):
            eff = np.ones(g)
            eff[rng.choice(g, 30, replace=False)] = rng.choice([0.2, 3.0], 30)
            rates[n_c + i * n_p : n_c + (i + 1) * n_p] *= eff
        x = rng.poisson(rates).astype(np.float64)
        x = np.log1p(x / x.sum(1, keepdims=True) * 1e4 + rng.normal(0, noise, x.shape).clip(0) * (x > 0))
        out = ad.AnnData(X=x.astype(np.float32), obs=pd.DataFrame({PERT_COL: labels}, index=[f"c{i}" for i in range(len(labels))]))
        out.var_names = [f"G{i}" for i in range(g)]
        return out

    paths = {k: os.path.join(folder, f"{k}.h5ad") for k in ("real", "pred")}
    write_h5ad(file(0.0), paths["real"], compression=None)
    write_h5ad(file(0.3), paths["pred"], compression=None)
    return paths


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "distgen_eval_norman"))
    ap.add_argument("--synthetic", type=int, default=0, help="use a synthetic pair with this many perturbations instead of Norman")
    ap.add_argument("--threads", type=int, default=1, help="threads for both tools (torch / numba)")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "NUMBA_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    os.environ.update(env)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    work = tempfile.mkdtemp(prefix="distgen_evalspeed_")
    paths = synthetic_pair(work, args.synthetic) if args.synthetic else norman_pair(work)
    bin_dir = os.path.dirname(sys.executable)
    ce_out, dg_out = os.path.join(work, "ce"), os.path.join(work, "dg")

    cold_ce = timed([os.path.join(bin_dir, "cell-eval"), "run", "-ap", paths["pred"], "-ar", paths["real"], "--pert-col", PERT_COL,
                     "--control-pert", CONTROL, "--num-threads", str(args.threads), "--profile", "full",
                     "--skip-metrics", "clustering_agreement", "-o", ce_out], env)
    cold_dg = timed([sys.executable, "-m", "distgen", "evaluate", "--pred", paths["pred"], "--real", paths["real"], "--pert-col", PERT_COL,
                     "--control", CONTROL, "--baselines", "", "--no-ceiling", "--no-plots", "--quiet", "--metrics", CELL_EVAL_SET,
                     "--out", dg_out], env)

    import anndata as ad
    import pandas as pd
    from cell_eval import MetricsEvaluator

    from distgen.evaluation.suite import run_metrics
    from distgen.pipeline.evaluate import load_pair

    real, pred = ad.read_h5ad(paths["real"]), ad.read_h5ad(paths["pred"])
    for _ in range(2):  # the first call compiles cell-eval's numba kernels; time the second
        t = time.perf_counter()
        ev = MetricsEvaluator(adata_pred=pred.copy(), adata_real=real.copy(), control_pert=CONTROL, pert_col=PERT_COL,
                              num_threads=args.threads, outdir=os.path.join(work, "ce2"))
        ce, _ = ev.compute(profile="full", skip_metrics=["clustering_agreement"], write_csv=False)
        warm_ce = time.perf_counter() - t
    run_metrics(load_pair(pred, real, PERT_COL, CONTROL)[0], ["mse", "overlap_at_N"])  # same courtesy for distgen
    t = time.perf_counter()
    data, _ = load_pair(pred, real, PERT_COL, CONTROL)
    table = run_metrics(data, CELL_EVAL_SET.split(","), params={f"discrimination_score_{m}": {"exclude": "label"} for m in ("l1", "l2", "cosine")})
    warm_dg = time.perf_counter() - t

    ce = ce.to_pandas().set_index("perturbation")
    ours = pd.DataFrame(table.rows()).set_index("perturbation")
    worst = max((float(np.nanmax(np.abs(ce[c].astype(float) - ours.loc[ce.index, c].astype(float)))), c) for c in ce.columns if c in ours)

    full = None
    if not args.synthetic:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "distgen", "evaluate", "--pred", paths["pred"], "--real", paths["real"], "--train", paths["train"],
                        "--pert-col", PERT_COL, "--control", CONTROL, "--out", args.out, "--quiet"], check=True, env=env)
        full = time.perf_counter() - t

    what = f"synthetic {args.synthetic} perturbations" if args.synthetic else "Norman K562, 15 held-out pairs, additive baseline"
    print(f"pair: {what}; "
          f"{real.n_obs} real x {real.n_vars} genes; threads={args.threads}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    print(f"cold (CLI, imports + JIT): cell-eval {cold_ce:.1f} s, distgen {cold_dg:.1f} s, ratio {cold_ce / cold_dg:.1f}x")
    print(f"warm (in-process, 2nd run): cell-eval {warm_ce:.2f} s, distgen {warm_dg:.2f} s, ratio {warm_ce / warm_dg:.1f}x")
    print(f"largest |cell-eval - distgen| over {len(ce.columns)} metrics x {len(ce.index)} perturbations: {worst[0]:.2g} ({worst[1]})")
    if full is not None:
        print(f"full distgen evaluate (+4 baselines, ceiling, distributional metrics, plots): {full:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
