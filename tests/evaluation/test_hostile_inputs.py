"""User files that scored silently wrong or crashed with a traceback-like exit 1 (a probe of hostile inputs): each case
states what a reference (cell-eval 0.8.2 / cell-eval2 0.20.0) or the file itself says is right."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.errors import EXIT_USAGE

from .synth import CONTROL


def _pair(perts=("A", "B", "C"), control=CONTROL, counts=False, seed=0, n=20, n_ctrl=30):
    """(pred, real) AnnData over 30 genes (the perturbations' names first), each perturbation raising its own gene."""
    # the atoms as gene names, trimmed: 'A+' has an empty atom, and a gene named '' is refused (tests/data/test_blank_gene_names.py)
    genes = [*sorted({a.strip() for p in perts for a in p.split("+") if a.strip()}), *(f"G{i}" for i in range(30))][:30]
    rng = np.random.default_rng(seed)
    base = rng.uniform(1.0, 6.0, len(genes))

    def file(noise):
        labels = [control] * n_ctrl + [p for p in perts for _ in range(n)]
        rates = np.stack([base * (1 + 3.0 * np.isin(genes, lab.split("+"))) for lab in labels])
        x = rng.poisson(rates * (1 + noise * rng.random(rates.shape))).astype(np.float64)
        if not counts:
            x = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)
        a = ad.AnnData(x.astype(np.float32), obs=pd.DataFrame({"target": pd.Categorical(labels)}, index=[f"c{i}" for i in range(len(labels))]))
        a.var_names = genes
        return a

    return file(0.5), file(0.0)


def _files(tmp_path, pred, real):
    pp, rp = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    pred.write_h5ad(pp)
    real.write_h5ad(rp)
    return str(pp), str(rp)


def _evaluate(tmp_path, pp, rp, *more, out="ev"):
    return main(["evaluate", "--pred", pp, "--real", rp, "--out", str(tmp_path / out), "--no-plots", "--quiet", "--overwrite", *more])


@pytest.mark.parametrize("profile", [None, "cell-eval-0.8.2"])
def test_a_usual_control_word_that_is_not_the_named_control_is_a_perturbation(tmp_path, profile):
    """A drug panel whose control is 'untreated' and which treats cells with 'DMSO' (a vehicle, one of the usual control
    words): DMSO was read as control cells, pooled into every delta's control mean and never scored. cell-eval scores every
    label but --control as a perturbation."""
    pp, rp = _files(tmp_path, *_pair(perts=("DMSO", "drugA", "drugB"), control="untreated"))
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, "--control", "untreated", *more) == 0
    rows = pd.read_csv(tmp_path / "ev" / "metrics.csv")
    assert sorted(rows["perturbation"]) == ["DMSO", "drugA", "drugB"]


def test_two_usual_control_words_without_control_are_refused_naming_both(tmp_path, capsys):
    pred, real = _pair(perts=("DMSO", "drugA"), control="control")
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--baselines", "", "--no-ceiling") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "['control', 'DMSO']" in err and "--control control" in err


def test_a_combination_still_drops_its_control_atoms():
    from distgen.types.layout import canonical_condition

    assert canonical_condition("A+ctrl", "non-targeting") == "A" and canonical_condition("ctrl+ctrl", "ctrl") == "ctrl"
    assert canonical_condition(" DMSO ", "untreated") == "DMSO" and canonical_condition("untreated", "untreated") == "untreated"
    # a control label with a space (--control 'ctrl ', as the file writes it) still reads its controls as control
    assert canonical_condition("ctrl ", "ctrl ") == "ctrl " and canonical_condition("A+ctrl ", "ctrl ") == "A"


@pytest.mark.parametrize("profile", [None, "cell-eval-0.8.2"])
def test_a_named_control_keeps_another_control_word_as_an_atom_of_a_combination(tmp_path, profile):
    """'DMSO+drugA' with --control untreated: the DMSO atom was dropped as a control token, so the combination's cells were
    pooled into 'drugA' (one row, two conditions' cells). cell-eval keeps every label but --control apart."""
    pp, rp = _files(tmp_path, *_pair(perts=("DMSO+drugA", "drugA", "drugB"), control="untreated"))
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, "--control", "untreated", *more) == 0
    rows = pd.read_csv(tmp_path / "ev" / "metrics.csv")
    assert sorted(set(rows["perturbation"])) == ["DMSO+drugA", "drugA", "drugB"]
    if profile is None:  # each row holds its own 20 cells, not 40
        assert set(rows["n_cells_real"]) == {20}


def test_a_guessed_control_still_drops_usual_control_words_from_combinations():
    from distgen.types.layout import canonical_condition, control_words

    assert canonical_condition("DMSO+drugA", "untreated", (), control_words(True)) == "DMSO+drugA"
    assert canonical_condition("drugA+untreated", "untreated", (), control_words(True)) == "drugA"
    assert canonical_condition("A+ctrl", "non-targeting", (), control_words(False)) == "A"
    assert canonical_condition("A+ctrl", "non-targeting", (), control_words(True)) == "A+ctrl"


def test_a_file_distgen_wrote_keeps_a_control_word_atom_of_a_combination(tmp_path):
    """distgen trained with control_labels=['untreated'] has DMSO as an atom; its prediction 'DMSO+drugA' (file control
    'non-targeting', recorded) read back as 'drugA' without --control."""
    from distgen.data import layout
    from distgen.types import Cells

    pred, real = _pair(perts=("DMSO+drugA", "drugA"))
    cells = {k: Cells(a.X, a.obs["target"].astype(str).to_numpy(), list(a.var_names), control=CONTROL) for k, a in (("p", pred), ("r", real))}
    layout.write_pair(cells["p"], cells["r"], tmp_path / "p.h5ad", tmp_path / "r.h5ad")
    p, r, _, _ = layout.read_pair(tmp_path / "p.h5ad", tmp_path / "r.h5ad")
    for c in (p, r):
        assert sorted(set(c.conditions[~c.is_control].tolist())) == ["DMSO+drugA", "drugA"]
    from distgen.evaluation.h5pair import read_pair_fast

    fast = read_pair_fast(str(tmp_path / "p.h5ad"), str(tmp_path / "r.h5ad"))
    assert fast is not None and sorted(set(fast[1].conditions[~fast[1].is_control].tolist())) == ["DMSO+drugA", "drugA"]


def test_training_data_with_a_named_control_keeps_the_control_word_atom():
    """The training loader's rule, which the readers follow: only the schema's control labels are control tokens."""
    from distgen.data import PerturbationData, PerturbationSchema

    _, real = _pair(perts=("DMSO+drugA", "drugA", "DMSO"), control="untreated")
    with pytest.warns(UserWarning, match="look like control labels"):  # told, and read as a perturbation
        data = PerturbationData.from_anndata(real, PerturbationSchema(perturbation_col="target", control_labels=("untreated",), scale="log"))
    assert sorted(set(data.conditions.tolist()) - {"control"}) == ["DMSO", "DMSO+drugA", "drugA"]


@pytest.mark.parametrize("profile", [None, "cell-eval-0.8.2", "celleval2"])
@pytest.mark.parametrize("twin", ["A ", " A", "A+", "B + C"])
def test_labels_that_differ_only_by_spaces_are_refused_naming_both_and_their_counts(tmp_path, capsys, profile, twin):
    """'A' and 'A ' in one file were read as one condition (40 cells in one row) where cell-eval scores two: refused, with
    each spelling's cell count and the fix."""
    perts = ("A", "B", "B+C", twin)
    pred, real = _pair(perts=perts, counts=profile == "celleval2")
    pp, rp = _files(tmp_path, pred, real)
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    seen = "B+C" if "C" in twin else "A"
    assert f"{seen!r} (20 cells) and {twin!r} (20 cells)" in err or f"{twin!r} (20 cells) and {seen!r} (20 cells)" in err
    assert "str.strip()" in err and "Traceback" not in err
    assert not (tmp_path / "ev" / "metrics.csv").exists()


def test_training_data_with_labels_that_differ_only_by_spaces_warns_naming_them():
    from distgen.data import PerturbationData, PerturbationSchema

    _, real = _pair(perts=("A", "A ", "B"))
    with pytest.warns(UserWarning, match=r"'A' and 'A ' differ only in surrounding spaces and are read as one condition each \('A'\).*str.strip\(\)"):
        data = PerturbationData.from_anndata(real, PerturbationSchema(perturbation_col="target", control_labels=(CONTROL,), scale="log"))
    assert sorted(set(data.conditions.tolist()) - {"control"}) == ["A", "B"]  # read as one, and said


def test_spacing_twins_leave_order_and_case_apart():
    from distgen.types.layout import spacing_twins

    assert spacing_twins(["A+B", "B+A", "a", "A", "A+ctrl"]) == []  # a combination's order, case, a control atom: not spacing
    assert spacing_twins(["A", "A ", " A", "B"]) == [[" A", "A", "A "]]
    assert spacing_twins(["A_B", "A _B", "A+B"], ("_",)) == [["A _B", "A_B"]]


def test_files_distgen_wrote_keep_a_perturbation_named_like_a_control_word(tmp_path):
    """A truth written by distgen (uns['distgen']['control'] = 'non-targeting') with a perturbation 'DMSO' reads back with
    DMSO as a perturbation, the control guessed from the record."""
    from distgen.data import layout
    from distgen.types import Cells

    pred, real = _pair(perts=("DMSO", "A"))
    cells = {k: Cells(a.X, a.obs["target"].astype(str).to_numpy(), list(a.var_names), control=CONTROL) for k, a in (("p", pred), ("r", real))}
    layout.write_pair(cells["p"], cells["r"], tmp_path / "p.h5ad", tmp_path / "r.h5ad")
    _, r, _, info = layout.read_pair(tmp_path / "p.h5ad", tmp_path / "r.h5ad")
    assert info.control == CONTROL and sorted(set(r.conditions[~r.is_control].tolist())) == ["A", "DMSO"]


@pytest.mark.parametrize("profile", ["celleval2", "cell-eval-0.8.2"])
def test_a_context_too_long_for_a_file_name_is_refused_before_scoring(tmp_path, capsys, profile):
    """Each context's table is <context>_metrics.csv: a 300-character context ended in 'File name too long' (exit 1)."""
    pred, real = _pair(counts=profile == "celleval2")
    for a in (pred, real):
        a.obs["celltype"] = pd.Categorical(["K" * 300 if i % 2 else "B" for i in range(a.n_obs)])
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", profile, "--celltype-col", "celltype") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "too long for a file name" in err and "300 bytes" in err and "Traceback" not in err
    assert not (tmp_path / "ev" / "B_metrics.csv").exists()


@pytest.mark.parametrize("twin", [("a/b", "a-b"), ("T", "t")])
def test_contexts_whose_table_files_would_coincide_are_refused_before_scoring(tmp_path, capsys, twin):
    """Each context's table is <context>_metrics.csv ('/' written '-'): 'a/b' and 'a-b' were refused; 'T' and 't' were
    written as two files, one file on macOS' and Windows' case-insensitive file systems (the second overwrote the first)."""
    pred, real = _pair()
    for a in (pred, real):
        a.obs["celltype"] = pd.Categorical([twin[i % 2] for i in range(a.n_obs)])
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", "cell-eval-0.8.2", "--celltype-col", "celltype") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "would write the same files" in err and repr(twin[0]) in err and repr(twin[1]) in err and "Traceback" not in err
    assert not list((tmp_path / "ev").glob("*_metrics.csv")) if (tmp_path / "ev").exists() else True


def test_prediction_contexts_the_truth_lacks_exit_2_with_the_spelling(tmp_path, capsys):
    """Contexts 'K562' against the truth's 'k562' exited 1 (a ValueError); now exit 2, naming the spelling."""
    pred, real = _pair()
    pred.obs["celltype"], real.obs["celltype"] = pd.Categorical(["K562"] * pred.n_obs), pd.Categorical(["k562"] * real.n_obs)
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--baselines", "", "--no-ceiling") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "'K562' for 'k562'" in err and "letter case" in err


@pytest.mark.parametrize("side", ["real", "pred"])
def test_a_context_without_control_cells_exits_2_naming_the_side(tmp_path, capsys, side):
    """Context 'y' holding perturbed cells but no controls in one file: the truth's case failed inside EvalData (exit 1)."""
    pred, real = _pair()
    for a in (pred, real):
        is_ctrl = (a.obs["target"] == CONTROL).to_numpy()
        ctx = np.where(np.arange(a.n_obs) % 2, "x", "y")
        if a is (real if side == "real" else pred):
            ctx = np.where(is_ctrl, "x", ctx)
        a.obs["celltype"] = pd.Categorical(ctx)
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--baselines", "", "--no-ceiling") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"the {'truth' if side == 'real' else 'prediction'} has no control cells of context 'y'" in err and "Traceback" not in err


def test_a_profile_warns_when_prediction_and_truth_are_one_file(tmp_path):
    """The default evaluation warned of a perfect score from one file given twice; --profile scored it without a word."""
    _, real = _pair(counts=True)
    path = tmp_path / "real.h5ad"
    real.write_h5ad(path)
    with pytest.warns(UserWarning, match="the prediction and the truth are the same file"):
        assert _evaluate(tmp_path, str(path), str(path), "--profile", "celleval2") == 0


def test_compare_refuses_evaluations_against_other_control_cells(tmp_path, capsys):
    """One file pair evaluated with --control untreated and with --control DMSO: the shared perturbations' deltas are taken
    from other control cells, yet compare paired them and declared verdicts."""
    pp, rp = _files(tmp_path, *_pair(perts=("DMSO", "drugA", "drugB"), control="untreated"))
    assert _evaluate(tmp_path, pp, rp, "--control", "untreated", "--baselines", "", "--no-ceiling", out="e1") == 0
    assert _evaluate(tmp_path, pp, rp, "--control", "DMSO", "--baselines", "", "--no-ceiling", out="e2") == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "e1"), str(tmp_path / "e2")]) == EXIT_USAGE
    assert "same --control" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "e1"), str(tmp_path / "e1")]) == 0


def test_training_labels_spelled_otherwise_than_the_truth_are_warned(tmp_path):
    """--train with labels 'a', 'b' against the truth's 'A', 'B': the additive baseline fell back to the control (its atoms
    'unseen'), which only a note in summary.json said; the baselines' scores, and the model's normalised ones, moved."""
    pred, real = _pair(perts=("A", "B"))
    train, _ = _pair(perts=("A", "B"), seed=3)
    train.obs["target"] = pd.Categorical(train.obs["target"].astype(str).map(lambda s: s if s == CONTROL else s.lower()))
    pp, rp = _files(tmp_path, pred, real)
    train.write_h5ad(tmp_path / "train.h5ad")
    with pytest.warns(UserWarning, match=r"'a' for 'A'"):
        assert _evaluate(tmp_path, pp, rp, "--train", str(tmp_path / "train.h5ad"), "--no-ceiling") == 0
    import json

    assert any("'a' for 'A'" in n for n in json.loads((tmp_path / "ev" / "summary.json").read_text())["notes"])


def test_a_prediction_that_leaves_out_perturbations_is_warned_not_only_noted(tmp_path):
    """The default evaluation scores the rest (NaN rows with the reason), but the model's means then leave out the omitted
    perturbations while the baselines' means keep them: said on stderr, as NaN predictions are."""
    pred, real = _pair()
    pp, rp = _files(tmp_path, pred[(pred.obs["target"] != "C").to_numpy()].copy(), real)
    with pytest.warns(UserWarning, match=r"no \(or too few\) cells of 1 truth perturbation\(s\) \(C\)"):
        assert _evaluate(tmp_path, pp, rp, "--no-ceiling") == 0


def _malformed(path, how):
    import h5py

    with h5py.File(path, "r+") as f:
        name = "indices" if how in ("index", "nan_index", "half_index") else "indptr"
        arr = f[f"X/{name}"][()]
        if how == "index":
            arr[5] = 999  # a column past the 30 genes
        elif how == "indptr":
            arr[3], arr[4] = arr[4], arr[3]  # a decreasing indptr
        elif how == "half_index":  # stored as floats, one of them between two columns
            arr = arr.astype(np.float64)
            arr[3] += 0.5
        else:  # stored as floats, one of them NaN
            arr = arr.astype(np.float64)
            arr[3] = np.nan
        del f[f"X/{name}"]
        f[f"X/{name}"] = arr


@pytest.mark.parametrize("how", ["index", "indptr"])
@pytest.mark.parametrize("profile", [None, "celleval2"])
def test_a_malformed_sparse_matrix_is_refused_not_scored(tmp_path, capsys, how, profile):
    """A CSR X with a column index past the genes, or a decreasing indptr: anndata builds it without a full check, scipy's
    toarray writes the values elsewhere (cell-eval2 0.20.0 crashes with a segmentation fault on it), and distgen scored it
    with exit 0."""
    import scipy.sparse as sp

    pred, real = _pair(counts=profile == "celleval2")
    pred.X = sp.csr_matrix(pred.X)
    pp, rp = _files(tmp_path, pred, real)
    _malformed(pp, how)
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the pred file's X is a malformed sparse CSR matrix" in err


@pytest.mark.parametrize("how", ["nan_index", "nan_indptr"])
@pytest.mark.parametrize("profile", [None, "celleval2"])
def test_a_nan_sparse_position_is_refused_without_a_warning(tmp_path, capsys, how, profile):
    """A NaN position is refused before scipy casts it (which warned "invalid value encountered in cast": under ``python -W
    error`` an internal error instead of the refusal)."""
    import warnings

    import scipy.sparse as sp

    pred, real = _pair(counts=profile == "celleval2")
    pred.X = sp.csr_matrix(pred.X)
    pp, rp = _files(tmp_path, pred, real)
    _malformed(pp, how)
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the pred file's X is a malformed sparse CSR matrix" in err and "NaN" in err and "internal error" not in err


@pytest.mark.parametrize("profile", [None, "celleval2"])
def test_a_sparse_position_between_two_columns_is_refused_by_both_readers(tmp_path, capsys, profile):
    """A float position 2.5: the fast ``--profile`` reader read it as column 2 and scored the file, the anndata reader
    crashed in scipy ("unsupported data types in input", exit 1); both refuse it now, naming the positions' type."""
    import scipy.sparse as sp

    pred, real = _pair(counts=profile == "celleval2")
    pred.X = sp.csr_matrix(pred.X)
    pp, rp = _files(tmp_path, pred, real)
    _malformed(pp, "half_index")
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the pred file's X is a malformed sparse CSR matrix (its indices are stored as float64 values, not integers" in err


@pytest.mark.parametrize("profile", [None, "celleval2"])
def test_sparse_positions_stored_as_booleans_are_refused_by_both_readers(tmp_path, capsys, profile):
    """Column indices stored as bool (every column past 0 read as 1): the anndata reader summed the values of each cell
    into columns 0 and 1 and scored them (exit 0 under cell-eval2's profile, the fast reader having stepped aside for the
    repeated positions); both refuse it now."""
    import h5py
    import scipy.sparse as sp

    pred, real = _pair(counts=profile == "celleval2")
    pred.X = sp.csr_matrix(pred.X)
    pp, rp = _files(tmp_path, pred, real)
    with h5py.File(pp, "r+") as f:
        indices = f["X/indices"][()].astype(bool)
        del f["X/indices"]
        f["X/indices"] = indices
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the pred file's X is a malformed sparse CSR matrix (its indices are stored as bool values, not integers" in err


def _uint64_positions(path):
    """Rewrite a file's CSR ``X`` with its ``indptr`` stored as uint64 and its indices as uint32, as BPCells' AnnData writer
    stored them before 2024 (scipy densifies no uint64 positions: "unsupported data types in input")."""
    import h5py

    with h5py.File(path, "r+") as f:
        indices, indptr = f["X/indices"][()], f["X/indptr"][()]
        del f["X/indices"], f["X/indptr"]
        f["X/indices"], f["X/indptr"] = indices.astype(np.uint32), indptr.astype(np.uint64)


@pytest.mark.parametrize("profile", [None, "celleval2"])
def test_a_sparse_x_whose_pointer_is_stored_as_uint64_is_scored_as_stored(tmp_path, capsys, profile):
    """uint64 positions: ``--profile``'s h5py reader scored them, the anndata reader crashed in scipy ("error: unsupported
    data types in input", exit 1); both score the file as its int32 twin now."""
    import scipy.sparse as sp

    pred, real = _pair(counts=profile == "celleval2")
    pred.X = sp.csr_matrix(pred.X)
    pp, rp = _files(tmp_path, pred, real)
    more = ["--profile", profile] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more, out="int32") == 0
    _uint64_positions(pp)
    assert _evaluate(tmp_path, pp, rp, *more, out="uint64") == 0, capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "uint64" / "metrics.csv"), pd.read_csv(tmp_path / "int32" / "metrics.csv"))


def test_a_file_whose_sparse_pointer_is_stored_as_uint64_is_loaded_as_stored(tmp_path):
    """Training reads the file as its int32 twin (it crashed in scipy); an AnnData built in memory with uint64 positions
    is refused with the re-typing that reads it, its matrix left as it was."""
    import scipy.sparse as sp

    from distgen.data import PerturbationData, PerturbationSchema
    from distgen.errors import InputDataError

    schema = PerturbationSchema(perturbation_col="target", control_labels=(CONTROL,))
    _, real = _pair(counts=True)
    real.X = sp.csr_matrix(real.X)
    path = tmp_path / "real.h5ad"
    real.write_h5ad(path)
    twin = PerturbationData.read_h5ad(str(path), schema)
    _uint64_positions(path)
    data = PerturbationData.read_h5ad(str(path), schema)
    np.testing.assert_array_equal(np.asarray(data.table.X), np.asarray(twin.table.X))
    real.X.indptr = real.X.indptr.astype(np.uint64)
    with pytest.raises(InputDataError, match=r"expression 'X' is a sparse CSR matrix whose indptr are stored as uint64 .*astype\('int64'\)"):
        PerturbationData.from_anndata(real, schema)
    assert real.X.indptr.dtype == np.uint64


def test_a_malformed_sparse_matrix_is_refused_when_loading_data():
    import scipy.sparse as sp

    from distgen.data import PerturbationData, PerturbationSchema
    from distgen.errors import InputDataError

    _, real = _pair(counts=True)
    x = sp.csr_matrix(real.X)
    indices = x.indices.copy()
    indices[5] = 999
    real.X = sp.csr_matrix((x.data, indices, x.indptr), shape=x.shape)
    before = real.X.indices.dtype
    with pytest.raises(InputDataError, match="malformed sparse CSR matrix"):
        PerturbationData.from_anndata(real, PerturbationSchema(perturbation_col="target", control_labels=(CONTROL,)))
    assert real.X.indices.dtype == before  # the caller's matrix is left as it was


@pytest.mark.parametrize("text", ["{", "[1, 2]", "no column"])
def test_compare_names_a_damaged_summary(tmp_path, capsys, text):
    """A summary.json that is not JSON exited with the parser's words only; a JSON list was an internal error."""
    pp, rp = _files(tmp_path, *_pair())
    assert _evaluate(tmp_path, pp, rp, "--baselines", "", "--no-ceiling", out="e1") == 0
    assert _evaluate(tmp_path, pp, rp, "--baselines", "", "--no-ceiling", out="e2") == 0
    if text == "no column":
        (tmp_path / "e2" / "metrics.csv").write_text("label,mse\nA,1.0\n")
    else:
        (tmp_path / "e2" / "summary.json").write_text(text)
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "e1"), str(tmp_path / "e2")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert ("e2/metrics.csv has no 'perturbation' column" if text == "no column" else "e2/summary.json is") in err
    assert "internal error" not in err


def test_options_a_profile_does_not_read_are_warned_about(tmp_path):
    """--profile ignored --train, --metrics, --no-ceiling... without a word, and --no-target-genes did nothing without a
    cell-eval2 profile (yet cell-eval-0.8.2's summary recorded it, and compare refused that evaluation against one
    without the flag for a difference that was not there)."""
    import json
    import warnings

    pp, rp = _files(tmp_path, *_pair())
    with pytest.warns(UserWarning, match=r"--train, --metrics, --no-ceiling have no effect with --profile cell-eval-0.8.2"):
        assert _evaluate(tmp_path, pp, rp, "--profile", "cell-eval-0.8.2", "--train", pp, "--metrics", "mse", "--no-ceiling") == 0
    with pytest.warns(UserWarning, match="--no-target-genes has no effect with --profile cell-eval-0.8.2"):
        assert _evaluate(tmp_path, pp, rp, "--profile", "cell-eval-0.8.2", "--no-target-genes", out="flag") == 0
    assert json.loads((tmp_path / "flag" / "summary.json").read_text())["no_target_genes"] is False
    assert main(["compare", str(tmp_path / "ev"), str(tmp_path / "flag")]) == 0
    with pytest.warns(UserWarning, match="--no-target-genes has no effect without --profile"):
        assert _evaluate(tmp_path, pp, rp, "--no-target-genes", "--metrics", "mse", "--no-ceiling", out="plain") == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a profile's own options, and the defaults, say nothing
        assert _evaluate(tmp_path, pp, rp, "--profile", "cell-eval-0.8.2", "--seed", "3", out="quiet") == 0


@pytest.mark.parametrize("how", ["missing", "one cell", "nan"])
def test_the_distgen_profile_warns_about_perturbations_left_out_of_its_means(tmp_path, how):
    """The default evaluation warns on stderr when the model's means leave out perturbations it failed on; --profile
    distgen, which keeps its rules, said so only in summary.json's notes."""
    pred, real = _pair()
    rows = pred.obs["target"].to_numpy() == "B"
    if how == "missing":
        pred = pred[~rows].copy()
    elif how == "one cell":
        pred = pred[~rows | (np.cumsum(rows) == 1)].copy()
    else:
        pred.X[np.nonzero(rows)[0][0], 0] = np.nan
    pp, rp = _files(tmp_path, pred, real)
    with pytest.warns(UserWarning, match=r"1 of 3 perturbations .*NaN for every metric|no predicted cells") as got:
        assert _evaluate(tmp_path, pp, rp, "--profile", "distgen") == 0
    assert any("'B'" in str(w.message) or "B:" in str(w.message) for w in got)


@pytest.mark.parametrize(("profile", "store"), [("vcc2026", "layer"), ("vcc2026", "raw"), ("cell-eval-0.8.2", "layer"), (None, "layer")])
def test_a_file_on_the_other_scale_is_refused_naming_where_it_keeps_the_right_one(tmp_path, capsys, profile, store):
    """X on the other scale than scored, the right one in a layer or raw (scanpy's layers['counts'], Bioconductor's
    logcounts): the refusal said to normalise (or to pass counts) without naming the layer that holds them."""
    counts = profile == "vcc2026"
    pred_c, real_c = _pair(counts=True)
    pred_l, real_l = _pair(counts=False)
    files = []
    for c, lg in ((pred_c, pred_l), (real_c, real_l)):
        a = (lg if counts else c).copy()  # X on the scale not scored
        keep = c if counts else lg
        if store == "raw":
            a.raw = keep.copy()
        else:
            a.layers["counts" if counts else "logcounts"] = keep.X.copy()
        files.append(a)
    pp, rp = _files(tmp_path, *files)
    more = ["--profile", profile] if profile else ["--metrics", "mse", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    where = "adata.raw[:, adata.var_names].X" if store == "raw" else f"adata.layers['{'counts' if counts else 'logcounts'}']"
    assert where in err and "Traceback" not in err
    plain = [f.copy() for f in files]
    for a in plain:
        a.layers.clear()
        del a.raw
    pp, rp = _files(tmp_path, *plain)
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    assert "keeps" not in capsys.readouterr().err  # nothing to point to


@pytest.mark.parametrize("profile", [None, "distgen", "cell-eval-0.8.2"])
def test_raw_counts_that_never_exceed_30_are_refused_not_scored_as_log_values(tmp_path, capsys, profile):
    """Only integers above 30 were taken for raw counts: a pair of shallow counts (every value <= 30, as in a panel of
    lowly expressed genes) was scored by the default evaluation as log-normalised values, exit 0, with no word; the
    log profiles stopped with exit 1."""
    pred, real = _pair(counts=True)
    assert 1 < float(real.X.max()) <= 30 and float(pred.X.max()) <= 30
    pp, rp = _files(tmp_path, pred, real)
    more = ["--profile", profile] if profile else ["--metrics", "mse", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "look like raw counts" in err and "normalize_total" in err


def test_zeros_and_ones_alone_are_not_called_counts():
    from distgen.evaluation.io import check_scale

    check_scale(np.eye(5, dtype=np.float32), "pred", strict=True)  # binary values say nothing about the scale
    check_scale(np.log1p(np.arange(12, dtype=np.float32)).reshape(3, 4), "pred", strict=True)
    with pytest.raises(ValueError, match="look like raw counts"):
        check_scale(np.arange(12, dtype=np.float32).reshape(3, 4), "pred", strict=True)


def test_cells_read_at_a_declared_scale_keep_the_lenient_rule():
    """Cells the caller hands over (a Dataset loaded with schema.scale='log', Cells from layout.read) are not files:
    whole numbers up to 30 are theirs to declare, so distgen run does not fail at its evaluation after training."""
    import distgen
    from distgen.data import layout

    pred, real = _pair(counts=True)
    report = distgen.evaluate(layout.read(pred), layout.read(real), metric_names=["mse"], ceiling=False, make_plots=False,
                              progress=False)
    assert len(report.table.perts) == 3


@pytest.mark.parametrize("where", ["target", "celltype"])
def test_labels_in_two_unicode_forms_in_one_file_are_refused_naming_both(tmp_path, capsys, where):
    """'é' composed (NFC) and decomposed (NFD) in one file were two conditions (two rows that print alike in metrics.csv)
    or two cell types: refused, each form escaped, with the fix; the Python API as the command."""
    import unicodedata

    from distgen import evaluate
    from distgen.errors import InputDataError

    nfc, nfd = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
    pred, real = _pair(perts=("A", "B", "C"))
    for a in (pred, real):
        labels = a.obs["target"].astype(str)
        if where == "target":
            a.obs["target"] = pd.Categorical(labels.replace({"A": nfc, "B": nfd}))
        else:
            a.obs["celltype"] = pd.Categorical([nfc if i % 2 else nfd for i in range(a.n_obs)])
    pp, rp = _files(tmp_path, pred, real)
    more = ["--celltype-col", "celltype"] if where == "celltype" else []
    assert _evaluate(tmp_path, pp, rp, "--baselines", "", "--no-ceiling", *more) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Unicode form" in err and ascii(nfc) in err and ascii(nfd) in err and "Traceback" not in err
    assert not (tmp_path / "ev" / "metrics.csv").exists()
    with pytest.raises(InputDataError, match="Unicode form"):
        evaluate(pred, real, baselines=[], ceiling=False, metric_names=["mse"], celltype_col="celltype" if where == "celltype" else None)


@pytest.mark.parametrize("profile", ["vcc2026", "celleval2"])
def test_a_predicted_cell_past_a_million_counts_is_refused_as_cell_eval2_refuses_it(tmp_path, profile, capsys):
    """A predicted cell of 2e6 counts (a perturbed one: the real controls are the ones scored) was scored without a word;
    cell-eval2's v2 presets refuse it (``ScaleLimitError``: per-cell total exceeds max_counts_per_cell=1000000): no
    single cell holds a million molecules, so such a file is not raw counts of cells."""
    pred, real = _pair(counts=True)
    x = np.asarray(pred.X).copy()
    x[-1, 0] = 2e6
    pred.X = x
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", profile, "--no-target-genes") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "1,000,000" in err and "pred" in err and "C" in err, err
    x[-1, 0] = 9e5  # below the limit: scored
    pred.X = x
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", profile, "--no-target-genes", out="ok") == 0


def test_a_real_cell_past_a_million_counts_is_refused_as_cell_eval2_refuses_it(tmp_path, capsys):
    """The truth's cells likewise: cell-eval2's baseline and run refuse a real cell of 7e9 counts (``ScaleLimitError``);
    distgen scored it (one more member without a scale)."""
    pred, real = _pair(counts=True)
    x = np.asarray(real.X).copy()
    x[-1, 0] = 2e6
    real.X = x
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", "vcc2026", "--no-target-genes") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "1,000,000" in err and "real file" in err, err


@pytest.mark.parametrize("profile", ["vcc2026", "celleval2"])
def test_one_predicted_control_cell_is_scored_where_the_profile_reads_the_real_controls(tmp_path, profile, capsys):
    """``vcc2026`` and ``celleval2`` take every delta and DE test against the REAL controls (cell-eval2's v2 presets,
    ``control_source="real"``), and cell-eval2 scores a submission with one control cell; distgen refused it ("at least 2
    are needed: every perturbation's delta is taken from the control mean"), which is not what these profiles do. Now
    scored, and equal to the scores with every predicted control; a prediction without controls is still refused, and a
    profile that reads the prediction's controls (``cell-eval-0.7.6``) still refuses one."""
    import pandas as pd

    pred, real = _pair(counts=True)
    labels = pred.obs["target"].astype(str).to_numpy()
    one = pred[(labels != CONTROL) | (np.arange(pred.n_obs) == np.flatnonzero(labels == CONTROL)[0])].copy()
    pp, rp = _files(tmp_path, pred, real)
    assert _evaluate(tmp_path, pp, rp, "--profile", profile, "--no-target-genes", out="all") == 0
    p1 = str(tmp_path / "one.h5ad")
    one.write_h5ad(p1)
    assert _evaluate(tmp_path, p1, rp, "--profile", profile, "--no-target-genes", out="one") == 0
    full, single = (pd.read_csv(tmp_path / o / "metrics.csv") for o in ("all", "one"))
    pd.testing.assert_frame_equal(full.drop(columns=["n_cells_pred"], errors="ignore"),
                                  single.drop(columns=["n_cells_pred"], errors="ignore"))
    none = pred[labels != CONTROL].copy()
    p0 = str(tmp_path / "none.h5ad")
    none.write_h5ad(p0)
    assert _evaluate(tmp_path, p0, rp, "--profile", profile, "--no-target-genes", out="none") == EXIT_USAGE
    capsys.readouterr()
    lp, lr = _pair()
    llabels = lp.obs["target"].astype(str).to_numpy()
    lone = lp[(llabels != CONTROL) | (np.arange(lp.n_obs) == np.flatnonzero(llabels == CONTROL)[0])].copy()
    lpp, lrp = _files(tmp_path, lone, lr)
    assert _evaluate(tmp_path, lpp, lrp, "--profile", "cell-eval-0.7.6", out="v1") == EXIT_USAGE
    assert "1 control cell" in capsys.readouterr().err


@pytest.mark.parametrize("profile", ["vcc2026", "celleval2", None])
def test_a_prediction_without_control_cells_is_refused_with_the_reason_of_its_profile(tmp_path, profile, capsys):
    """A prediction with no control cell: cell-eval2 0.20.0 refuses the pair before scoring (``validate_pair``: the two
    files' label sets, the control included, must be equal: "perturbation sets differ ... real-only (1)=['ctrl']"), so
    distgen refuses it under ``vcc2026``/``celleval2`` too; but the reason it gave, "every evaluation needs control cells",
    is not theirs (they score against the real controls and one predicted control cell is enough). A profile that reads
    the predicted controls keeps its message as it was."""
    pred, real = _pair(counts=profile is not None)
    none = pred[pred.obs["target"].astype(str).to_numpy() != CONTROL].copy()
    pp, rp = _files(tmp_path, none, real)
    more = ["--profile", profile, "--no-target-genes"] if profile else ["--baselines", "", "--no-ceiling"]
    assert _evaluate(tmp_path, pp, rp, *more) == EXIT_USAGE
    err = capsys.readouterr().err
    head = f"the pred file has no control cells: label {CONTROL!r} is not in obs['target'] (its values: 'A', 'B', 'C'); "
    assert head in err
    if profile is None:
        assert head + "every evaluation needs control cells (pass --control LABEL; control='LABEL' in Python)" in err
        return
    assert ("this profile reads no predicted control cell, but cell-eval2, whose score it reproduces, refuses a prediction "
            "without the truth's control label (its perturbation sets differ): write at least one control cell in the pred "
            "file" in err)
    assert "every evaluation needs" not in err
    validate_pair = pytest.importorskip("cell_eval2.io").validate_pair
    with pytest.raises(ValueError, match=r"perturbation sets differ: 3 pred vs 4 real; pred-only \(0\)=\[\], real-only \(1\)="):
        validate_pair(none, real, pert_col="target", control=CONTROL)  # cell-eval2's own refusal of the same pair
    validate_pair(pred, real, pert_col="target", control=CONTROL)  # the pair with its controls: accepted
