"""Bad prediction/truth pairs: clear errors or NaN-with-reason, never a silent wrong number."""

import math
import re

import numpy as np
import pytest
import torch

from distgen.evaluation.suite import run_metrics
from distgen.pipeline.evaluate import load_pair

from .synth import CONTROL, make_pair


@pytest.fixture(scope="module")
def pair():
    return make_pair(seed=1, n_genes=30, n_ctrl=30, n_cells=6, combos=False)


def test_gene_order_is_aligned_and_recorded(pair):
    real, pred = pair
    data, _ = load_pair(pred, real, "target", CONTROL)
    shuffled = pred[:, list(reversed(pred.var_names))].copy()
    data2, info = load_pair(shuffled, real, "target", CONTROL)
    assert info.notes and "reordered" in info.notes[0]
    np.testing.assert_array_equal(data.pred.X.numpy(), data2.pred.X.numpy())


def test_different_genes_are_an_error(pair):
    real, pred = pair
    with pytest.raises(ValueError, match=r"different genes.*G29"):
        load_pair(pred[:, :-1].copy(), real, "target", CONTROL)


@pytest.mark.parametrize(("spell", "what"), [(str.lower, "letter case"), (lambda g: f" {g} ", "surrounding whitespace"),
                                             (lambda g: f"{g}.3", "an Ensembl version suffix")])
def test_genes_spelled_another_way_are_refused_with_the_renaming_not_a_subset(pair, spell, what):
    # another tool's names for the same genes: "subset both to the same genes" would leave nothing (or a few) to score
    real, pred = pair
    real, pred = real.copy(), pred.copy()
    ids = [f"ENSG{i:011d}" for i in range(real.n_vars)]
    real.var_names, pred.var_names = ids, [spell(g) for g in ids]
    if what == "an Ensembl version suffix":
        pred.var_names = [f"{g}.{i % 4 + 1}" for i, g in enumerate(ids)]
    with pytest.raises(ValueError, match=rf"{real.n_vars} of the prediction's {real.n_vars} other genes differ from a real gene "
                                         rf"only by {what} \(e\.g\. .*: rename the prediction's var_names"):
        load_pair(pred, real, "target", CONTROL)
    # genes that are simply other genes keep the plain advice
    other = pred.copy()
    other.var_names = [f"X{i}" for i in range(real.n_vars)]
    with pytest.raises(ValueError, match="subset both to the same genes"):
        load_pair(other, real, "target", CONTROL)


@pytest.mark.parametrize("side", ["pred", "real"])
def test_gene_ids_with_the_names_in_a_var_column_name_the_column(pair, tmp_path, side):
    # scGPT/GEARS/Seurat exports index genes by Ensembl ID and keep the symbols in var: no gene matched, and the error said
    # "subset both to the same genes"
    real, pred = (a.copy() for a in pair)
    ids = real if side == "real" else pred
    ids.var["gene_symbols"] = list(ids.var_names)
    ids.var_names = [f"ENSG{i:011d}" for i in range(ids.n_vars)]
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    said = rf"but the {side} file's var\['gene_symbols'\] holds 30 of .* 30 gene names: set {side}.var_names = {side}.var\['gene_symbols'\]"
    for p, r in ((pred, real), (str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"))):  # AnnData, then files (the h5py reader)
        with pytest.raises(ValueError, match=said):
            load_pair(p, r, "target", CONTROL)
    ids.var_names = list(ids.var["gene_symbols"])  # the fix it names
    assert load_pair(pred, real, "target", CONTROL)[0].n_perts == 10


@pytest.mark.parametrize("side", ["pred", "real"])
def test_the_python_api_reading_files_one_by_one_names_the_gene_column_too(pair, side):
    # distgen.evaluate with one side in memory (Cells) reads the other file on its own: the var-column hint was given only
    # when both were files read as a pair, so this said "subset both to the same genes"
    import distgen
    from distgen.data import layout

    real, pred = (a.copy() for a in pair)
    ids = real if side == "real" else pred
    ids.var["gene_symbols"] = list(ids.var_names)
    ids.var_names = [f"ENSG{i:011d}" for i in range(ids.n_vars)]
    kw = {"pert_col": "target", "control": CONTROL}
    # the truth in memory and the prediction a file, or the other way round
    args = (pred, layout.read(real, **kw, name="real")) if side == "pred" else (layout.read(pred, **kw, name="pred"), real)
    said = rf"but the {side} file's var\['gene_symbols'\] holds 30 of .* 30 gene names: set {side}.var_names = {side}.var\['gene_symbols'\]"
    run = {"baselines": [], "metric_names": ["mse"], "ceiling": False, "make_plots": False, "progress": False}
    with pytest.raises(ValueError, match=said):
        distgen.evaluate(*args, **run, **kw)
    ids.var_names = list(ids.var["gene_symbols"])  # the fix it names
    distgen.evaluate(*args, **run, **kw)


def test_missing_control_and_column_are_named(pair):
    real, pred = pair
    no_ctrl = pred[pred.obs["target"] != CONTROL].copy()
    with pytest.raises(ValueError, match="pred file has no control cells"):
        load_pair(no_ctrl, real, "target", CONTROL)
    with pytest.raises(ValueError, match="'guide' is not in the real file"):
        load_pair(pred, real, "guide", CONTROL)


@pytest.mark.parametrize("control", [None, CONTROL])
def test_a_control_label_of_another_tool_is_named_with_the_relabelling(pair, tmp_path, control):
    # GEARS/scGPT-style files call the controls 'ctrl' or 'control': --control names one label for both files, so the fix
    # is a relabelling, not --control; the error names both labels (from AnnData and from files, by either reader)
    real, pred = pair
    other = pred.copy()
    other.obs["target"] = other.obs["target"].astype(str).replace({CONTROL: "ctrl"})
    other.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    said = r"the pred file labels its control cells 'ctrl' but the real file 'non-targeting'.*replace\(\{'ctrl': 'non-targeting'\}\)"
    for p, r in ((other, real), (str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"))):
        with pytest.raises(ValueError, match=said):
            load_pair(p, r, "target", control)


def test_prediction_only_perturbation_is_an_error_and_missing_one_is_nan(pair):
    real, pred = pair
    with pytest.raises(ValueError, match="the pred has 1 perturbation that the truth lacks"):
        load_pair(pred, real[real.obs["target"] != "G3"].copy(), "target", CONTROL)
    data, _ = load_pair(pred[pred.obs["target"] != "G3"].copy(), real, "target", CONTROL)
    t = run_metrics(data, ["mse", "overlap_at_N"])
    assert math.isnan(t.values["mse"][data.perts.index("G3")])
    assert "no pred cells" in t.reasons["mse"]["G3"]


def test_truth_labels_spelled_another_way_are_named_with_the_fix(pair):
    # KLF1_MAP2K6 for KLF1+MAP2K6, g3 for G3: "the truth lacks them" alone sends the user looking for missing data
    real, pred = pair
    for new, truth_label in (("g3", "G3"), ("G3_G4", "G3+G4")):
        other = pred.copy()
        other.obs["target"] = other.obs["target"].astype(str).replace({"G3": new})
        truth = real.copy()
        truth.obs["target"] = truth.obs["target"].astype(str).replace({"G3": truth_label})
        with pytest.raises(ValueError, match=r"1 of them name a truth perturbation spelled another way \(e.g. "
                                             + re.escape(f"'{new}' for '{truth_label}'")):
            load_pair(other, truth, "target", CONTROL)
    other = pred.copy()
    other.obs["target"] = other.obs["target"].astype(str).replace({"G3": "Z9"})
    with pytest.raises(ValueError, match=r"truth lacks them, or drop them|evaluate against a truth that contains them"):
        load_pair(other, real, "target", CONTROL)


def test_labels_and_genes_in_another_unicode_form_are_named_with_the_code_points(pair):
    # 'é' composed (NFC, one code point) in the truth and decomposed (NFD, 'e' + a combining accent) in the prediction, as
    # two tools may write one label: both print the same, so "the truth lacks them" alone shows two equal-looking lists
    import unicodedata

    real, pred = pair
    truth, other = real.copy(), pred.copy()
    truth.obs["target"] = truth.obs["target"].astype(str).replace({"G3": unicodedata.normalize("NFC", "G3é")})
    other.obs["target"] = other.obs["target"].astype(str).replace({"G3": unicodedata.normalize("NFD", "G3é")})
    with pytest.raises(ValueError, match=re.escape(r"""(e.g. 'G3e\u0301' for 'G3\xe9': letter case, the combination delimiter or the Unicode form)""")):
        load_pair(other, truth, "target", CONTROL)
    truth, other = real.copy(), pred.copy()
    truth.var_names = [unicodedata.normalize("NFC", f"{g}µ") for g in real.var_names]  # MICRO SIGN
    other.var_names = [unicodedata.normalize("NFC", f"{g}μ") for g in pred.var_names]  # GREEK SMALL LETTER MU
    with pytest.raises(ValueError, match=r"differ from a real gene only by Unicode form .*\(e.g. 'G\d+\\u03bc' vs 'G\d+\\xb5'\)"):
        load_pair(other, truth, "target", CONTROL)


def test_two_usual_perturbation_columns_with_different_labels_are_refused_unless_one_is_named(pair, tmp_path):
    # perturbations in 'perturbation' and an experimental 'condition' (control/stimulated) beside them: the guess took
    # 'condition' (first of the usual names) and scored 'stimulated' against 'control', with no word, from AnnData or files
    real, pred = pair
    files = []
    for a in (pred, real):
        a = a.copy()
        a.obs = a.obs.rename(columns={"target": "perturbation"})
        a.obs["condition"] = np.where(np.arange(a.n_obs) % 2, "stimulated", "control")
        files.append(a)
    files[0].write_h5ad(tmp_path / "pred.h5ad")
    files[1].write_h5ad(tmp_path / "real.h5ad")
    said = (r"the real file holds two usual ones with different labels: obs\['condition'\] \('control', 'stimulated'\) "
            r"and obs\['perturbation'\].*--pert-col perturbation")
    for p, r in ((files[0], files[1]), (str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"))):
        with pytest.raises(ValueError, match=said):
            load_pair(p, r)
        data, info = load_pair(p, r, "perturbation")
        assert info.pert_col == "perturbation" and "G3" in data.perts
    for a in files:  # a copy of the labels under a second usual name (Norman's condition and perturbation) is one column
        a.obs["condition"] = a.obs["perturbation"].astype(str)
    data, info = load_pair(files[0], files[1])
    assert info.pert_col == "condition" and "G3" in data.perts


def test_perturbation_columns_named_differently_are_named_with_the_renaming(pair):
    real, pred = pair
    other = pred.copy()
    other.obs = other.obs.rename(columns={"target": "condition"})
    with pytest.raises(ValueError, match=r"the real file holds its perturbation labels in obs\['target'\] but the pred file in "
                                         r"obs\['condition'\].*rename\(columns=\{'condition': 'target'\}\)"):
        load_pair(other, real)


def test_nan_predictions_and_single_cells_are_reported(pair):
    real, pred = pair
    pred = pred.copy()
    idx = np.flatnonzero(pred.obs["target"].to_numpy() == "G2")
    pred.X[idx[0], 4] = np.nan
    keep = np.ones(pred.n_obs, bool)
    keep[np.flatnonzero(pred.obs["target"].to_numpy() == "G5")[1:]] = False
    data, _ = load_pair(pred[keep].copy(), real, "target", CONTROL)
    t = run_metrics(data, ["mse", "pearson_delta", "edistance"])
    assert "NaN" in t.reasons["mse"]["G2"] and "only 1 pred cell" in t.reasons["edistance"]["G5"]
    ok = [p for p in data.perts if p not in ("G2", "G5")]
    assert all(not math.isnan(t.values["mse"][data.perts.index(p)]) for p in ok)


def test_raw_counts_are_refused(pair):
    real, pred = pair
    counts = pred.copy()
    counts.X = np.round(np.expm1(counts.X) * 10)
    with pytest.raises(ValueError, match="raw counts"):
        load_pair(counts, real, "target", CONTROL)


def test_columns_are_guessed_from_conventions(pair):
    real, pred = pair
    _, info = load_pair(pred, real)
    assert (info.pert_col, info.control) == ("target", CONTROL)


@pytest.mark.parametrize("value, refused", [(float("nan"), False), (float("inf"), False), (float("-inf"), False), (0.0, False),
                                            (7.0, False), (-1.0, True), (0.5, True), (-0.5, True), (2.25, True)])
@pytest.mark.parametrize("with_nan", [False, True])
def test_check_counts_judges_the_finite_values_only(value: float, refused: bool, with_nan: bool) -> None:
    from distgen.evaluation.io import check_counts

    x = np.random.default_rng(0).poisson(0.7, (50, 9)).astype(np.float32)
    x[3, 4] = value
    if with_nan:  # a NaN elsewhere must not hide (or cause) a refusal
        x[10, 1] = np.nan
    if refused:
        with pytest.raises(ValueError, match="fractional or negative"):
            check_counts(torch.from_numpy(x), "pred")
    else:
        check_counts(torch.from_numpy(x), "pred")


@pytest.mark.parametrize("value, refused", [(float("nan"), True), (float("inf"), True), (29.0, True), (31.5, False)])
def test_check_scale_refuses_integers_among_the_finite_values(value: float, refused: bool) -> None:
    """Whole numbers with some value above 1 are raw counts, however small: until 2026-12-06 only integers above 30 were,
    and a matrix of small counts (up to ~12 here) was scored as log-normalised values. A fraction anywhere is log data."""
    from distgen.evaluation.io import check_scale

    x = np.random.default_rng(1).poisson(3.0, (40, 6)).astype(np.float64)  # integers up to ~12: counts, but small
    x[2, 2] = value
    if refused:
        with pytest.raises(ValueError, match="raw counts"):
            check_scale(x, "pred", strict=True)
    else:
        check_scale(x, "pred", strict=True)
    check_scale(x, "pred")  # cells a loader read at a declared scale: integers above 30 only
