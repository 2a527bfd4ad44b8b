"""``distgen evaluate --profile``: the reference profiles' input rules on tiny synthetic pairs (parity: *_parity tests)."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.evaluation.report import EVALUATION_MARK as MARK
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


def _with_nan(a: ad.AnnData, label: str, value: float = np.nan) -> ad.AnnData:
    """``a`` with one value of every cell of perturbation ``label`` set to ``value``."""
    a = a.copy()
    x = np.asarray(a.X, dtype=np.float32).copy()
    x[a.obs["target"].to_numpy() == label, 4] = value
    a.X = x
    return a


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "cell-eval-0.7.6", "celleval2", "vcc2026"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_reference_profiles_refuse_nan_or_inf_cells_as_the_references_do(tmp_path, profile, value):
    # cell-eval 0.8.2 ("`X` must not contain NaNs") and cell-eval2 (ScaleLimitError / "values are fractional") reject
    # such a matrix; scored without the row, the summary's means were over the other perturbations, with no note
    counts = profile in ("celleval2", "vcc2026")
    real, pred = _counts_pair() if counts else make_pair(seed=1, combos=False)
    bad = "P2" if counts else "G3"
    with pytest.raises(ValueError, match=rf"1 perturbation holds NaN or inf values: '{bad} \(\d+ pred cell.*Profile '{profile}' refuses"):
        evaluate_profile_files(_with_nan(pred, bad, value), real, tmp_path / "out", profile)
    with pytest.raises(ValueError, match=rf"{bad} \(\d+ real cell"):  # the truth too
        evaluate_profile_files(pred, _with_nan(real, bad, value), tmp_path / "out", profile)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_the_distgen_profile_names_nan_perturbations_left_out_of_its_means(tmp_path):
    real, pred = make_pair(seed=1, combos=False)
    summary = evaluate_profile_files(_with_nan(pred, "G3"), real, tmp_path / "out", "distgen")
    said = [n for n in summary["notes"] if "NaN for every metric" in n]
    assert len(said) == 1 and "G3: " in said[0] and "NaN or inf" in said[0]
    rows = pd.read_csv(tmp_path / "out" / "metrics.csv").set_index("perturbation")
    assert math.isnan(rows.loc["G3", "mse"])
    assert summary["metrics"]["mse"] == pytest.approx(rows["mse"].drop("G3").mean())


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "vcc2026"])
def test_a_recorded_scale_that_contradicts_the_values_is_named_as_the_wrong_record(tmp_path, profile):
    # a colleague's file says uns["distgen"]["scale"] = "counts" over log-normalised values (or the reverse): the refusal
    # sent the user to the other profile, which then refused the values; the record is what is wrong
    counts = profile == "vcc2026"
    real, pred = _counts_pair() if counts else make_pair(seed=1, combos=False)
    said = "lognorm" if counts else "counts"
    pred = pred.copy()
    pred.uns["distgen"] = {"scale": said}
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    with pytest.raises(ValueError, match=rf"the pred file records uns\['distgen'\]\['scale'\] = '{said}', but its values are "
                                         rf"{'raw counts' if counts else 'log-normalised'}.*the record contradicts the data"):
        evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), tmp_path / "out", profile)
    # a record that agrees with the values keeps the advice to use the other profile
    other = "cell-eval-0.8.2" if counts else "vcc2026"
    pred.uns["distgen"] = {"scale": "counts" if counts else "lognorm"}
    pred.write_h5ad(tmp_path / "pred.h5ad")
    with pytest.raises(ValueError, match=r"the files record .* values \(uns\['distgen'\]\['scale'\]\) but this evaluation scores"):
        evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), tmp_path / "out2", other)


def test_load_pair_still_reads_a_subset_prediction_for_callers_that_choose(tmp_path):
    # the rule belongs to the profile run, not to reading: load_pair gives NaN rows as before
    real, pred = make_pair(seed=1, combos=False)
    data, _ = load_pair(_without(pred, "G3"), real, "target", CONTROL)
    assert "no pred cells" in data.invalid[data.perts.index("G3")]


def _with_cell_types(a: ad.AnnData, column: str = "cell_type") -> ad.AnnData:
    a = a.copy()
    a.obs[column] = np.where(np.arange(a.n_obs) % 2 == 0, "T", "B")
    return a


def _two_contexts(seed: int = 1, column: str = "cell_type", names: tuple[str, str] = ("T", "B/x")) -> tuple[ad.AnnData, ad.AnnData]:
    """(real, pred) of two contexts with different effects: each context a make_pair of its own seed, its own controls."""
    parts = [make_pair(seed=seed + 10 * i, combos=False, n_ctrl=30, n_cells=12) for i in range(2)]
    out = []
    for side in (0, 1):
        files = []
        for name, pair in zip(names, parts):
            a = pair[side].copy()
            a.obs[column] = name
            files.append(a)
        out.append(ad.concat(files, index_unique="-"))
    return out[0], out[1]


def _sub(a: ad.AnnData, keep: np.ndarray) -> ad.AnnData:
    return a[keep].copy()


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "distgen"])
def test_celltype_col_scores_each_context_as_its_own_pair(tmp_path, profile):
    real, pred = _two_contexts()
    summary = evaluate_profile_files(pred, real, tmp_path / "out", profile, celltype_col="cell_type")
    out = tmp_path / "out"
    # files named as cell-eval 0.8.2 names them (the context as a prefix, '/' -> '-'), plus the combined table
    assert sorted(p.name for p in out.iterdir()) == [MARK, "B-x_metrics.csv", "T_metrics.csv", "metrics.csv", "report.html",
                                                     "summary.json"]
    assert summary["contexts"] == ["B/x", "T"] and summary["celltype_col"] == "cell_type"
    for ctx in ("T", "B/x"):
        # each context's table is exactly the pooled profile run on that context's cells alone
        keep_r, keep_p = (real.obs["cell_type"] == ctx).to_numpy(), (pred.obs["cell_type"] == ctx).to_numpy()
        alone = evaluate_profile_files(_sub(pred, keep_p), _sub(real, keep_r), tmp_path / f"alone{ctx[0]}", profile)
        mine = pd.read_csv(out / summary["per_context"][ctx]["files"][0]).set_index("perturbation")
        ref = pd.read_csv(tmp_path / f"alone{ctx[0]}" / "metrics.csv").set_index("perturbation")
        assert set(mine.pop("context")) == {ctx}  # the label, which the file name may hold encoded
        pd.testing.assert_frame_equal(mine, ref)
        assert summary["per_context"][ctx]["metrics"] == alone["metrics"]
    combined = pd.read_csv(out / "metrics.csv")
    assert list(combined.columns[:2]) == ["perturbation", "context"] and len(combined) == 20
    assert set(combined["context"]) == {"T", "B/x"} and "G3 @ T" in set(combined["perturbation"])
    assert summary["metrics"]["mse"] == pytest.approx(combined["mse"].mean())
    assert summary["notes"][0].startswith("per-context runs of profile")
    # the contexts differ: pooling them would be another number
    pooled = evaluate_profile_files(pred, real, tmp_path / "pooled", profile)
    assert abs(pooled["metrics"]["mse_delta"] - summary["metrics"]["mse_delta"]) > 1e-3


def test_context_file_names_are_safe_on_every_file_system_and_never_shared():
    """A context label becomes a file name (``context_prefix``): before, 'B cells|107' was written as is, a name Windows
    refuses (as it refuses ``: * ? " < > \\``) and a shell reads as a pipe. Now those characters (and control characters)
    are percent-encoded; a label without them keeps cell-eval 0.8.2's name ('/' becomes '-')."""
    from distgen.pipeline.outputs import UNSAFE_IN_FILE_NAMES, context_prefix

    for safe, name in (("T", "T"), ("B/x", "B-x"), ("HepG2-C3A", "HepG2-C3A"), ("B cells", "B cells"), ("CD4+ T (naïve)", "CD4+ T (naïve)"),
                       ("a,b=c", "a,b=c"), ("50%", "50%")):
        assert context_prefix(safe) == name
    unsafe = ["a|b", "a:b", "a*b", "a?b", 'a"b', "a<b", "a>b", "a\\b", "a\nb", "a\tb", "a\x7fb"]
    names = [context_prefix(label) for label in unsafe]
    assert names[0] == "a%7Cb" and names[1] == "a%3Ab"
    for name in names:
        assert not set(name) & set(UNSAFE_IN_FILE_NAMES) and name.isprintable(), name
    every = [*unsafe, "a-b", "a_b", "a b", "ab", "a%b"]
    assert len({context_prefix(label).casefold() for label in every}) == len(every)  # no two of them share a file


def test_context_file_names_keep_unicode_spaces_and_format_characters_a_file_name_may_hold():
    """An earlier encoding took every character ``str.isprintable`` calls unprintable, which is not
    only control characters: a no-break space (``B\u00a0cells``, common in labels pasted from a spreadsheet), CJK's
    ideographic space, a zero-width joiner or a soft hyphen renamed a label every system writes as is, and a lone
    surrogate (a label read with ``surrogateescape``) crashed with UnicodeEncodeError. Only control characters (Cc)
    and ``UNSAFE_IN_FILE_NAMES`` are encoded, as the docs say."""
    from distgen.pipeline.outputs import context_prefix

    for label in ("B\u00a0cells", "a\u3000b", "\u2009thin", "CD4\u200dT", "soft\u00adhyphen", "\ue000priv", "bad\udcff"):
        assert context_prefix(label) == label
    assert [context_prefix(c) for c in ("a\x00b", "a\x1fb", "a\x85b", "a\x9fb")] == ["a%00b", "a%1Fb", "a%C2%85b", "a%C2%9Fb"]


def test_a_context_with_unsafe_characters_gets_a_safe_file_that_holds_its_label(tmp_path):
    real, pred = _two_contexts(names=("B cells|107", "T:1"))
    summary = evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    files = {ctx: part["files"][0] for ctx, part in summary["per_context"].items()}
    assert files == {"B cells|107": "B cells%7C107_metrics.csv", "T:1": "T%3A1_metrics.csv"}
    for ctx, name in files.items():  # the label itself is kept in the file, as in metrics.csv
        table = pd.read_csv(tmp_path / "out" / name, keep_default_na=False)
        assert set(table["context"]) == {ctx} and list(table.columns[:2]) == ["perturbation", "context"]


def test_contexts_whose_encoded_file_names_coincide_are_refused(tmp_path):
    real, pred = _two_contexts(names=("a|b", "a%7Cb"))
    with pytest.raises(ValueError, match=r"contexts 'a%7Cb' and 'a\|b' would write the same files"):
        evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*_metrics.csv"))


def test_celltype_col_refuses_contexts_missing_from_a_file_naming_them(tmp_path):
    real, pred = _two_contexts()
    with pytest.raises(ValueError, match=r"different contexts in 'cell_type': missing from the prediction \(1\) \['B/x'\], "
                                         r"missing from the truth \(0\) \[\]"):
        evaluate_profile_files(_sub(pred, (pred.obs["cell_type"] == "T").to_numpy()), real, tmp_path / "a", "cell-eval-0.8.2",
                               celltype_col="cell_type")
    with pytest.raises(ValueError, match=r"missing from the truth \(1\) \['B/x'\]"):
        evaluate_profile_files(pred, _sub(real, (real.obs["cell_type"] == "T").to_numpy()), tmp_path / "b", "cell-eval-0.8.2",
                               celltype_col="cell_type")
    assert not (tmp_path / "a" / "metrics.csv").exists() and not (tmp_path / "b" / "metrics.csv").exists()


@pytest.mark.parametrize(("side", "n"), [("pred", 0), ("real", 1)])
def test_celltype_col_refuses_a_context_with_too_few_controls(tmp_path, side, n):
    real, pred = _two_contexts()
    files = {"real": real, "pred": pred}
    a = files[side]
    ctrl_t = np.flatnonzero((a.obs["target"] == CONTROL).to_numpy() & (a.obs["cell_type"] == "T").to_numpy())
    keep = np.ones(a.n_obs, bool)
    keep[ctrl_t[n:]] = False
    files[side] = _sub(a, keep)
    with pytest.raises(ValueError, match=rf"1 context\(s\) of 'cell_type' lack control cells: 'T': the {side} file has {n} control "
                                         r"cell\(s\) \('non-targeting'\)"):
        evaluate_profile_files(files["pred"], files["real"], tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")


def test_celltype_col_names_the_context_of_a_prediction_that_leaves_out_perturbations(tmp_path):
    real, pred = _two_contexts()
    drop = ((pred.obs["target"] == "G3") & (pred.obs["cell_type"] == "B/x")).to_numpy()
    with pytest.raises(ValueError, match=r"context 'B/x' of 'cell_type': perturbation sets differ.*real-only \(1\)=\['G3'\]"):
        evaluate_profile_files(_sub(pred, ~drop), real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")


def test_celltype_col_refuses_an_unknown_column_and_missing_labels(tmp_path):
    real, pred = _two_contexts()
    with pytest.raises(ValueError, match="cell-type column 'donor' is not in the real file's obs columns"):
        evaluate_profile_files(pred, real, tmp_path / "a", "cell-eval-0.8.2", celltype_col="donor")
    real.obs["cell_type"] = real.obs["cell_type"].astype(object)
    real.obs.iloc[0, real.obs.columns.get_loc("cell_type")] = None
    with pytest.raises(ValueError, match="cell_type"):
        evaluate_profile_files(pred, real, tmp_path / "b", "cell-eval-0.8.2", celltype_col="cell_type")


def test_celltype_col_reads_the_same_from_h5ad_paths(tmp_path):
    real, pred = _two_contexts()
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    from_files = evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), tmp_path / "f", "cell-eval-0.8.2",
                                        celltype_col="cell_type")
    from_objects = evaluate_profile_files(pred, real, tmp_path / "o", "cell-eval-0.8.2", celltype_col="cell_type")
    assert from_files["per_context"] == from_objects["per_context"]


@pytest.mark.parametrize("profile", ["celleval2", "vcc2026"])
def test_cell_eval2_profiles_per_context_say_so_and_pool_no_vcc2026_score(tmp_path, profile):
    parts = [_counts_pair(seed=s) for s in (0, 1)]
    files = []
    for side in (0, 1):
        chunks = []
        for name, pair in zip(("K562", "RPE1"), parts):
            a = pair[side].copy()
            a.obs["cell_line"] = name
            chunks.append(a)
        files.append(ad.concat(chunks, index_unique="-"))
    real, pred = files
    summary = evaluate_profile_files(pred, real, tmp_path / "out", profile, celltype_col="cell_line")
    assert summary["notes"][0].startswith(f"per-context runs of profile {profile}") and "on that context's cells alone" in summary["notes"][0]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    if profile == "vcc2026":
        assert "vcc2026" not in summary  # no pooled score: cell-eval2 defines none over several contexts
        assert any("none is pooled" in n for n in summary["notes"])
        assert names == [MARK, "K562_metrics.csv", "K562_vcc2026_score.csv", "RPE1_metrics.csv", "RPE1_vcc2026_score.csv", "metrics.csv",
                         "report.html", "summary.json", "vcc2026_score.csv"]
        both = pd.read_csv(tmp_path / "out" / "vcc2026_score.csv")
        for ctx in ("K562", "RPE1"):
            one = pd.read_csv(tmp_path / "out" / f"{ctx}_vcc2026_score.csv")
            mine = both[both["context"] == ctx].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, one)  # the context's rows, its label in a context column as in the combined file
            score = summary["per_context"][ctx]["vcc2026"]["avg_score"]
            assert score == pytest.approx(float(one.loc[one["metric"] == "avg_score", "from_replicate"].iloc[0]))
    else:
        assert names == [MARK, "K562_metrics.csv", "RPE1_metrics.csv", "metrics.csv", "report.html", "summary.json"]


def test_a_rerun_removes_the_earlier_per_context_tables(tmp_path):
    real, pred = _two_contexts()
    evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    (tmp_path / "out" / "mine.csv").write_text("kept")
    # contexts renamed: the earlier run's T_metrics.csv / B-x_metrics.csv would be a stale, mixed report
    for a in (real, pred):
        a.obs["cell_type"] = a.obs["cell_type"].astype(str).map({"T": "T2", "B/x": "B2"})
    evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARK, "B2_metrics.csv", "T2_metrics.csv", "metrics.csv", "mine.csv",
                                                                    "report.html", "summary.json"]
    evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2")  # pooled: no per-context table stays
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MARK, "metrics.csv", "mine.csv", "report.html", "summary.json"]
    # a file of that name that no evaluation wrote is not replaced without --overwrite
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "T2_metrics.csv").write_text("someone's")
    with pytest.raises(ValueError, match=r"T2_metrics\.csv"):
        evaluate_profile_files(pred, real, tmp_path / "new", "cell-eval-0.8.2", celltype_col="cell_type")
    assert (tmp_path / "new" / "T2_metrics.csv").read_text() == "someone's"


def test_celltype_col_from_the_command_line(tmp_path, capsys):
    from distgen.cli import main

    real, pred = _two_contexts()
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    assert main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--out", str(tmp_path / "o"),
                 "--profile", "cell-eval-0.8.2", "--celltype-col", "cell_type", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 contexts of 'cell_type'" in printed and "T_metrics.csv" in printed


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


def test_evaluate_help_says_profiles_score_contexts_with_celltype_col():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "distgen", "evaluate", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    assert "Refused with --profile" not in flat and "--celltype-col refused" not in flat  # the old refusal is gone
    assert "<context>_metrics.csv" in flat and "no pooled vcc2026 score" in flat


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
    # so the two are not paired observations: the summaries record the flag and compare refuses to pair them
    assert named["no_target_genes"] is True and excluded["no_target_genes"] is False
    from distgen.evaluation.compare import MismatchedEvaluations, compare

    with pytest.raises(MismatchedEvaluations, match="--no-target-genes"):
        compare(tmp_path / "c", tmp_path / "d")
    assert compare(tmp_path / "d", tmp_path / "d")["n_shared"] == 5


def test_partly_unresolved_labels_are_noted(tmp_path):
    real, pred = _counts_pair()
    some = {"P1": "P1_KO", "P3": "P3_KO"}
    summary = evaluate_profile_files(_relabel(pred, some), _relabel(real, some), tmp_path / "a", "celleval2")
    note = [n for n in summary["notes"] if n.startswith("target-gene exclusion")]
    assert len(note) == 1 and "3 of 5 labels name a measured gene" in note[0] and "P1_KO" in note[0] and "P3_KO" in note[0]
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
                              quiet=True, overwrite=False, celltype_col=None, no_target_genes=False, json=False, no_plots=False,
                              replicate="half-split")
    command.run(args)
    line = capsys.readouterr().out.splitlines()[0]
    assert "avg_score 0.5000 (mean of 4 of 6 scored metrics; left out: pds_cosine, de_wilcoxon_sig_jaccard)" in line


def test_celltype_col_says_a_wrong_scale_of_the_file_not_of_a_context(tmp_path):
    real, pred = _two_contexts()  # log-normalised, scored by a counts profile
    with pytest.raises(ValueError, match=r"^the real cells hold fractional or negative values"):
        evaluate_profile_files(pred, real, tmp_path / "out", "celleval2", celltype_col="cell_type")


def test_celltype_col_leaves_out_a_context_of_control_cells_only_and_says_so(tmp_path):
    real, pred = _two_contexts()
    extra = []
    for a in (real, pred):
        ctrl = a[(a.obs["target"] == CONTROL).to_numpy() & (a.obs["cell_type"] == "T").to_numpy()].copy()
        ctrl.obs["cell_type"] = "C"
        extra.append(ad.concat([a, ctrl], index_unique="-"))
    summary = evaluate_profile_files(extra[1], extra[0], tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    assert summary["contexts"] == ["B/x", "T"]
    assert any("1 context(s) of 'cell_type' hold only control cells" in n and "'C'" in n for n in summary["notes"])
    # perturbed cells predicted for it are not dropped silently: the truth's context lacks them
    with_pred = ad.concat([extra[1], pred[(pred.obs["target"] == "G3").to_numpy() & (pred.obs["cell_type"] == "T").to_numpy()].copy()],
                          index_unique="-")
    with_pred.obs.loc[with_pred.obs_names[-12:], "cell_type"] = "C"
    with pytest.raises(ValueError, match=r"context 'C' of 'cell_type': the pred has 1 perturbation that the truth lacks"):
        evaluate_profile_files(with_pred, extra[0], tmp_path / "b", "cell-eval-0.8.2", celltype_col="cell_type")


def _only(a: ad.AnnData, label: str) -> ad.AnnData:
    return a[np.isin(a.obs["target"].to_numpy(), [CONTROL, label])].copy()


@pytest.mark.parametrize("profile", ["celleval2", "vcc2026", "cell-eval-0.7.6", "cell-eval-0.8.2", "distgen"])
def test_a_single_perturbation_gets_the_references_trivial_discrimination_score(tmp_path, profile):
    """A rank among one: the reference profiles report the references' 1.0 and note that it is trivial; ``distgen`` NaN.

    (Against the references themselves: tests/evaluation/test_parity_edges.py.)
    """
    counts = profile in ("celleval2", "vcc2026")
    real, pred = _counts_pair() if counts else make_pair(seed=1, combos=False)
    label = "P1" if counts else "G3"
    summary = evaluate_profile_files(_only(pred, label), _only(real, label), tmp_path / "out", profile)
    ranked = [c for c in summary["metrics"] if c.startswith(("pds_", "discrimination_score_"))]
    assert ranked
    trivial = [n for n in summary["notes"] if "trivial" in n]
    if profile == "distgen":
        assert all(math.isnan(summary["metrics"][c]) for c in ranked) and not trivial
        assert "fewer than 2 conditions" in pd.read_csv(tmp_path / "out" / "metrics.csv")["nan_reasons"][0]
        return
    assert all(summary["metrics"][c] == 1.0 for c in ranked)
    assert len(trivial) == 1 and all(c in trivial[0] for c in ranked)
    if profile == "vcc2026":  # no baseline for one targeted perturbation (cell-eval2's baseline refuses it): NaN with the reason
        assert math.isnan(summary["vcc2026"]["avg_score"]) and summary["vcc2026"]["n_averaged"] == 0
        score = pd.read_csv(tmp_path / "out" / "vcc2026_score.csv")
        assert score["note"].iloc[:6].str.contains("at least 2 perturbations").all()


def test_the_vcc2026_score_of_one_perturbation_without_target_genes_is_computed(tmp_path):
    """``--no-target-genes``: the mean response of one perturbation is that perturbation; the score is computed (degenerate
    members named), not refused."""
    real, pred = _counts_pair()
    summary = evaluate_profile_files(_only(pred, "P1"), _only(real, "P1"), tmp_path / "out", "vcc2026", no_target_genes=True)
    assert not any("vcc2026 score undefined" in n for n in summary["notes"])
    assert summary["vcc2026"]["n_scored"] == 6 and "pds_cosine" in summary["vcc2026"]["left_out"]


def test_cell_eval_0_7_6_refuses_a_panel_where_no_label_names_a_gene(tmp_path):
    """As cell-eval2's cell-eval-0.7.6 preset refuses it (parity: test_parity_edges.py); --no-target-genes scores it."""
    real, pred = make_pair(seed=1, combos=False)
    genes = [f"X{g}" if g.startswith("G") else g for g in real.var_names]
    for a in (real, pred):
        a.var_names = genes
    with pytest.raises(ValueError, match="no target resolves to a gene"):
        evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.7.6")
    summary = evaluate_profile_files(pred, real, tmp_path / "out2", "cell-eval-0.7.6", no_target_genes=True)
    assert math.isfinite(summary["metrics"]["mse"])


def test_a_zero_predicted_effect_has_no_cosine_discrimination_score(tmp_path):
    """The control cells copied for every perturbation: no direction, so the cosine score is NaN with the reason (cell-eval
    0.8.2 ranks the tie by label order: test_parity_edges.py); L1 and L2 are defined."""
    from distgen.evaluation.metrics.discrimination import ZERO_EFFECT

    real, pred = make_pair(seed=1, combos=False)
    ctrl = pred[pred.obs["target"].to_numpy() == CONTROL]
    perts = sorted(set(real.obs["target"]) - {CONTROL})
    copies = [ctrl.copy() for _ in perts]
    for c, p in zip(copies, perts):
        c.obs["target"] = p
    zero = ad.concat([ctrl, *copies], index_unique="-")
    evaluate_profile_files(zero, real, tmp_path / "out", "cell-eval-0.8.2")
    table = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert table["discrimination_score_cosine"].isna().all() and table["nan_reasons"].str.contains(ZERO_EFFECT, regex=False).all()
    assert table["discrimination_score_l1"].notna().all() and table["discrimination_score_l2"].notna().all()


def test_vcc2026_with_a_one_cell_real_perturbation_keeps_the_metrics_and_has_no_score(tmp_path):
    """cell-eval2's run --anchor refuses a real group of one cell (no split-half holds it on both sides); the metrics stand."""
    real, pred = _counts_pair()
    summary = evaluate_profile_files(pred, _without(real, "P2", keep=1), tmp_path / "out", "vcc2026")
    assert math.isfinite(summary["metrics"]["pds_cosine"]) and math.isnan(summary["vcc2026"]["avg_score"])
    assert any("vcc2026 score undefined" in n and "<= 1 real cell" in n and "P2" in n for n in summary["notes"])


def test_celltype_col_refuses_a_context_holding_the_row_separator_before_scoring(tmp_path):
    """Per-context rows are "condition @ context": a cell type "T @ 37C" could read as another row; refused with the column."""
    from distgen.errors import LabelError

    real, pred = _two_contexts(names=("T @ 37C", "B"))
    with pytest.raises(LabelError, match=r"context 'T @ 37C' of column 'cell_type' holds ' @ '"):
        evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    assert not (tmp_path / "out" / "metrics.csv").exists()


def _recorded(a: ad.AnnData, perturbation_type: str) -> ad.AnnData:
    a = a.copy()
    a.uns["distgen"] = {"perturbation_type": perturbation_type}
    return a


@pytest.mark.parametrize("profile", ["celleval2", "vcc2026"])
def test_a_truth_recording_chemical_perturbations_is_scored_without_target_genes(tmp_path, profile):
    real, pred = _counts_pair()
    drugs = {f"P{p}": f"drug{p}" for p in range(5)}  # no label names a gene
    pred, real = _relabel(pred, drugs), _relabel(real, drugs)
    # a truth that records chemical perturbations (as distgen predict writes them) needs no flag, and says why
    auto = evaluate_profile_files(_recorded(pred, "chemical"), _recorded(real, "chemical"), tmp_path / "auto", profile)
    assert auto["no_target_genes"] is True and any("perturbation_type 'chemical'" in n for n in auto["notes"])
    flagged = evaluate_profile_files(pred, real, tmp_path / "flag", profile, no_target_genes=True)
    assert auto["metrics"] == pytest.approx(flagged["metrics"], nan_ok=True)  # the same scores as the declared flag
    _recorded(pred, "chemical").write_h5ad(tmp_path / "pred.h5ad")  # files are read by h5py (h5pair), not anndata
    _recorded(real, "chemical").write_h5ad(tmp_path / "real.h5ad")
    from_files = evaluate_profile_files(tmp_path / "pred.h5ad", tmp_path / "real.h5ad", tmp_path / "files", profile)
    assert from_files["no_target_genes"] is True and from_files["metrics"] == pytest.approx(flagged["metrics"], nan_ok=True)
    # only the truth's record counts, and 'genetic' keeps the rule: refused as files that record nothing
    for p_type, r_type in (("chemical", "genetic"), ("chemical", None), (None, "genetic")):
        p = pred if p_type is None else _recorded(pred, p_type)
        r = real if r_type is None else _recorded(real, r_type)
        with pytest.raises(ValueError, match="no target resolves to a gene"):
            evaluate_profile_files(p, r, tmp_path / f"x_{p_type}_{r_type}", profile)


def test_predicted_files_record_the_runs_perturbation_type(tmp_path):
    from distgen.data import layout
    from distgen.types import Cells

    cells = Cells(np.ones((4, 3), dtype=np.float32), ["d1", "d1", "control", "control"], ["a", "b", "c"])
    for p_type in ("chemical", "genetic"):
        written = layout.to_anndata(cells, "pred", perturbation_type=p_type)
        assert written.uns["distgen"]["perturbation_type"] == p_type
        path = tmp_path / f"{p_type}.h5ad"
        with layout.ChunkedWriter(path, ["a", "b", "c"], perturbation_type=p_type) as w:
            w.append(np.ones((2, 3), dtype=np.float32), ["d1", "d1"], ["all", "all"], "pred")
            w.append(np.ones((2, 3), dtype=np.float32), ["non-targeting"] * 2, ["all", "all"], "control")
        assert ad.read_h5ad(path).uns["distgen"]["perturbation_type"] == p_type
    assert "perturbation_type" not in layout.to_anndata(cells, "pred").uns["distgen"]
    with pytest.raises(ValueError, match="perturbation_type must be one of"):
        layout.to_anndata(cells, "pred", perturbation_type="drug")


@pytest.mark.parametrize("celltype", [False, True])
def test_the_profile_page_is_drawn_once_the_cells_are_freed(tmp_path, monkeypatch, celltype):
    """The page reads the files written; the cells and their caches were alive while it was drawn (and its imports ran):
    the peak of ``--profile`` at genome-wide size. None of the pair's tables is alive when the page is written now."""
    import gc

    import torch

    from distgen.pipeline import pages

    real, pred = _counts_pair(seed=4)
    if celltype:
        for a in (real, pred):
            a.obs["celltype"] = np.where(np.arange(a.n_obs) % 2 == 0, "A", "B")
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    smallest = real.n_obs * real.n_vars * 4 // 4  # a quarter of a table: a context's, a group block's copy
    alive: list[int] = []
    write = pages.write_profile_page

    def large() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.untyped_storage().nbytes() >= smallest}

    before = large()  # tensors other tests of this process left alive (module caches, fixtures) are not the pair's

    def census(out):
        alive.append(len(large() - before))
        return write(out)

    monkeypatch.setattr(pages, "write_profile_page", census)
    evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), tmp_path / "out", "celleval2",
                           celltype_col="celltype" if celltype else None)
    assert alive == [0] and (tmp_path / "out" / "report.html").is_file()


def test_the_profile_page_imports_neither_the_evaluation_page_nor_the_training_package():
    """``distgen.report``'s names are imported when used: the profile page (tables only) took the evaluation page's modules,
    the training package and anndata with them (~120 MB and ~1 s of a one-shot run); they still import by name."""
    import subprocess
    import sys

    code = ("import sys, distgen.pipeline.profile_eval, distgen.report.profile; "
            "heavy = [m for m in ('distgen.report.page', 'distgen.train', 'anndata') if m in sys.modules]; "
            "assert not heavy, heavy; from distgen.report import ReportInputs, render, write_report; "
            "import distgen.report.page as p; assert render is p.render and write_report is p.write_report")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_context_named_like_a_windows_device_gets_a_file_windows_can_create_and_case_twins_are_refused(tmp_path):
    """``CON.x`` wrote ``CON.x_metrics.csv``, the console device on Windows: now ``CON%2Ex_metrics.csv``, the
    label in its ``context`` column; ``CON`` alone keeps ``CON_metrics.csv`` (no device). ``CD4`` and ``cd4`` are one file on
    a case-insensitive file system: refused before scoring (case-folded names)."""
    real, pred = _two_contexts(names=("CON.x", "CON"))
    summary = evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type")
    files = {ctx: part["files"][0] for ctx, part in summary["per_context"].items()}
    assert files == {"CON.x": "CON%2Ex_metrics.csv", "CON": "CON_metrics.csv"}
    assert set(pd.read_csv(tmp_path / "out" / files["CON.x"], keep_default_na=False)["context"]) == {"CON.x"}
    real, pred = _two_contexts(names=("CD4", "cd4"))
    with pytest.raises(ValueError, match=r"contexts 'CD4' and 'cd4' would write the same files.*differ only in case"):
        evaluate_profile_files(pred, real, tmp_path / "out2", "cell-eval-0.8.2", celltype_col="cell_type")


def test_a_context_starting_with_a_dot_writes_a_visible_file_that_reads_back_and_replaces_the_old_hidden_one(tmp_path):
    """``.x`` wrote the hidden ``.x_metrics.csv``; now ``%2Ex_metrics.csv``, its label read back from the file's ``context``
    column and from ``summary.json``. A folder written before (its ``summary.json`` listing ``.x_metrics.csv``) is
    evaluated again without ``--overwrite`` and keeps no hidden table beside the new one."""
    import json
    import shutil

    real, pred = _two_contexts(names=(".x", "x"))
    out = tmp_path / "out"
    summary = evaluate_profile_files(pred, real, out, "cell-eval-0.8.2", celltype_col="cell_type", page=False)
    assert {c: p["files"] for c, p in summary["per_context"].items()} == {".x": ["%2Ex_metrics.csv"], "x": ["x_metrics.csv"]}
    assert set(pd.read_csv(out / "%2Ex_metrics.csv", keep_default_na=False)["context"]) == {".x"}
    # the folder as the older code left it: the hidden table, listed in summary.json
    shutil.move(out / "%2Ex_metrics.csv", out / ".x_metrics.csv")
    doc = json.loads((out / "summary.json").read_text())
    doc["per_context"][".x"]["files"] = [".x_metrics.csv"]
    (out / "summary.json").write_text(json.dumps(doc))
    evaluate_profile_files(pred, real, out, "cell-eval-0.8.2", celltype_col="cell_type", page=False)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MARK]
    assert (out / "%2Ex_metrics.csv").is_file()


@pytest.mark.parametrize(("a", "b", "why"), [("\u00c9", "e\u0301", "Unicode form"), ("stra\u00dfe", "STRASSE", "folds case fully"),
                                             ("Stra\u00dfe", "STRA\u1e9eE", "folds case fully"), ("T\u200ccell", "tcell", "invisible")])
def test_contexts_a_file_system_stores_as_one_name_are_refused_saying_why(tmp_path, a, b, why):
    """``\u00c9`` and ``e`` + a combining accent wrote two files, one file on macOS (its file systems compare names
    case-blind and in one Unicode form): refused now, as ``T`` and ``t`` are. ``stra\u00dfe`` and ``STRASSE`` are one
    name where case is folded fully (Linux's case-insensitive folders): refused as before, the message says so."""
    real, pred = _two_contexts(names=(a, b))
    with pytest.raises(ValueError, match=f"would write the same files.*{why}"):
        evaluate_profile_files(pred, real, tmp_path / "out", "cell-eval-0.8.2", celltype_col="cell_type", page=False)


def test_vcc2026_per_context_scores_one_predicted_control_cell_per_context(tmp_path):
    """Per context too: ``vcc2026`` scores against each context's REAL controls, so one predicted control cell per
    context is enough (cell-eval2 scores such a pair); none is still refused, naming the context."""
    real, pred = _counts_pair()
    real2, pred2 = _counts_pair(seed=3)
    for a, name in ((real, "T"), (pred, "T"), (real2, "B"), (pred2, "B")):
        a.obs["cell_type"] = name
    real, pred = ad.concat([real, real2], index_unique="-"), ad.concat([pred, pred2], index_unique="-")
    ctrl = (pred.obs["target"] == CONTROL).to_numpy()
    first = {ct: np.flatnonzero(ctrl & (pred.obs["cell_type"] == ct).to_numpy())[0] for ct in ("T", "B")}
    keep = ~ctrl
    keep[list(first.values())] = True
    full = evaluate_profile_files(pred, real, tmp_path / "all", "vcc2026", celltype_col="cell_type", no_target_genes=True)
    one = evaluate_profile_files(_sub(pred, keep), real, tmp_path / "one", "vcc2026", celltype_col="cell_type", no_target_genes=True)
    assert one["metrics"] == full["metrics"]
    keep[first["T"]] = False
    with pytest.raises(ValueError, match=r"'T': the pred file has 0 control cell"):
        evaluate_profile_files(_sub(pred, keep), real, tmp_path / "none", "vcc2026", celltype_col="cell_type", no_target_genes=True)


def test_reads_pred_controls_of_each_profile_and_of_a_metric_asked_for_the_predictions_controls():
    """Which profiles read the prediction's control cells, from cell-eval2's presets: ``v2`` and ``vcc2026`` take every delta
    and DE test against the real controls (``control_source: real``), ``cell-eval-0.7.6`` against each file's own
    (``control_source: pred``); cell-eval 0.8.2 and distgen's own metrics read them. A profile whose one metric is given
    ``control_source="pred"`` reads them too (the preset's ``real`` was read in its place), so a one-control prediction is
    still refused there."""
    from dataclasses import replace

    from distgen.evaluation.profiles import PROFILES, reads_pred_controls

    assert {n: reads_pred_controls(p) for n, p in PROFILES.items()} == {
        "celleval2": False, "vcc2026": False, "cell-eval-0.7.6": True, "cell-eval-0.8.2": True, "distgen": True}
    v = PROFILES["vcc2026"]
    for metric in ("de_wilcoxon_lfc_nmae", "pds_cosine"):  # a DE test and a delta against the prediction's own controls
        mixed = replace(v, params={**v.params, metric: {**v.params[metric], "control_source": "pred"}})
        assert reads_pred_controls(mixed), metric
    # a metric of another preset (cell-eval-0.7.6: control_source pred) beside the vcc2026 ones
    other = replace(v, params={**v.params, "pds_cosine": {"preset": "cell-eval-0.7.6"}})
    assert reads_pred_controls(other)
    # control_source given to a metric that reads no control of the prediction changes nothing
    inert = replace(v, params={**v.params, "expr_mse_unbiased": {**v.params["expr_mse_unbiased"], "control_source": "pred"}})
    assert not reads_pred_controls(inert)
