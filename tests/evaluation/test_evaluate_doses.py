"""``distgen evaluate`` on files with the dose in a column of its own (``dose``, ``dose_val``, ``dose_value``).

Each (label, dose) is scored as a population of its own when the truth holds several doses within a label and the
prediction can be paired dose by dose (its own dose column, or ``atom@dose`` labels); a prediction that cannot be is
refused, never scored against the doses pooled. Files at one dose per label are read as before.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.cli import main
from distgen.data.layout import read_pair
from distgen.errors import InputDataError

EVAL = ["--metrics", "mse", "--no-plots", "--no-ceiling", "--baselines", "", "--quiet", "--control", "ctrl"]
ROWS = [("ctrl", "0")] * 20 + [("dexa", d) for d in ("10", "100") for _ in range(10)] + [("saha+dexa", "5+10")] * 10


def _truth(col: str = "dose") -> ad.AnnData:
    obs = pd.DataFrame(ROWS, columns=["target", col], index=[f"c{i}" for i in range(len(ROWS))])
    x = np.random.default_rng(1).poisson(2.0, (len(ROWS), 6)).astype(np.float32)
    x[obs[col] == "100", 0] += 30  # dexa at 100 far from dexa at 10 on g0: pooled or swapped doses cannot score 0
    return ad.AnnData(X=np.log1p(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)]))


def _write(tmp_path, **files: ad.AnnData) -> dict[str, str]:
    out = {}
    for name, a in files.items():
        a.write_h5ad(tmp_path / f"{name}.h5ad")
        out[name] = str(tmp_path / f"{name}.h5ad")
    return out


def _scores(tmp_path, files: dict[str, str]) -> pd.Series:
    assert main(["evaluate", "--pred", files["pred"], "--real", files["real"], "--out", str(tmp_path / "eval"), *EVAL]) == 0
    rows = pd.read_csv(tmp_path / "eval" / "metrics.csv")
    return rows.set_index("perturbation")["mse"]


@pytest.mark.parametrize("col", ["dose", "dose_val"])
def test_each_label_and_dose_is_scored_on_its_own_when_both_files_carry_the_dose(tmp_path, col):
    truth = _truth(col)
    pred = truth[np.random.default_rng(2).permutation(truth.n_obs)].copy()  # the truth's cells, rows shuffled
    mse = _scores(tmp_path, _write(tmp_path, pred=pred, real=truth))
    assert set(mse.index) == {"dexa@10", "dexa@100", "dexa@10+saha@5"}  # saha+dexa at 5+10: a dose per slot
    assert np.allclose(mse.to_numpy(), 0.0, atol=1e-10)  # each dose paired with its own cells
    summary = (tmp_path / "eval" / "summary.json").read_text()
    assert "each (label, dose) is scored as a population of its own" in summary


@pytest.mark.parametrize("keep_column", [False, True])
def test_a_prediction_labelled_atom_at_dose_pairs_with_a_truth_dose_column(tmp_path, keep_column):
    """Its own dose column kept too (the truth's obs copied, then relabelled): the labels are not dosed twice (dexa@10@10,
    which paired with no truth label, before)."""
    truth = _truth()
    pred = truth.copy()
    pred.obs["target"] = ["ctrl" if t == "ctrl" else {"10": "dexa@10", "100": "dexa@100", "5+10": "dexa@10+saha@5"}[d]
                          for t, d in zip(pred.obs["target"], pred.obs["dose"])]
    if not keep_column:
        del pred.obs["dose"]
    mse = _scores(tmp_path, _write(tmp_path, pred=pred, real=truth))
    assert set(mse.index) == {"dexa@10", "dexa@100", "dexa@10+saha@5"} and np.allclose(mse.to_numpy(), 0.0, atol=1e-10)


def test_one_side_with_doses_that_cannot_be_paired_is_refused(tmp_path, capsys):
    truth = _truth()
    pred = truth.copy()
    del pred.obs["dose"]  # bare labels, no dose: which dexa cells are which dose?
    files = _write(tmp_path, pred=pred, real=truth)
    with pytest.raises(InputDataError, match=r"the truth's obs\['dose'\] holds several doses within 1 perturbation label.*"
                                             r"the prediction has no dose column"):
        read_pair(files["pred"], files["real"], "target", "ctrl")
    assert main(["evaluate", "--pred", files["pred"], "--real", files["real"], "--out", str(tmp_path / "e"), *EVAL]) == 2
    assert "Add the prediction's dose column" in capsys.readouterr().err
    files = _write(tmp_path, pred=truth, real=pred)  # the other way round: a prediction at several doses, a dose-free truth
    with pytest.raises(InputDataError, match=r"the prediction's obs\['dose'\] holds several doses.*the truth has no dose column"):
        read_pair(files["pred"], files["real"], "target", "ctrl")


def test_a_dose_column_with_one_dose_per_label_changes_nothing(tmp_path):
    truth = _truth()
    one = truth[truth.obs["dose"] != "100"].copy()
    _, real, _, info = read_pair(one, one.copy(), "target", "ctrl")
    assert set(real.conditions) == {"ctrl", "dexa", "dexa+saha"} and not any("dose" in n for n in info.notes)


def test_a_training_file_with_the_dose_column_fits_the_baselines_per_dose(tmp_path):
    """``--train`` with the dose column: relabelled too, so ``additive`` adds dexa@10's and saha@5's effects for the
    combination (``distgen.pipeline.references.population_doses``) and the report carries each baseline's dose rule."""
    truth = _truth()
    rows = [("ctrl", "0")] * 20 + [("dexa", d) for d in ("10", "100") for _ in range(10)] + [("saha", "5")] * 10
    obs = pd.DataFrame(rows, columns=["target", "dose"], index=[f"t{i}" for i in range(len(rows))])
    train = ad.AnnData(X=np.log1p(np.random.default_rng(3).poisson(2.0, (len(rows), 6)).astype(np.float32)), obs=obs, var=truth.var.copy())
    files = _write(tmp_path, pred=truth.copy(), real=truth, train=train)
    assert main(["evaluate", "--pred", files["pred"], "--real", files["real"], "--train", files["train"], "--out", str(tmp_path / "eval"),
                 *EVAL[:4], "--baselines", "additive,mean_perturbation", "--quiet", "--control", "ctrl"]) == 0
    summary = (tmp_path / "eval" / "summary.json").read_text()
    assert "baseline 'additive' on data at several doses" in summary and "nearest training dose" in summary
    assert "cannot predict" not in summary


def test_a_dose_labelled_truth_with_a_dose_free_training_file_says_the_baselines_cannot_match(tmp_path):
    from distgen.pipeline.references import cells_references

    truth = _truth()
    rows = [("ctrl", "0")] * 20 + [("dexa", "10")] * 10
    obs = pd.DataFrame(rows, columns=["target", "dose"], index=[f"t{i}" for i in range(len(rows))])
    train = ad.AnnData(X=np.log1p(np.random.default_rng(3).poisson(2.0, (len(rows), 6)).astype(np.float32)), obs=obs, var=truth.var.copy())
    _, real, train_c, _ = read_pair(truth.copy(), truth, "target", "ctrl", train=train[:, :].copy())
    del train.obs["dose"]
    _, _, bare, _ = read_pair(truth.copy(), truth, "target", "ctrl", train=train)
    _, notes = cells_references(train_c, real, ("additive",))
    assert not any("training file's do not" in n for n in notes)
    _, notes = cells_references(bare, real, ("additive",))
    assert any("the truth's labels carry doses (atom@dose) but some of the training file's do not" in n for n in notes)


@pytest.mark.parametrize("recorded", ["file", "dataset"])
def test_a_file_with_another_combination_delimiter_splits_its_combinations_and_their_doses_on_it(tmp_path, recorded):
    """Files whose combinations are written with another delimiter (``saha_dexa`` at ``5_10``, as distgen writes data whose
    schema declares ``_``) were relabelled splitting on ``+`` only: ``saha_dexa`` one atom at the dose ``5_10``, which
    Python's float reads as 5010 (``saha_dexa@510``... a population of no drug at no dose). The file's recorded delimiter
    (or, for ``distgen.evaluate`` against a dataset, the dataset's schema) splits both."""
    truth = _truth()
    truth.obs["target"] = truth.obs["target"].astype(str).str.replace("+", "_", regex=False)
    truth.obs["dose"] = truth.obs["dose"].astype(str).str.replace("+", "_", regex=False)
    if recorded == "file":
        truth.uns["distgen"] = {"combo_delimiter": "_"}
        pred = truth[np.random.default_rng(2).permutation(truth.n_obs)].copy()
        mse = _scores(tmp_path, _write(tmp_path, pred=pred, real=truth))
        assert set(mse.index) == {"dexa@10", "dexa@100", "dexa@10+saha@5"} and np.allclose(mse.to_numpy(), 0.0, atol=1e-10)
        return
    import distgen
    from distgen.data import Dataset, PerturbationSchema

    schema = PerturbationSchema(perturbation_col="target", control_labels=("ctrl",), dose_col="dose", combo_delimiter="_")
    saha = truth[(truth.obs["dose"] == "10").to_numpy()].copy()  # a training condition: saha at 5
    saha.obs = pd.DataFrame({"target": "saha", "dose": "5"}, index=[f"s{i}" for i in range(saha.n_obs)])
    ad.concat([truth, saha]).write_h5ad(tmp_path / "data.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "data.h5ad"), "schema": schema.to_dict(), "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["dexa", "saha_dexa"], "val_frac": 0.0}})
    pred = truth[np.random.default_rng(2).permutation(truth.n_obs)].copy()  # another tool's file: no record of '_'
    pred.write_h5ad(tmp_path / "pred.h5ad")
    with pytest.warns(UserWarning, match="doses:"):
        report = distgen.evaluate(str(tmp_path / "pred.h5ad"), ds, metric_names=["mse"], make_plots=False, ceiling=False, baselines=[],
                                  progress=False, control="ctrl")
    assert set(report.table.conditions()) == {"dexa@10", "dexa@100", "dexa@10+saha@5"}


def test_a_dose_with_an_underscore_is_refused_not_read_as_a_digit_separator():
    from distgen.data import PerturbationData, PerturbationSchema

    truth = _truth()
    truth.obs["dose"] = truth.obs["dose"].astype(str).str.replace("+", "_", regex=False)
    with pytest.raises(InputDataError, match=r"dose '5_10' holds '_'.*combo_delimiter='_'"):
        PerturbationData.from_anndata(truth, PerturbationSchema(perturbation_col="target", control_labels=("ctrl",), dose_col="dose"))


@pytest.mark.parametrize("recorded", ["file", "dataset"])
def test_a_prediction_written_with_plus_pairs_with_a_truth_written_with_another_delimiter(tmp_path, recorded):
    """Another tool's prediction writes its combinations ``saha+dexa`` at ``5+10`` (no record of a delimiter) against a
    truth whose combinations are ``saha_dexa`` at ``5_10`` (recorded by the file, or the dataset's schema): the other
    side's ``_`` was taken for the prediction's own, and its dose ``5+10`` refused as not 'd1_d2' (4b7a6e5)."""
    truth = _truth()
    pred = truth[np.random.default_rng(2).permutation(truth.n_obs)].copy()  # '+' labels and doses, nothing recorded
    truth.obs["target"] = truth.obs["target"].astype(str).str.replace("+", "_", regex=False)
    truth.obs["dose"] = truth.obs["dose"].astype(str).str.replace("+", "_", regex=False)
    if recorded == "file":
        truth.uns["distgen"] = {"combo_delimiter": "_"}
        mse = _scores(tmp_path, _write(tmp_path, pred=pred, real=truth))
        assert set(mse.index) == {"dexa@10", "dexa@100", "dexa@10+saha@5"} and np.allclose(mse.to_numpy(), 0.0, atol=1e-10)
        return
    import distgen
    from distgen.data import Dataset, PerturbationSchema

    schema = PerturbationSchema(perturbation_col="target", control_labels=("ctrl",), dose_col="dose", combo_delimiter="_")
    saha = truth[(truth.obs["dose"] == "10").to_numpy()].copy()
    saha.obs = pd.DataFrame({"target": "saha", "dose": "5"}, index=[f"s{i}" for i in range(saha.n_obs)])
    ad.concat([truth, saha]).write_h5ad(tmp_path / "data.h5ad")
    ds = Dataset.load({"dataset": str(tmp_path / "data.h5ad"), "schema": schema.to_dict(), "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["dexa", "saha_dexa"], "val_frac": 0.0}})
    pred.write_h5ad(tmp_path / "pred.h5ad")
    with pytest.warns(UserWarning, match="doses:"):
        report = distgen.evaluate(str(tmp_path / "pred.h5ad"), ds, metric_names=["mse"], make_plots=False, ceiling=False, baselines=[],
                                  progress=False, control="ctrl")
    assert set(report.table.conditions()) == {"dexa@10", "dexa@100", "dexa@10+saha@5"}


def _at(truth: ad.AnnData, dose: str) -> ad.AnnData:
    """``truth``'s ctrl and dexa cells with every dexa cell's dose column set to ``dose`` (one dose per label)."""
    out = truth[truth.obs["target"].isin(["ctrl", "dexa"]).to_numpy()].copy()
    out.obs["dose"] = ["0" if t == "ctrl" else dose for t in out.obs["target"]]
    return out


def test_one_dose_per_label_on_both_sides_at_other_doses_is_refused_not_paired(tmp_path, capsys):
    """Both files at one dose per label read bare, so a prediction of dexa at 10 was scored against the truth's dexa at
    100, silently (its own dose column said 10). Now refused naming both; the same dose (10 and 10.0, a float32 0.3 and a
    float64 0.3) pairs as before, bare."""
    truth = _truth()
    with pytest.raises(InputDataError, match=r"1 shared perturbation label\(s\) are at other doses.*dexa: predicted as dexa@10, "
                                             r"measured as dexa@100"):
        read_pair(_at(truth, "10"), _at(truth, "100"), "target", "ctrl")
    files = _write(tmp_path, pred=_at(truth, "10"), real=_at(truth, "100"))
    assert main(["evaluate", "--pred", files["pred"], "--real", files["real"], "--out", str(tmp_path / "e"), *EVAL]) == 2
    assert "Predict each at the truth's dose" in capsys.readouterr().err
    _, real, _, info = read_pair(_at(truth, "10.0"), _at(truth, "10"), "target", "ctrl")
    assert set(real.conditions) == {"ctrl", "dexa"} and not any("dose" in n for n in info.notes)
    pred, real_ = _at(truth, "0"), _at(truth, "0")
    pred.obs["dose"] = np.where(pred.obs["target"] == "ctrl", 0.0, 0.3).astype(np.float32)
    real_.obs["dose"] = np.where(real_.obs["target"] == "ctrl", 0.0, 0.3)
    _, real, _, _ = read_pair(pred, real_, "target", "ctrl")
    assert set(real.conditions) == {"ctrl", "dexa"}


def test_a_prediction_labelled_atom_at_dose_pairs_with_a_truth_at_one_dose_per_label(tmp_path):
    """A prediction labelled ``dexa@100`` against a truth ``dexa`` with its dose column at 100: read bare, they paired
    nothing; the truth is now relabelled from its column, so the dose pairs with its own cells (and another would not)."""
    truth = _at(_truth(), "100")
    pred = truth.copy()
    pred.obs["target"] = ["ctrl" if t == "ctrl" else "dexa@100" for t in pred.obs["target"]]
    del pred.obs["dose"]
    mse = _scores(tmp_path, _write(tmp_path, pred=pred, real=truth))
    assert list(mse.index) == ["dexa@100"] and np.allclose(mse.to_numpy(), 0.0, atol=1e-10)


@pytest.mark.parametrize("column", ["dose", "dose_value"])
def test_a_dose_column_without_readable_doses_on_both_sides_pairs_as_before(tmp_path, column):
    """Files in scPerturb's layout carry ``dose_value`` on every screen, NaN for a CRISPR screen's cells, and others write
    doses with their unit ('10uM'). Such pairs at one dose per label scored bare; the check that the two sides are at one
    dose (``_refuse_other_doses``) read the column as doses and refused them ('perturbed cells of dexa have no dose',
    'carries a unit'). A column that cannot be read as doses is compared as written (missing values left out): the same
    pairs bare as before, another is refused as a numeric one is."""
    def at(values: dict[str, object]) -> ad.AnnData:
        a = _truth()
        keep = (a.obs["target"] != "saha+dexa").to_numpy() & (a.obs["dose"] != "100").to_numpy()
        a = a[keep].copy()
        del a.obs["dose"]
        a.obs[column] = [values.get(t, values["ctrl"]) for t in a.obs["target"]]
        return a

    for values in ({"ctrl": np.nan}, {"ctrl": "0uM", "dexa": "10uM"}, {"ctrl": np.nan, "dexa": "10uM"}):
        _, real, _, _ = read_pair(at(values), at(values), "target", "ctrl")
        assert set(real.conditions) == {"ctrl", "dexa"}
    _, real, _, _ = read_pair(at({"ctrl": np.nan}), at({"ctrl": np.nan, "dexa": "10uM"}), "target", "ctrl")  # one side unknown
    assert set(real.conditions) == {"ctrl", "dexa"}
    with pytest.raises(InputDataError, match=r"dexa: predicted as 10uM, measured as 100uM"):
        read_pair(at({"ctrl": "0uM", "dexa": "10uM"}), at({"ctrl": "0uM", "dexa": "100uM"}), "target", "ctrl")


def test_one_dose_written_with_and_without_its_unit_is_refused_as_two_spellings(tmp_path):
    """A prediction at dose ``10`` and a truth at ``10uM``: refused as other doses, with 'predict each at the truth's
    dose' -- which it was. The refusal now names the two spellings and how to write them one way; two doses that are other
    numbers (``10uM`` and ``100uM``) or other units (``10uM``, ``10nM``) are still refused as other doses."""
    def at(dexa: object, ctrl: object = "0uM") -> ad.AnnData:
        a = _truth()
        a = a[(a.obs["target"] != "saha+dexa").to_numpy() & (a.obs["dose"] != "100").to_numpy()].copy()
        a.obs["dose"] = [dexa if t == "dexa" else ctrl for t in a.obs["target"]]
        return a

    for pred, real in ((at(10.0, 0.0), at("10uM")), (at("10 uM"), at("10uM"))):
        with pytest.raises(InputDataError, match=r"one number written two ways \(e\.g\. dexa: '10(\.0| uM)' in the prediction, "
                                                 r"'10uM' in the truth\).*str\.removesuffix\('uM'\)") as err:
            read_pair(pred, real, "target", "ctrl")
        assert "Predict each at the truth's dose" not in str(err.value)
    for pred, real in ((at("10uM"), at("100uM")), (at("10nM"), at("10uM"))):
        with pytest.raises(InputDataError, match=r"at other doses in the two"):
            read_pair(pred, real, "target", "ctrl")


def test_two_labels_one_of_them_an_earlier_float32_dose_spelling_are_not_merged(tmp_path):
    """A file whose labels carry no dose column and hold both ``x@0.3`` and ``x@0.30000001192092896`` (two populations of
    data without doses, named so by the user) is scored as two rows. The rewrite of an earlier distgen's float32 dose
    label (``x@0.30000001192092896`` -> ``x@0.3``, ``conditions.current_label``) merged them into one population, silently
    (one row, its cells pooled); it is skipped for a file where it would make two labels one."""
    rows = [("ctrl",)] * 20 + [("x@0.3",)] * 10 + [("x@0.30000001192092896",)] * 10
    obs = pd.DataFrame(rows, columns=["target"], index=[f"c{i}" for i in range(len(rows))])
    x = np.random.default_rng(1).poisson(2.0, (len(rows), 6)).astype(np.float32)
    x[30:, 0] += 30  # the second population far from the first: pooled cells cannot score 0
    truth = ad.AnnData(X=np.log1p(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)]))
    pred = truth[np.random.default_rng(2).permutation(truth.n_obs)].copy()
    mse = _scores(tmp_path, _write(tmp_path, pred=pred, real=truth))
    assert set(mse.index) == {"x@0.3", "x@0.30000001192092896"}
    assert np.allclose(mse.to_numpy(), 0.0, atol=1e-10)
    from distgen.evaluation.compare import compare

    assert compare(tmp_path / "eval", tmp_path / "eval", n_boot=20)["n_shared"] == 2  # its two rows, not one of them


def _spelled(labels, far="x@0.30000001192092896"):
    """Control and ten cells per label; ``far``'s cells far from the rest on g0."""
    rows = [("ctrl",)] * 20 + [(lab,) for lab in labels for _ in range(10)]
    obs = pd.DataFrame(rows, columns=["target"], index=[f"c{i}" for i in range(len(rows))])
    x = np.random.default_rng(len(labels)).poisson(2.0, (len(rows), 6)).astype(np.float32)
    for i, lab in enumerate(labels):
        if lab == far:
            x[20 + 10 * i : 30 + 10 * i, 0] += 30
    return ad.AnnData(X=np.log1p(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)]))


def test_a_training_file_with_both_spellings_of_a_dose_keeps_its_labels_consistent_with_the_truth(tmp_path):
    """The training file holds ``x@0.3`` and ``x@0.30000001192092896`` (two populations named so by the user), the truth and
    the prediction only the long one (written by an earlier distgen). Each file's labels were rewritten on their own: the
    truth's became ``x@0.3`` while the training file kept both (its rewrite would merge two), so the truth's population was
    paired with the training file's OTHER population, the baselines fitted on the wrong cells without a word. The rewrite
    is now decided over the labels of every file together: one label means one population in every file."""
    file = _spelled
    long = "x@0.30000001192092896"
    truth = file([long], long)
    train = file(["x@0.3", long], long)
    _, real, train_c, _ = read_pair(truth.copy(), truth, "target", "ctrl", train=train)
    assert train_c is not None
    (label,) = set(real.conditions.tolist()) - {"ctrl"}
    assert label in set(train_c.conditions.tolist())
    mine = train_c.X[torch.as_tensor(np.asarray(train_c.conditions) == label)]
    assert float(mine[:, 0].mean()) > 2.0  # the far population (log1p of ~32), not the other one (log1p of ~2)
    # files without the collision are still rewritten together: every file's long label is x@0.3
    _, real, train_c, _ = read_pair(truth.copy(), truth, "target", "ctrl", train=file([long], long))
    assert set(real.conditions.tolist()) - {"ctrl"} == {"x@0.3"} == set(train_c.conditions.tolist()) - {"ctrl"}


def test_both_spellings_of_another_label_in_the_training_file_do_not_stop_this_labels_rewrite():
    """The training file names two populations ``y@0.3`` and ``y@0.30000001192092896`` (kept apart); the truth, written by
    an earlier distgen, labels x's population ``x@0.30000001192092896`` and the prediction, written now, ``x@0.3``. The
    rewrite was refused for every label when one file would merge two of its labels, so x's labels stayed apart and the
    prediction was refused as holding a perturbation the truth lacks (before the rewrite was decided over the files
    together each file was rewritten on its own and the pair was read). Only the labels that one file would merge are
    kept now; x's are rewritten in every file."""
    long_x, long_y = "x@0.30000001192092896", "y@0.30000001192092896"
    pred, truth, train = _spelled(["x@0.3"]), _spelled([long_x]), _spelled([long_x, "y@0.3", long_y])
    pred_c, real_c, train_c, _ = read_pair(pred, truth, "target", "ctrl", train=train)
    assert train_c is not None
    assert set(pred_c.conditions.tolist()) == set(real_c.conditions.tolist()) == {"ctrl", "x@0.3"}
    assert set(train_c.conditions.tolist()) == {"ctrl", "x@0.3", "y@0.3", long_y}  # y's two populations stay two


def test_a_dose_spelling_kept_apart_by_a_file_with_both_is_named_when_the_pair_differs(tmp_path, capsys):
    """The training file holds both spellings of x's dose (two populations), so neither is rewritten; a prediction written
    by an earlier distgen (long label) beside a truth written now (short label) then differs from it by the dose's text
    only. The refusal said only that the prediction has a perturbation the truth lacks; it now names the two spellings
    and why they were not read as one."""
    long = "x@0.30000001192092896"
    files = _write(tmp_path, pred=_spelled([long]), real=_spelled(["x@0.3"]), train=_spelled(["x@0.3", long]))
    code = main(["evaluate", "--pred", files["pred"], "--real", files["real"], "--train", files["train"], "--out",
                 str(tmp_path / "eval"), *EVAL])
    err = capsys.readouterr().err
    assert code == 2
    assert "'x@0.30000001192092896' for 'x@0.3'" in err and "both" in err, err
