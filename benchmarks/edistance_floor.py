"""The floor of ``pearson_edistance`` on one CPU thread: its matrix products at the machine's measured GEMM rates.

``pearson_edistance`` (``PearsonEDistance.from_control``, the sums of ``distgen.kernels.pairwise.euclidean_sum``) sums
the Euclidean distances of every pair of cells it compares: each perturbation's cells against the control and against
themselves, the control against itself, on both sides. Each pair costs one dot product of ``G`` genes in the Gram
matrix (``2 G`` flops), so the pair counts and the measured GEMM rate give the time no float64 code can go under.
Printed, for the pairs of ``benchmarks.eval_speed_ce2`` (its ``--work`` folder, log-normalised files):

* cells per side (control, each perturbation), distance pairs and GFLOP of the products (within-set sums from half);
  and the pairs no exact sum can skip (each distinct pair once) with the float64 time of their products;
* the float64 and float32 GEMM rates of this machine (the cross product of the real side, in blocks of 256 rows);
* the time of each stage of the float64 sums (float32 -> float64 copies, norms, buffers, GEMM, the elementwise
  pass adding the norms, clamp + sqrt, sums);
* what float32 products of the cells centred on the control mean would change: the largest relative change of an
  E-distance and of the correlation, against the RIGOROUS bound of that change (``gamma_G = G u / (1 - G u)`` times
  ``2 |a| |b|`` on each squared distance, plus the rounding of the centred cells to float32): the bound a fallback to
  float64 would have to test;
* with ``--celleval``: cell-eval 0.8.2's own warm run, its ``pearson_edistance`` and the sparse products inside it
  (sklearn's ``pairwise_distances`` upcasts the float32 CSR cells to float64 by chunks and multiplies sparse by
  sparse), beside distgen's warm ``cell-eval-0.8.2`` run and its ``pearson_edistance``, alternated in one process;
  and the best ratio over cell-eval 0.8.2 that the float64 floor allows: cell-eval's run over (the floor plus
  distgen's other work), the floor from the pairs no exact sum can skip;
* with ``--sparse``: the real side's cross product made from the files' CSR cells by sparse kernels and by a dense /
  sparse split of the genes (``sparse_check``).

    OMP_NUM_THREADS=1 python -m benchmarks.edistance_floor --work DIR [--shared-data /work/shared/data]
        [--pairs papalexi,kang] [--repeats 3] [--celleval] [--sparse]

``--work``: the folder of ``benchmarks.eval_speed_ce2``'s pair files; those missing are made there from
``--shared-data`` as that benchmark makes them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from benchmarks.eval_speed_ce2 import THREADS, loadavg, pair_files


def gemm_rate(dtype: torch.dtype, n: int, m: int, k: int, repeats: int = 3, block: int = 256) -> float:
    """GFLOP/s of ``[n, k] @ [k, m]`` products in blocks of ``block`` rows (best of ``repeats``; one thread)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, k, dtype=dtype, generator=g), torch.rand(m, k, dtype=dtype, generator=g)
    out = torch.empty(min(block, n), m, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        for i in range(0, n, block):
            rows = min(block, n - i)
            torch.mm(a[i : i + rows], b.T, out=out[:rows])
        best = min(best, time.process_time() - t)
    return 2.0 * n * m * k / best / 1e9


def pair_counts(control: int, sizes: list[int], block: int = 256) -> int:
    """Distance pairs whose dot products ``from_control`` computes: each set against the control, and each set and the
    control against themselves by blocks on and above the diagonal (``euclidean_sum``'s ``block``)."""
    def within(n: int) -> int:
        nb = [min(block, n - i) for i in range(0, n, block)]
        return sum(nb[i] * nb[j] for i in range(len(nb)) for j in range(i, len(nb)))
    return sum(n * control for n in sizes) + sum(within(n) for n in sizes) + within(control)


def least_pairs(control: int, sizes: list[int]) -> int:
    """Distance pairs no exact sum can skip: each set against the control, and each distinct pair within a set and within
    the control once (``n (n - 1) / 2``: a distance is symmetric and a self-distance is 0). ``pair_counts`` is this plus
    the pairs ``from_control``'s whole diagonal blocks compute twice or at 0."""
    return sum(n * control for n in sizes) + sum(n * (n - 1) // 2 for n in [*sizes, control])


def stage_times(sides: list[tuple[torch.Tensor, list[torch.Tensor]]], block: int = 256) -> dict[str, float]:
    """CPU seconds of each stage of the float64 sums of ``from_control`` (one call on every side), timed apart."""
    t: dict[str, float] = {}

    def tick(key: str, start: float) -> None:
        t[key] = t.get(key, 0.0) + time.process_time() - start

    for control, sets in sides:
        s = time.process_time()
        c, xs = control.to(torch.float64), [x.to(torch.float64) for x in sets]
        tick("float32 -> float64 copies", s)
        s = time.process_time()
        c_sq, x_sqs = (c * c).sum(-1), [(x * x).sum(-1) for x in xs]
        tick("squared norms", s)
        jobs = [(c, c_sq, c, c_sq, True)] + [(x, q, c, c_sq, False) for x, q in zip(xs, x_sqs)]
        jobs += [(x, q, x, q, True) for x, q in zip(xs, x_sqs)]
        for x, x_sq, y, y_sq, within in jobs:
            s = time.process_time()
            buf = x.new_empty(min(block, x.shape[0]) * y.shape[0])
            tick("buffers", s)
            for i in range(0, x.shape[0], block):
                for j in range(i, y.shape[0], block) if within else [0]:
                    yb, yb_sq = (y[j : j + block], y_sq[j : j + block]) if within else (y, y_sq)
                    xb = x[i : i + block]
                    out = buf[: xb.shape[0] * yb.shape[0]].view(xb.shape[0], yb.shape[0])
                    s = time.process_time()
                    torch.mm(xb, yb.T, out=out)
                    tick("GEMM", s)
                    s = time.process_time()
                    out.mul_(-2.0).add_(yb_sq).add_(x_sq[i : i + block, None])
                    tick("norms added", s)
                    s = time.process_time()
                    out.clamp_min_(0.0).sqrt_()
                    tick("clamp + sqrt", s)
                    s = time.process_time()
                    out.sum()
                    tick("sums", s)
    return t


def _sums32(a: torch.Tensor, b: torch.Tensor, within: bool, block: int = 256) -> tuple[float, float, float]:
    """Sums of the distances of the rows of float64 ``a``, ``b``: with float32 products, in float64, and the rigorous bound
    of the float32 sum's error (the products' ``gamma_G 2 |a| |b|`` and the rounding of ``a``, ``b`` to float32)."""
    u = 2.0**-24
    gamma = a.shape[1] * u / (1 - a.shape[1] * u)
    a32, b32 = a.float(), b.float()
    ra, rb = (a - a32.double()).norm(dim=1), (b - b32.double()).norm(dim=1)
    an, bn = (a32.double() ** 2).sum(1), (b32.double() ** 2).sum(1)
    a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    s32 = s64 = bound = 0.0
    for i in range(0, a.shape[0], block):
        d = (an[i : i + block, None] + bn[None] - 2.0 * (a32[i : i + block] @ b32.T).double()).clamp_min(0.0).sqrt()
        e = (a_sq[i : i + block, None] + b_sq[None] - 2.0 * (a[i : i + block] @ b.T)).clamp_min(0.0).sqrt()
        eps = 2.0 * gamma * an[i : i + block, None].sqrt() * bn[None].sqrt() * (1 + 1e-12)
        err = torch.minimum(eps.sqrt(), eps / d.clamp_min(1e-300)) + ra[i : i + block, None] + rb[None]
        if within:  # the self-distances are exactly 0 in every sum
            rows = torch.arange(i, min(i + block, a.shape[0]))
            d[rows - i, rows] = e[rows - i, rows] = err[rows - i, rows] = 0.0
        s32, s64, bound = s32 + float(d.sum()), s64 + float(e.sum()), bound + float(err.sum())
    return s32, s64, bound


def float32_check(control: torch.Tensor, sets: list[torch.Tensor]) -> list[tuple[float, float, float]]:
    """``(float64 E-distance, with float32 products of the cells centred on the control mean, rigorous bound of their
    difference)`` of each set of ``sets`` from ``control`` (each ``[n, G]``, at least one cell)."""
    c = control.to(torch.float64)
    mu = c.mean(0)
    cc = c - mu
    m = c.shape[0]
    sc = _sums32(cc, cc, True)
    out = []
    for x in sets:
        xc = x.to(torch.float64) - mu
        n = xc.shape[0]
        sx, sxc = _sums32(xc, xc, True), _sums32(xc, cc, False)
        e32, e64 = (2 * sxc[k] / (n * m) - sx[k] / n**2 - sc[k] / m**2 for k in (0, 1))
        out.append((e64, e32, 2 * sxc[2] / (n * m) + sx[2] / n**2 + sc[2] / m**2))
    return out


def sparse_check(real_log: str, repeats: int, block: int = 256) -> dict[str, float]:
    """The cross product of the real side's perturbed cells and its control (``[n, G] @ [G, m]``, float64) as exact
    products of another kind would make it, on the file's own CSR cells: CPU seconds (best of ``repeats``) of dense GEMM
    in blocks of ``block`` rows (``from_control``'s), torch CSR @ dense, scipy CSR @ dense, sklearn's CSR x CSR into
    a dense block (cell-eval's ``pairwise_distances``), and dense GEMM on the genes where both sides are densest plus
    CSR x CSR on the rest, with the CSR copies and the split made before the timing; and ``density``, the fraction of
    the dense multiply-adds a CSR x CSR product makes (``sum_k nnz_x(k) nnz_c(k) / (n m G)``).

    Every variant is float64 arithmetic in another order (``largest difference / largest product``: on the last block
    of rows, against the dense GEMM): none changes which pairs are computed, only what each costs."""
    import anndata as ad
    import numpy as np
    from sklearn.utils.sparsefuncs import sparse_matmul_to_dense

    a = ad.read_h5ad(real_log)
    cells = a.X.tocsr().astype(np.float64)
    is_control = a.obs["target"].astype(str).to_numpy() == "non-targeting"
    x, c = cells[~is_control], cells[is_control]
    xd, cd = torch.from_numpy(x.toarray()), torch.from_numpy(c.toarray())
    n, m = x.shape[0], c.shape[0]
    out = torch.empty(min(block, n), m, dtype=torch.float64)
    tmp = np.empty((min(block, n), m))

    def best(f: Any) -> float:
        times = []
        for _ in range(repeats):
            t = time.process_time()
            f()
            times.append(time.process_time() - t)
        return min(times)

    def by_blocks(dense: tuple[torch.Tensor, torch.Tensor] | None, sparse: tuple[Any, Any] | None) -> torch.Tensor:
        for i in range(0, n, block):
            rows = min(block, n - i)
            if dense is not None:
                torch.mm(dense[0][i : i + rows], dense[1].T, out=out[:rows])
            if sparse is not None:
                sparse_matmul_to_dense(sparse[0][i : i + rows], sparse[1], out=tmp[:rows])
                if dense is None:
                    out[:rows].copy_(torch.from_numpy(tmp[:rows]))
                else:
                    out[:rows] += torch.from_numpy(tmp[:rows])
        return out[: n - (n - 1) // block * block]  # the last block of rows

    nx, nc = np.diff(x.tocsc().indptr).astype(np.float64), np.diff(c.tocsc().indptr).astype(np.float64)
    result = {"density": float(nx @ nc) / (n * m * x.shape[1]), "dense GEMM": best(lambda: by_blocks((xd, cd), None))}
    with warnings.catch_warnings():  # torch's notes that sparse CSR is in beta and unchecked
        warnings.simplefilter("ignore", UserWarning)
        xt = torch.sparse_csr_tensor(torch.from_numpy(x.indptr.astype(np.int64)),
                                     torch.from_numpy(x.indices.astype(np.int64)), torch.from_numpy(x.data), size=x.shape)
    cdt = cd.T.contiguous()
    last = by_blocks((xd, cd), None).clone()
    result["torch CSR @ dense"] = best(lambda: torch.sparse.mm(xt, cdt))
    result["scipy CSR @ dense"] = best(lambda: x @ cdt.numpy())
    ct = c.T.tocsr()
    result["sklearn CSR x CSR"] = best(lambda: by_blocks(None, (x, ct)))
    order = np.argsort(-(nx * nc))
    diff = float((by_blocks(None, (x, ct)) - last).abs().max() / last.abs().max().clamp_min(1e-300))
    for k in (x.shape[1] // 4, x.shape[1] // 3, x.shape[1] // 2):
        dense_genes, sparse_genes = np.sort(order[:k]), np.sort(order[k:])
        parts = ((xd[:, dense_genes].contiguous(), cd[:, dense_genes].contiguous()),
                 (x[:, sparse_genes].tocsr(), c[:, sparse_genes].T.tocsr()))
        result[f"dense on {k} genes + CSR x CSR on {x.shape[1] - k}"] = best(lambda parts=parts: by_blocks(*parts))
        diff = max(diff, float((by_blocks(*parts) - last).abs().max() / last.abs().max().clamp_min(1e-300)))
    result["largest difference / largest product"] = diff
    return result


@contextlib.contextmanager
def _timed(owner: Any, attr: str, into: dict[str, float], key: str) -> Iterator[None]:
    """``owner.attr`` (a function) replaced by one adding its CPU seconds to ``into[key]``; put back on exit."""
    fn = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            into[key] = into.get(key, 0.0) + time.process_time() - t

    setattr(owner, attr, timed)
    try:
        yield
    finally:
        setattr(owner, attr, fn)


def celleval_split(pred_log: str, real_log: str, repeats: int) -> dict[str, float]:
    """CPU-second medians of warm runs, alternated in this process after one untimed run each: cell-eval 0.8.2's
    (``eval_speed_ce2``'s in-process call) with its ``pearson_edistance`` and the sparse products sklearn makes inside
    it, and distgen's ``cell-eval-0.8.2`` profile with its ``pearson_edistance``."""
    import logging

    import anndata as ad
    import sklearn.utils.extmath as extmath
    from cell_eval import MetricsEvaluator
    from cell_eval.metrics import metrics_registry

    from distgen.evaluation.metrics.distributional import PearsonEDistance
    from distgen.evaluation.profiles import run_profile
    from distgen.pipeline.evaluate import load_pair

    def ce() -> None:
        ev = MetricsEvaluator(adata_pred=ad.read_h5ad(pred_log), adata_real=ad.read_h5ad(real_log), control_pert="non-targeting",
                              pert_col="target", num_threads=1, outdir=tempfile.mkdtemp())
        ev.compute(profile="full", skip_metrics=["clustering_agreement"], write_csv=False)

    def dg() -> None:
        run_profile(load_pair(pred_log, real_log, "target", "non-targeting")[0], "cell-eval-0.8.2")

    runs: dict[str, list[float]] = {}
    parts: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_timed(metrics_registry.metrics["pearson_edistance"], "func", parts, "cell-eval pearson_edistance"))
        stack.enter_context(_timed(extmath, "sparse_matmul_to_dense", parts, "cell-eval sparse products"))
        stack.enter_context(_timed(PearsonEDistance, "compute", parts, "distgen pearson_edistance"))
        logging.disable(logging.INFO)  # cell-eval's progress lines
        stack.callback(logging.disable, logging.NOTSET)
        for f in (ce, dg):
            f()
        for _ in range(repeats):
            for key, f in (("cell-eval run", ce), ("distgen run", dg)):
                parts.clear()
                t = time.process_time()
                f()
                for k, v in [(key, time.process_time() - t), *parts.items()]:
                    runs.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in runs.items()}


def report(name: str, work: str, repeats: int, celleval: bool = False, sparse: bool = False) -> None:
    from scipy.stats import pearsonr

    from distgen.pipeline.evaluate import load_pair

    pred_log, real_log = (os.path.join(work, f"{name}_{s}_log.h5ad") for s in ("pred", "real"))
    data = load_pair(pred_log, real_log, "target", "non-targeting")[0]
    sides = []
    for which in ("real", "pred"):
        pop = getattr(data, which)
        sets = [pop.cells(p) for p in range(pop.n_perts) if pop.cells(p).shape[0] > 0]
        sides.append((pop.control, sets))
    genes = sides[0][0].shape[1]
    pairs = least = 0
    for which, (control, sets) in zip(("real", "pred"), sides):
        sizes = [x.shape[0] for x in sets]
        pairs += pair_counts(control.shape[0], sizes)
        least += least_pairs(control.shape[0], sizes)
        print(f"{name} {which}: control {control.shape[0]} cells, {len(sizes)} perturbations of {min(sizes)}-{max(sizes)} "
              f"cells ({sum(sizes)} in all), {genes} genes; {pair_counts(control.shape[0], sizes) / 1e6:.1f} M pairs")
    gflop = 2.0 * pairs * genes / 1e9
    n_cross = sum(x.shape[0] for x in sides[0][1])
    rates = {dt: gemm_rate(dt, n_cross, sides[0][0].shape[0], genes) for dt in (torch.float64, torch.float32)}
    print(f"{name}: {pairs / 1e6:.1f} M distance pairs, {gflop:.2f} GFLOP of products; GEMM float64 "
          f"{rates[torch.float64]:.1f} GFLOP/s, float32 {rates[torch.float32]:.1f} GFLOP/s -> floor float64 "
          f"{1000 * gflop / rates[torch.float64]:.0f} ms, float32 {1000 * gflop / rates[torch.float32]:.0f} ms")
    least_gflop = 2.0 * least * genes / 1e9
    print(f"{name}: {least / 1e6:.1f} M pairs no exact sum can skip (each distinct pair once), {least_gflop:.2f} GFLOP -> least "
          f"float64 {1000 * least_gflop / rates[torch.float64]:.0f} ms")
    stage_times(sides)  # warm-up
    runs = [stage_times(sides) for _ in range(repeats)]
    total = statistics.median(sum(r.values()) for r in runs)
    for key in runs[0]:
        v = statistics.median(r[key] for r in runs)
        print(f"{name} stage {key}: {1000 * v:.1f} ms ({100 * v / total:.0f}%)")
    print(f"{name} stages in all: {1000 * total:.0f} ms (median of {repeats})")
    checks = [float32_check(control, sets) for control, sets in sides]
    for which, rows in zip(("real", "pred"), checks):
        print(f"{name} {which} float32 products: max |change| / E {max(abs(r[1] - r[0]) / abs(r[0]) for r in rows):.2e}, "
              f"rigorous bound / E {min(r[2] / abs(r[0]) for r in rows):.2e} to {max(r[2] / abs(r[0]) for r in rows):.2e}")
    r64 = pearsonr([r[0] for r in checks[0]], [r[0] for r in checks[1]])[0]
    r32 = pearsonr([r[1] for r in checks[0]], [r[1] for r in checks[1]])[0]
    print(f"{name} pearson_edistance float64 {r64:.15f}, float32 products {r32:.15f}: change {abs(r64 - r32):.2e}")
    if sparse:
        for key, v in sparse_check(real_log, repeats).items():
            print(f"{name} real cross product, {key}: " + (f"{v:.3f}" if key == "density" else
                                                           f"{v:.1e}" if key.startswith("largest") else f"{1000 * v:.0f} ms"))
    if celleval:
        t = celleval_split(pred_log, real_log, repeats)
        for key, v in t.items():
            print(f"{name} {key}: {1000 * v:.0f} ms (CPU, median of {repeats})")
        floor = least_gflop / rates[torch.float64]
        other = t["distgen run"] - t["distgen pearson_edistance"]
        print(f"{name}: cell-eval 0.8.2 over distgen {t['cell-eval run'] / t['distgen run']:.1f}x now; at the least float64 products "
              f"({1000 * floor:.0f} ms) with distgen's other work ({1000 * other:.0f} ms) at best "
              f"{t['cell-eval run'] / (floor + other):.1f}x (every other metric free: {t['cell-eval run'] / floor:.1f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="the --work folder of benchmarks.eval_speed_ce2 (its *_log.h5ad pair files)")
    ap.add_argument("--shared-data", default=None, help="folder of the small datasets: the pair files --work lacks are made from it")
    ap.add_argument("--pairs", default="papalexi,kang")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--celleval", action="store_true", help="also time cell-eval 0.8.2's run and its pearson_edistance")
    ap.add_argument("--sparse", action="store_true", help="also time the real cross product made from the CSR cells")
    args = ap.parse_args(argv)
    os.environ.update(THREADS)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    for name in args.pairs.split(","):
        pair_files(name, args.shared_data, args.work)
        report(name, args.work, args.repeats, args.celleval, args.sparse)
    print(f"load average {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
