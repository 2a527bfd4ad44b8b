"""Parity with Arc Institute's cell-eval2 0.20.0 on real data, metric by metric and for the vcc2026 score.

cell-eval2 runs as its users run it (``cell-eval2 run / baseline / score`` on h5ad files, one thread);
distgen reads the same files (``load_pair``) and computes the same profile. Every per-perturbation
value and every aggregate must agree to < 1e-6 and NaN patterns exactly. Pairs: see
``celleval2_pairs``. Marked ``slow`` (each cell-eval2 run takes 10-30 s) and ``celleval``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from benchmarks.celleval2_pairs import CONTROL, COUNTS, PERT_COL, make_pair
from distgen.data.layout import canonical_condition
from distgen.evaluation.profiles import resolve_profile, run_profile
from distgen.pipeline.evaluate import load_pair

pytestmark = [pytest.mark.celleval, pytest.mark.slow]
TOL = 1e-6
CASES = [("papalexi", "celleval2"), ("papalexi", "vcc2026"), ("kang", "celleval2"), ("kang", "vcc2026"),
         ("norman", "cell-eval-0.7.6")]
NO_TARGETS = {"kang"}  # cell-type labels name no gene: cell-eval2 needs --no-target-genes, distgen excludes nothing anyway


def _cli() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "cell-eval2")
    if not os.path.exists(exe):
        pytest.skip("cell-eval2 is not installed (pip install -e '.[celleval]')")
    return exe


def _run(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    threads = [] if args[0] == "score" else ["--set", "num_threads=1"]
    proc = subprocess.run([_cli(), *args, *threads], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _profile_args(profile: str) -> list[str]:
    return ["--profile", "full"] if profile == "celleval2" else ["--preset", profile]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    root = os.environ.get("DISTGEN_SHARED_DATA", SHARED_DATA)  # CI: ../shared/data beside the clone
    if not os.path.isdir(root):
        pytest.skip("../shared/data is not present (set DISTGEN_SHARED_DATA to its path)")
    folder = tmp_path_factory.mktemp("ce2pairs")
    return {name: make_pair(name, os.path.abspath(root), str(folder)) for name in sorted({n for n, _ in CASES})}


def _read(path):
    import polars as pl

    return pl.read_csv(path, schema_overrides={"perturbation": pl.Utf8})


@pytest.mark.parametrize(("pair", "profile"), CASES)
def test_every_metric_matches_cell_eval2(pairs, pair, profile, tmp_path):
    import polars as pl

    pytest.importorskip("cell_eval2")
    pred, real = pairs[pair]
    extra = ["--no-target-genes"] if pair in NO_TARGETS else []
    _run(["run", "-ap", pred, "-ar", real, *_profile_args(profile), "-o", str(tmp_path), *extra])
    theirs = _read(tmp_path / "results.csv")
    agg = pl.read_csv(tmp_path / "agg_results.csv").filter(pl.col("statistic") == "mean")
    data, _ = load_pair(pred, real, PERT_COL, CONTROL, scale="counts" if COUNTS[pair] else "lognorm")
    ours = run_profile(data, profile)
    expected = set(resolve_profile(profile).columns)
    assert set(agg.columns) - {"statistic"} == expected, "the profile's metric set differs from cell-eval2's"
    bad = []
    for name in sorted(expected):
        rows = theirs.filter(pl.col("metric") == name)
        # distgen names a combination by its atoms in sorted order ("KLF1+SET"); cell-eval2 keeps the file's
        ref = {canonical_condition(p, CONTROL): v for p, v in zip(rows["perturbation"].to_list(), rows["value"].to_list())}
        mine = dict(zip(ours.perts, ours.values[name]))
        if rows.height:  # a ratio-of-sums metric has no per-perturbation rows in cell-eval2
            for p in ours.perts:
                a, b = ref.get(p), mine[p]
                a = math.nan if a is None else float(a)
                if math.isnan(a) != math.isnan(b) or (not math.isnan(a) and abs(a - b) > TOL):
                    bad.append((name, p, a, b))
        a_mean = agg[name][0]
        b_mean = ours.mean(name)
        if (a_mean is None or math.isnan(a_mean)) != math.isnan(b_mean) or (
                not math.isnan(b_mean) and abs(a_mean - b_mean) > TOL):
            bad.append((name, "mean", a_mean, b_mean))
    assert not bad, f"disagreements (metric, perturbation, cell-eval2, distgen): {bad[:12]}"


def test_pairs_exercise_the_metrics(pairs, tmp_path):
    """Guard against vacuous parity: significant genes, resolved target genes and spread in the scores."""
    from distgen.evaluation.metrics.celleval2_de import prepared_de
    from distgen.evaluation.metrics.celleval2_settings import V2

    data, _ = load_pair(*pairs["papalexi"], PERT_COL, CONTROL, scale="counts")
    prep = prepared_de(data, V2)
    assert int(prep.sig_real.sum()) > 200 and int(prep.own.any(-1).sum()) >= 5
    table = run_profile(data, "vcc2026")
    for name in ("pds_cosine", "de_wilcoxon_sig_jaccard", "de_wilcoxon_direction_reach_raw"):
        vals = [v for v in table.values[name] if not math.isnan(v)]
        assert max(vals) - min(vals) > 0.1, name
    kang, _ = load_pair(*pairs["kang"], PERT_COL, CONTROL, scale="counts")
    assert not bool(prepared_de(kang, V2).real.tested.all()), "the CPM gate must drop genes on this pair"


@pytest.mark.parametrize("pair", ["papalexi", "kang"])
def test_vcc2026_score_matches_cell_eval2_score(pairs, pair, tmp_path):
    import polars as pl

    from distgen.evaluation.vcc2026 import SCORED, vcc2026_score

    pytest.importorskip("cell_eval2")
    pred, real = pairs[pair]
    extra = ["--no-target-genes"] if pair in NO_TARGETS else []
    run, base = tmp_path / "run", tmp_path / "base"
    _run(["baseline", "-ar", real, "--preset", "vcc2026", "-o", str(base), *extra])
    _run(["run", "-ap", pred, "-ar", real, "--preset", "vcc2026", "--anchor", "-o", str(run), *extra])
    _run(["score", "--user-agg", str(run / "agg_results.csv"), "--baseline-agg", str(base / "baseline_agg.csv"),
          "--anchor", str(run), "-o", str(tmp_path / "score.csv")])
    ref = pl.read_csv(tmp_path / "score.csv")
    data, _ = load_pair(pred, real, PERT_COL, CONTROL, scale="counts")
    ours = vcc2026_score(data, control_label=CONTROL)
    theirs = dict(zip(ref["metric"].to_list(), ref["from_replicate"].to_list()))
    assert set(theirs) == {*SCORED, "avg_score"}
    for name in SCORED:
        assert abs(ours.from_replicate[name] - theirs[name]) < TOL, name
    assert abs(ours.avg_score - theirs["avg_score"]) < TOL
    base_ref = dict(zip(ref["metric"].to_list(), ref["from_baseline"].to_list()))
    for name in SCORED:
        assert abs(ours.from_baseline[name] - base_ref[name]) < TOL, name


def test_single_cell_groups_match_cell_eval2(pairs, tmp_path):
    """A one-cell predicted and a one-cell real perturbation are scored as cell-eval2 scores them (not NaN)."""
    import anndata as ad
    import numpy as np
    import polars as pl

    from distgen.pipeline.profile_eval import reference_rules

    pytest.importorskip("cell_eval2")
    pred_path, real_path = pairs["papalexi"]
    pred, real = ad.read_h5ad(pred_path), ad.read_h5ad(real_path)
    labels = [p for p in dict.fromkeys(real.obs[PERT_COL].astype(str)) if p != CONTROL]

    def keep_one(a, label):
        rows = np.flatnonzero(a.obs[PERT_COL].astype(str).to_numpy() == label)
        mask = np.ones(a.n_obs, dtype=bool)
        mask[rows[1:]] = False
        return a[mask].copy()

    one_pred, one_real = labels[0], labels[1]
    pred, real = keep_one(pred, one_pred), keep_one(real, one_real)
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    out = tmp_path / "ce2"
    _run(["run", "-ap", str(tmp_path / "pred.h5ad"), "-ar", str(tmp_path / "real.h5ad"), "--profile", "full", "-o", str(out)])
    theirs = _read(out / "results.csv")
    agg = pl.read_csv(out / "agg_results.csv").filter(pl.col("statistic") == "mean")
    data, _ = load_pair(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), PERT_COL, CONTROL, scale="counts")
    reference_rules(data, resolve_profile("celleval2"))
    ours = run_profile(data, "celleval2")
    bad = []
    for name in ours.values:
        rows = theirs.filter(pl.col("metric") == name)
        ref = {canonical_condition(p, CONTROL): v for p, v in zip(rows["perturbation"].to_list(), rows["value"].to_list())}
        mine = dict(zip(ours.perts, ours.values[name]))
        for p in (ours.perts if rows.height else ()):
            a, b = ref.get(p), mine[p]
            a = math.nan if a is None else float(a)
            if math.isnan(a) != math.isnan(b) or (not math.isnan(a) and abs(a - b) > TOL):
                bad.append((name, p, a, b))
        a_mean, b_mean = agg[name][0], ours.mean(name)
        if (a_mean is None or math.isnan(a_mean)) != math.isnan(b_mean) or (not math.isnan(b_mean) and abs(a_mean - b_mean) > TOL):
            bad.append((name, "mean", a_mean, b_mean))
    assert not bad, f"disagreements (metric, perturbation, cell-eval2, distgen): {bad[:12]}"
    for p in (one_pred, one_real):  # not vacuous: the one-cell groups carry values
        assert math.isfinite(dict(zip(ours.perts, ours.values["expr_mae"]))[canonical_condition(p, CONTROL)])


@pytest.fixture(scope="module")
def kang_types(tmp_path_factory):
    """Kang PBMCs of three cell types in raw counts, stimulated vs control within each type (``make_context_pair``)."""
    from benchmarks.celleval2_pairs import make_context_pair
    from tests.conftest import SHARED_DATA

    root = os.environ.get("DISTGEN_SHARED_DATA", SHARED_DATA)
    if not os.path.isdir(root):
        pytest.skip("../shared/data is not present (set DISTGEN_SHARED_DATA to its path)")
    return make_context_pair("kang_types", os.path.abspath(root), str(tmp_path_factory.mktemp("kangtypes")), counts=True)


@pytest.mark.parametrize("profile", ["celleval2", "vcc2026"])
def test_celltype_col_matches_cell_eval2_on_each_split_pair(kang_types, profile, tmp_path):
    """``--profile P --celltype-col`` against cell-eval2 run on each cell type's files (split by its own
    ``compat.utils.split_anndata_on_celltype``: cell-eval2 has no cell-type option), per metric and aggregate.

    < 1e-6 everywhere, the pds_* of a cell type with a single perturbation (one stimulation per type) included:
    a rank among one, 1.0 for any prediction in cell-eval2 and in the profile, with a note that it is trivial.
    """
    import anndata as ad
    import pandas as pd
    import polars as pl

    from benchmarks.celleval2_pairs import CELLTYPE_COL
    from distgen.pipeline.profile_eval import evaluate_profile_files

    pytest.importorskip("cell_eval2")
    from cell_eval2.compat.utils import split_anndata_on_celltype

    pred, real = kang_types
    split = {side: split_anndata_on_celltype(ad.read_h5ad(path), CELLTYPE_COL) for side, path in (("pred", pred), ("real", real))}
    summary = evaluate_profile_files(pred, real, tmp_path / "dg", profile, celltype_col=CELLTYPE_COL, no_target_genes=True)
    assert sorted(summary["per_context"]) == sorted(split["real"]) and len(split["real"]) == 3
    bad, compared = [], 0
    for ctx, part in summary["per_context"].items():
        paths = {}
        for side in ("pred", "real"):
            paths[side] = str(tmp_path / f"{ctx}_{side}.h5ad")
            split[side][ctx].write_h5ad(paths[side])
        out = tmp_path / f"ce2_{ctx}"
        _run(["run", "-ap", paths["pred"], "-ar", paths["real"], *_profile_args(profile), "-o", str(out), "--no-target-genes"])
        theirs = _read(out / "results.csv")
        agg = pl.read_csv(out / "agg_results.csv").filter(pl.col("statistic") == "mean")
        ours = pd.read_csv(tmp_path / "dg" / part["files"][0]).set_index("perturbation")
        for name in resolve_profile(profile).columns:
            rows = theirs.filter(pl.col("metric") == name)
            ref = {canonical_condition(p, CONTROL): v for p, v in zip(rows["perturbation"].to_list(), rows["value"].to_list())}
            pairs = [(p, ref.get(p), float(ours.loc[p, name])) for p in ours.index] if rows.height else []
            pairs.append(("mean", agg[name][0], part["metrics"][name]))
            for p, a, b in pairs:
                a = math.nan if a is None else float(a)
                b = math.nan if b is None else float(b)
                if math.isnan(a) != math.isnan(b) or (not math.isnan(a) and abs(a - b) > TOL):
                    bad.append((ctx, name, p, a, b))
                compared += not math.isnan(a)
    assert not bad, f"disagreements (cell type, metric, perturbation, cell-eval2, distgen): {bad[:12]}"
    assert compared > (80 if profile == "celleval2" else 15)  # not vacuous
    trivial = [n for n in summary["notes"] if "trivial" in n and "pds_cosine" in n]
    assert len(trivial) == 3 and all(any(n.startswith(f"{c}: ") for n in trivial) for c in split["real"])  # one per cell type
