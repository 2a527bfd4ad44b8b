"""Small adversarial prediction/truth pairs for differential tests against cell-eval2 and cell-eval.

Each case is a seeded pair of AnnData files in the parity tests' layout (``target`` column,
``non-targeting`` control, perturbations named after panel genes ``G0``, ``G1``, ...) made awkward in
one way the real parity files never are: genes all zero or constant, exact ties, groups of 1-3 cells, a
prediction that is the truth or the control, 99% zeros or none, very large values, a target gene absent
from the panel, names that need escaping, 50 perturbations over 20 genes, fewer genes than a top-N cut,
float64 X, dense X. ``write_case(name, seed, folder, counts)`` writes ``(pred, real)``: raw counts
(``counts=True``, the ``celleval2``/``vcc2026`` profiles) or log1p of counts per 10^4 (the others).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

CONTROL = "non-targeting"
Side = dict  # {"X": counts (cells x genes, float64), "labels": object array, "genes": list[str]}


def _base(rng: np.random.Generator, n_genes: int = 60, n_perts: int = 8, n_ctrl: int = 60, n_cells: int = 20,
          mean: float = 4.0, perts: list[str] | None = None) -> tuple[Side, Side]:
    """(pred, real): negative-binomial counts; each perturbation knocks its own gene down and moves 8 others."""
    genes = [f"G{i}" for i in range(n_genes)]
    perts = perts if perts is not None else genes[:n_perts]
    base = rng.gamma(1.5, mean / 1.5, n_genes) + 0.5
    effects = {}
    for p in perts:
        e = np.ones(n_genes)
        e[rng.choice(n_genes, min(8, n_genes), replace=False)] = rng.choice([0.15, 3.0, 6.0], min(8, n_genes))
        for atom in p.split("+"):
            if atom in genes:
                e[genes.index(atom)] = 0.05
        effects[p] = e

    def cells(rate, n):
        return rng.negative_binomial(3, 3 / (3 + rate[None] * np.ones((n, 1)))).astype(np.float64)

    def side(strength):
        xs, labels = [cells(base, n_ctrl)], [CONTROL] * n_ctrl
        for p in perts:
            xs.append(cells(base * effects[p] ** strength[p], n_cells))
            labels += [p] * n_cells
        return {"X": np.concatenate(xs), "labels": np.array(labels, dtype=object), "genes": list(genes)}

    real = side({p: 1.0 for p in perts})
    pred = side({p: s for p, s in zip(perts, rng.uniform(0.0, 1.3, len(perts)))})
    return pred, real


def _rows(s: Side, mask: np.ndarray) -> Side:
    return {**s, "X": s["X"][mask], "labels": s["labels"][mask]}


def _perts(s: Side) -> list[str]:
    return [p for p in dict.fromkeys(s["labels"]) if p != CONTROL]


def zero_genes(rng):
    pred, real = _base(rng)
    pred["X"][:, 10] = 0
    real["X"][:, 11] = 0
    pred["X"][:, 12] = real["X"][:, 12] = 0
    pred["X"][:, 1] = 0  # a target gene zero in the prediction
    return pred, real


def constant_genes(rng):
    pred, real = _base(rng)
    pred["X"][:, 10] = real["X"][:, 10] = 2
    pred["X"][:, 11] = 3
    real["X"][:, 12] = 1
    return pred, real


def tied_genes(rng):
    """Every gene twice (equal expression, equal p-values at every top-N cut) and a few equal-mean genes."""
    pred, real = _base(rng, n_genes=30)
    for s in (pred, real):
        s["X"] = np.concatenate([s["X"], s["X"]], axis=1)
        s["genes"] = s["genes"] + [f"{g}_dup" for g in s["genes"]]
    return pred, real


def tied_effects(rng):
    """Two perturbations with exactly the same cells on both sides (equal effects: ties in every distance rank)."""
    pred, real = _base(rng)
    for s in (pred, real):
        a, b = (np.flatnonzero(s["labels"] == p) for p in ("G2", "G3"))
        s["X"][b] = s["X"][a]
    return pred, real


def tiny_groups(rng):
    pred, real = _base(rng)
    for s, group in ((pred, ("G0", "G1", "G2")), (real, ("G3", "G4", "G5"))):
        mask = np.ones(len(s["labels"]), dtype=bool)
        for k, p in enumerate(group, 1):
            mask[np.flatnonzero(s["labels"] == p)[k:]] = False
        s.update(_rows(s, mask))
    return pred, real


def tiny_both(rng):
    """Perturbations of 2 and 3 cells on both sides (1 is refused by the references' replicate, kept above)."""
    pred, real = _base(rng)
    for s in (pred, real):
        mask = np.ones(len(s["labels"]), dtype=bool)
        for k, p in ((2, "G0"), (3, "G1"), (2, "G2")):
            mask[np.flatnonzero(s["labels"] == p)[k:]] = False
        s.update(_rows(s, mask))
    return pred, real


def pred_is_real(rng):
    _, real = _base(rng)
    return {**real, "X": real["X"].copy(), "labels": real["labels"].copy()}, real


def pred_is_control(rng):
    pred, real = _base(rng)
    ctrl = np.flatnonzero(pred["labels"] == CONTROL)
    for i in np.flatnonzero(pred["labels"] != CONTROL):
        pred["X"][i] = pred["X"][rng.choice(ctrl)]
    return pred, real


def sparse99(rng):
    pred, real = _base(rng, n_genes=80, mean=0.4, n_cells=30, n_ctrl=80)
    for s in (pred, real):
        s["X"][rng.random(s["X"].shape) < 0.96] = 0
        s["X"][s["X"].sum(1) == 0, 0] = 1  # no empty cell
    return pred, real


def dense(rng):
    pred, real = _base(rng, mean=40.0)
    for s in (pred, real):
        s["X"] += 1
    return pred, real


def large(rng):
    """Counts ~1e4 (log1p per 10^4 around 9 in the log profiles)."""
    pred, real = _base(rng, n_genes=30, mean=1e4)
    return pred, real


def target_absent(rng):
    """G5's column is not in the panel; DRUGX names no gene."""
    pred, real = _base(rng, perts=["G0", "G1", "G2", "G3", "G4", "G5", "DRUGX", "G6+G7"])
    keep = [i for i, g in enumerate(real["genes"]) if g != "G5"]
    for s in (pred, real):
        s["X"] = s["X"][:, keep]
        s["genes"] = [s["genes"][i] for i in keep]
    return pred, real


def escaped_names(rng):
    """Labels with a comma, quotes, spaces, a slash, a backslash, unicode, a leading zero and a number-like name
    (a label "nan" is refused by distgen as a missing label, by design: docs/reliability.md, "Missing labels")."""
    names = ["G0", "G1", 'a,b', 'q"uote', "sp ace", "sl/ash", "back\\slash", "ünï", "007", "1e5"]
    pred, real = _base(rng, perts=names, n_cells=12)
    return pred, real


def many_perts(rng):
    """50 perturbations over 20 genes (fewer genes than every top-N cut)."""
    genes = [f"G{i}" for i in range(20)]
    perts = genes + [f"{a}+{b}" for a, b in zip(genes[:15], genes[5:])] + [f"X{i}" for i in range(15)]
    return _base(rng, n_genes=20, perts=perts, n_cells=6, n_ctrl=40)


def few_genes(rng):
    return _base(rng, n_genes=8, n_perts=5, n_cells=25)


def float64_x(rng):
    return _base(rng)


def dense_x(rng):
    return _base(rng)


CASES: dict[str, Callable] = {f.__name__: f for f in (
    zero_genes, constant_genes, tied_genes, tied_effects, tiny_groups, tiny_both, pred_is_real, pred_is_control,
    sparse99, dense, large, target_absent, escaped_names, many_perts, few_genes, float64_x, dense_x)}
FORMAT = {"float64_x": ("csr", np.float64), "dense_x": ("dense", np.float32)}


def make_case(name: str, seed: int) -> tuple[Side, Side]:
    return CASES[name](np.random.default_rng(seed))


def _lognorm(x: np.ndarray) -> np.ndarray:
    return np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)


def write_side(s: Side, path: str | Path, counts: bool, layout: str = "csr", dtype=np.float32) -> str:
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    x = (s["X"] if counts else _lognorm(s["X"])).astype(dtype)
    obs = pd.DataFrame({"target": s["labels"].astype(str)}, index=[f"c{i}" for i in range(len(s["labels"]))])
    a = ad.AnnData(X=sp.csr_matrix(x) if layout == "csr" else x, obs=obs)
    a.var_names = list(s["genes"])
    a.write_h5ad(path)
    return str(path)


def write_case(name: str, seed: int, folder: str | Path, counts: bool) -> tuple[str, str]:
    """``(pred, real)`` h5ad paths of case ``name`` drawn with ``seed``, written into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layout, dtype = FORMAT.get(name, ("csr", np.float32))
    pred, real = make_case(name, seed)
    return (write_side(pred, folder / "pred.h5ad", counts, layout, dtype),
            write_side(real, folder / "real.h5ad", counts, layout, dtype))


# ------------------------------------------------------------------------------------------- differential run
PROFILES = ("celleval2", "vcc2026", "cell-eval-0.7.6", "cell-eval-0.8.2")
COUNTS = {"celleval2": True, "vcc2026": True, "cell-eval-0.7.6": False, "cell-eval-0.8.2": False}


def _exe(name: str) -> str | None:
    import os
    import sys

    exe = os.path.join(os.path.dirname(sys.executable), name)
    return exe if os.path.exists(exe) else None


def _csv(path):
    import pandas as pd

    t = pd.read_csv(path, dtype=str, keep_default_na=False)  # a label "nan" stays a label
    for c in t.columns:
        if c not in ("perturbation", "metric", "statistic"):
            t[c] = pd.to_numeric(t[c].replace({"": "nan"}), errors="coerce")
    return t


def reference(profile: str, pred: str, real: str, out: Path, extra: tuple[str, ...] = ()):
    """The reference's ``({(metric, perturbation): value}, {metric: mean})``, or ``(None, stderr)`` when it refuses."""
    import os
    import subprocess

    from distgen.types.layout import canonical_condition

    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    if profile == "cell-eval-0.8.2":
        cmd = [_exe("cell-eval"), "run", "-ap", pred, "-ar", real, "--pert-col", "target", "--control-pert", CONTROL,
               "--profile", "full", "--skip-metrics", "clustering_agreement", "--num-threads", "1", "-o", str(out)]
    else:
        args = ["--profile", "full"] if profile == "celleval2" else ["--preset", profile]
        cmd = [_exe("cell-eval2"), "run", "-ap", pred, "-ar", real, *args, "-o", str(out), "--set", "num_threads=1", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        return None, proc.stderr
    res = _csv(out / "results.csv")
    if profile == "cell-eval-0.8.2":
        res = res.melt(id_vars="perturbation", var_name="metric")
        means = res.groupby("metric")["value"].mean().to_dict()
    else:
        agg = _csv(out / "agg_results.csv")
        means = agg[agg["statistic"] == "mean"].drop(columns="statistic").iloc[0].to_dict()
    table = {(m, canonical_condition(p, CONTROL)): float(v) for m, p, v in zip(res["metric"], res["perturbation"], res["value"])}
    return (table, means), proc.stderr


def differences(profile: str, pred: str, real: str, folder: Path, tol: float = 1e-6, no_target_genes: bool = False):
    """``(disagreements, values compared, note)`` of distgen's ``evaluate --profile`` against the reference.

    A disagreement is ``(metric, perturbation, reference, distgen)``; NaN patterns must agree exactly.
    When the reference refuses the pair, distgen must refuse it too (``("refusal", ...)`` otherwise).
    """
    import math

    from distgen.evaluation.profiles import resolve_profile
    from distgen.pipeline.profile_eval import evaluate_profile_files

    extra = ("--no-target-genes",) if no_target_genes and profile != "cell-eval-0.8.2" else ()
    ref, stderr = reference(profile, pred, real, folder / "ref", extra)
    try:
        summary = evaluate_profile_files(pred, real, folder / "dg", profile, no_target_genes=no_target_genes, page=False)
        mine_err = None
    except Exception as e:  # a refusal is compared with the reference's
        summary, mine_err = None, f"{type(e).__name__}: {e}"
    if ref is None and summary is not None and "is not positive, so the ratio of sums" in stderr:
        # documented (docs/metrics.md): cell-eval2 refuses a pair whose total real effect is not positive; distgen scores
        # the rest and leaves expr_mse_unbiased_capped_norm NaN with the reason
        value = summary["metrics"].get("expr_mse_unbiased_capped_norm")
        undefined = value is None or math.isnan(value)
        return ([] if undefined else [("refusal", "-", "non-positive total real effect", value)]), 0, \
            "documented: cell-eval2 refuses a non-positive total real effect, distgen reports the ratio NaN"
    if ref is None and summary is not None and "would remove every one of the" in stderr:
        # documented (docs/metrics.md): every gene a target under the panel exclusion: cell-eval2 refuses, the PDS is NaN
        pds = [summary["metrics"].get(c) for c in resolve_profile(profile).columns if c.startswith("pds_")]
        undefined = all(v is None or math.isnan(v) for v in pds)
        return ([] if undefined else [("refusal", "-", "panel exclusion leaves no gene", pds)]), 0, \
            "documented: cell-eval2 refuses a panel exclusion of every gene, distgen reports the PDS NaN"
    if ref is None or summary is None:
        if (ref is None) == (summary is None):
            return [], 0, f"both refuse: ref={stderr.strip().splitlines()[-1][:160]!r} distgen={mine_err[:160]!r}"
        return [("refusal", "-", (stderr.strip().splitlines() or [""])[-1][:300] if ref is None else "scored",
                 mine_err or "scored")], 0, ""
    ours = _csv(folder / "dg" / "metrics.csv").set_index("perturbation")
    table, means = ref
    bad, compared = [], 0
    for name in resolve_profile(profile).columns:
        rows = [(p, table.get((name, p), math.nan), float(ours.loc[p, name])) for p in ours.index if (name, p) in table]
        if name in means:
            rows.append(("mean", float(means[name]), float(summary["metrics"][name])))
        if not rows and profile == "cell-eval-0.8.2":  # cell-eval leaves out a metric it failed on: NaN here
            rows = [(p, math.nan, float(ours.loc[p, name])) for p in ours.index]
        t = 1e-5 if name == "pearson_edistance" else tol  # cell-eval 0.8.2's float32 distances (docs/metrics.md)
        for p, a, b in rows:
            if math.isnan(a) != math.isnan(b) or (not math.isnan(a) and abs(a - b) > t * max(1.0, abs(a))):
                bad.append((name, p, a, b))
            compared += 1
    return bad, compared, ""
