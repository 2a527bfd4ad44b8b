"""``distgen evaluate --profile``: the reference profiles' input rules on tiny synthetic pairs (parity: *_parity tests)."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.pipeline.profile_eval import evaluate_profile_files, load_pair

from .synth import CONTROL, make_pair


def _counts_pair(seed: int = 0, n_perts: int = 5, g: int = 40, n: int = 30) -> tuple[ad.AnnData, ad.AnnData]:
    """(real, pred) raw-count AnnData: perturbation Pk raises genes 3k..3k+5 four-fold and knocks down gene Pk."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(g - n_perts)] + [f"P{p}" for p in range(n_perts)]
    base = rng.uniform(0.2, 5.2, g)

    def file(noise: float) -> ad.AnnData:
        xs, labels = [rng.poisson(base, (60, g))], [CONTROL] * 60
        for p in range(n_perts):
            rate = base.copy()
            rate[p * 3 : p * 3 + 6] *= 4.0
            rate[g - n_perts + p] *= 0.1
            xs.append(rng.poisson(rate * (1 + noise * rng.random(g)), (n, g)))
            labels += [f"P{p}"] * n
        a = ad.AnnData(X=np.concatenate(xs).astype(np.float32), obs=pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))]))
        a.var_names = genes
        return a

    return file(0.0), file(0.5)


def _without(a: ad.AnnData, label: str, keep: int = 0) -> ad.AnnData:
    """``a`` with all but ``keep`` cells of perturbation ``label`` dropped."""
    rows = np.flatnonzero(a.obs["target"].to_numpy() == label)
    mask = np.ones(a.n_obs, dtype=bool)
    mask[rows[keep:]] = False
    return a[mask].copy()


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "cell-eval-0.7.6", "celleval2", "vcc2026"])
def test_reference_profiles_refuse_a_prediction_that_leaves_out_perturbations(tmp_path, profile):
    real, pred = _counts_pair() if profile in ("celleval2", "vcc2026") else make_pair(seed=1, combos=False)
    left_out = "P2" if profile in ("celleval2", "vcc2026") else "G3"
    n_real = len(set(real.obs["target"]))  # the control label counted, as cell-eval2 counts
    with pytest.raises(ValueError, match=rf"perturbation sets differ: {n_real - 1} pred vs {n_real} real.*real-only \(1\)=\['{left_out}'\]"):
        evaluate_profile_files(_without(pred, left_out), real, tmp_path / "out", profile)


def test_the_distgen_profile_scores_the_rest_and_says_so(tmp_path):
    real, pred = make_pair(seed=1, combos=False)
    summary = evaluate_profile_files(_without(pred, "G3"), real, tmp_path / "out", "distgen")
    assert any("no predicted cells" in n and "G3" in n for n in summary["notes"])
    rows = pd.read_csv(tmp_path / "out" / "metrics.csv").set_index("perturbation")
    assert math.isnan(rows.loc["G3", "mse"]) and "no pred cells" in rows.loc["G3", "nan_reasons"]


def test_reference_profiles_score_a_single_predicted_cell(tmp_path):
    # cell-eval 0.8.2 and cell-eval2 score a one-cell group (parity: test_celleval_parity, test_celleval2_parity);
    # the expected value is computed here from the definition: mean over genes of (cell - real mean)^2
    real, pred = make_pair(seed=1, combos=False)
    one = _without(pred, "G3", keep=1)
    summary = evaluate_profile_files(one, real, tmp_path / "ref", "cell-eval-0.8.2")
    rows = pd.read_csv(tmp_path / "ref" / "metrics.csv").set_index("perturbation")
    cell = np.asarray(one[one.obs["target"] == "G3"].X, dtype=np.float64)[0]
    real_mean = np.asarray(real[real.obs["target"] == "G3"].X, dtype=np.float64).mean(0)
    assert rows.loc["G3", "mse"] == pytest.approx(float(((cell - real_mean) ** 2).mean()), rel=1e-5)
    assert math.isfinite(rows.loc["G3", "pearson_edistance"]) and math.isfinite(rows.loc["G3", "discrimination_score_l1"])
    assert any("single cell" in n and "G3 (pred)" in n for n in summary["notes"])
    # the distgen profile keeps the default evaluation's 2-cell minimum, with the reason
    evaluate_profile_files(one, real, tmp_path / "dg", "distgen")
    rows = pd.read_csv(tmp_path / "dg" / "metrics.csv").set_index("perturbation")
    assert math.isnan(rows.loc["G3", "mse"]) and "only 1 pred cell" in rows.loc["G3", "nan_reasons"]


def test_load_pair_still_reads_a_subset_prediction_for_callers_that_choose(tmp_path):
    # the rule belongs to the profile run, not to reading: load_pair gives NaN rows as before
    real, pred = make_pair(seed=1, combos=False)
    data, _ = load_pair(_without(pred, "G3"), real, "target", CONTROL)
    assert "no pred cells" in data.invalid[data.perts.index("G3")]


def _with_cell_types(a: ad.AnnData, column: str = "cell_type") -> ad.AnnData:
    a = a.copy()
    a.obs[column] = np.where(np.arange(a.n_obs) % 2 == 0, "T", "B")
    return a


def test_celltype_col_is_refused_under_a_profile(tmp_path):
    real, pred = make_pair(seed=1, combos=False)
    real, pred = _with_cell_types(real), _with_cell_types(pred)
    with pytest.raises(ValueError, match="--celltype-col 'cell_type' is not supported with --profile"):
        evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize("column", ["cell_type", "celltype", "CellLine"])
def test_a_profile_notes_and_warns_that_contexts_are_pooled(tmp_path, column):
    real, pred = make_pair(seed=1, combos=False)
    real, pred = _with_cell_types(real, column), _with_cell_types(pred, column)
    real.write_h5ad(tmp_path / "real.h5ad")  # a path: the h5py reader (an AnnData goes through anndata)
    for i, source in enumerate((str(tmp_path / "real.h5ad"), real)):
        with pytest.warns(UserWarning, match="contexts pooled"):
            summary = evaluate_profile_files(pred, source, tmp_path / f"out{i}", "cell-eval-0.8.2")
        pooled = [n for n in summary["notes"] if n.startswith("contexts pooled")]
        assert len(pooled) == 1 and repr(column) in pooled[0] and "2 values" in pooled[0]
    # one cell type: nothing to pool, nothing said
    real.obs[column] = "T"
    summary = evaluate_profile_files(pred, real, tmp_path / "one", "cell-eval-0.8.2")
    assert not [n for n in summary["notes"] if n.startswith("contexts pooled")]


def test_the_default_reader_notes_a_cell_type_column_it_does_not_use():
    from distgen.data import layout

    real, pred = make_pair(seed=1, combos=False)
    real, pred = _with_cell_types(real), _with_cell_types(pred)
    _, _, _, info = layout.read_pair(pred, real, "target", CONTROL)
    assert info.celltype_col is None
    assert any(n.startswith("contexts pooled") and "--celltype-col cell_type" in n for n in info.notes)
    _, _, _, info = layout.read_pair(pred, real, "target", CONTROL, celltype_col="cell_type")
    assert info.celltype_col == "cell_type" and not info.notes


def test_evaluate_help_says_profiles_refuse_celltype_col():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "distgen", "evaluate", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    assert "Refused with --profile" in flat and "--celltype-col refused" in flat


def _relabel(a: ad.AnnData, mapping: dict[str, str]) -> ad.AnnData:
    a = a.copy()
    a.obs["target"] = [mapping.get(x, x) for x in a.obs["target"].astype(str)]
    return a


@pytest.mark.parametrize("profile", ["celleval2", "vcc2026"])
def test_cell_eval2_profiles_refuse_labels_that_name_no_gene(tmp_path, profile):
    real, pred = _counts_pair()
    ko = {f"P{p}": f"P{p}_KO" for p in range(5)}  # construct IDs against gene symbols P0..P4
    with pytest.raises(ValueError, match="no target resolves to a gene: 0 of 5"):
        evaluate_profile_files(_relabel(pred, ko), _relabel(real, ko), tmp_path / "a", profile)
    # declared: no target genes; then nothing to exclude and it runs
    summary = evaluate_profile_files(_relabel(pred, ko), _relabel(real, ko), tmp_path / "b", profile, no_target_genes=True)
    assert summary["n_perturbations"] == 5 and any("--no-target-genes" in n for n in summary["notes"])
    # declared where labels do name genes: nothing is excluded (cell-eval2's --no-target-genes), which the scores show
    named = evaluate_profile_files(pred, real, tmp_path / "c", profile, no_target_genes=True)
    excluded = evaluate_profile_files(pred, real, tmp_path / "d", profile)
    assert any("5 of them name a measured gene" in n for n in named["notes"])
    differ = [m for m, v in excluded["metrics"].items() if isinstance(v, float) and v == v and named["metrics"].get(m) != v]
    assert differ  # some score reads the target gene once it is no longer left out


def test_partly_unresolved_labels_are_noted(tmp_path):
    real, pred = _counts_pair()
    some = {"P1": "P1_KO", "P3": "P3_KO"}
    summary = evaluate_profile_files(_relabel(pred, some), _relabel(real, some), tmp_path / "a", "celleval2")
    note = [n for n in summary["notes"] if n.startswith("target-gene exclusion")]
    assert len(note) == 1 and "3/5" in note[0] and "P1_KO" in note[0] and "P3_KO" in note[0]
    summary = evaluate_profile_files(pred, real, tmp_path / "b", "celleval2")
    assert not [n for n in summary["notes"] if n.startswith("target-gene exclusion")]
    # cell-eval 0.8.2 has no such rule: nothing refused, nothing said
    lreal, lpred = make_pair(seed=1, combos=False)
    summary = evaluate_profile_files(_relabel(lpred, {"G1": "X_KO"}), _relabel(lreal, {"G1": "X_KO"}), tmp_path / "c", "cell-eval-0.8.2")
    assert not [n for n in summary["notes"] if n.startswith("target-gene exclusion")]


def test_a_partial_vcc2026_average_says_how_many_and_which(monkeypatch, capsys, tmp_path):
    import argparse

    from distgen.commands import evaluate as command
    from distgen.evaluation.vcc2026 import SCORED, score

    user = dict.fromkeys(SCORED, 0.7)
    base = dict.fromkeys(SCORED, 0.5)
    rep = dict.fromkeys(SCORED, 0.9)
    for lower in ("expr_mse_unbiased_capped_norm", "de_wilcoxon_lfc_nmae"):
        user[lower], base[lower], rep[lower] = 0.6, 1.0, 0.2
    assert score(user, base, rep).averaged_note() == ""
    rep["pds_cosine"], rep["de_wilcoxon_sig_jaccard"] = 0.4, math.nan  # no scale: the baseline beats it; undefined
    out = score(user, base, rep)
    assert out.averaged_note() == "mean of 4 of 6 scored metrics; left out: pds_cosine, de_wilcoxon_sig_jaccard"
    assert out.rows()[-1]["note"] == out.averaged_note()
    # the printed line carries it
    fake = {"profile": "vcc2026", "reference": "ref", "n_perturbations": 3,
            "vcc2026": {"avg_score": out.avg_score, "averaged_note": out.averaged_note()}}
    monkeypatch.setattr("distgen.pipeline.profile_eval.evaluate_profile_files", lambda *a, **k: fake)
    args = argparse.Namespace(profile="vcc2026", pred="p", real="r", out=str(tmp_path), pert_col=None, control=None, seed=0,
                              quiet=True, overwrite=False, celltype_col=None, no_target_genes=False, json=False)
    command.run(args)
    line = capsys.readouterr().out.splitlines()[0]
    assert "avg_score 0.5000 (mean of 4 of 6 scored metrics; left out: pds_cosine, de_wilcoxon_sig_jaccard)" in line
