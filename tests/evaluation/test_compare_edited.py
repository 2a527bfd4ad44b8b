"""``distgen compare`` of an evaluation whose metrics.csv was edited by hand (comparison round, 2026-12-06).

A value edited to text crashed it (``distgen compare: error: mse``, exit 1); columns swapped, values or rows edited were
compared without a word. ``summary.json`` records each metric's mean over the table it was written with (``model``): a
table that no longer gives it is said, in the notes and as a warning."""

import shutil

import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.evaluation import score
from distgen.evaluation.compare import compare
from tests.evaluation.test_compare import _population as population

METRICS = ["mse", "pearson_delta"]


def _population(seed, noise=0.3):
    """8 perturbations of 10 genes (``test_compare``'s populations: the same effects)."""
    return population(seed, range(8), noise)


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    root = tmp_path_factory.mktemp("edited")
    truth = _population(0)
    score(_population(1), truth, metrics=METRICS, ceiling=False).write(root / "a", make_plots=False)
    score(_population(2, noise=0.6), truth, metrics=METRICS, ceiling=False).write(root / "b", make_plots=False)
    return root


def edited(evals, name, edit):
    out = evals / name
    shutil.copytree(evals / "b", out, dirs_exist_ok=True)
    table = pd.read_csv(out / "metrics.csv", dtype={"perturbation": str})
    edit(table).to_csv(out / "metrics.csv", index=False)
    return out


def test_a_metric_value_edited_to_text_is_refused_naming_it(evals, capsys):
    def text(t):
        t["mse"] = t["mse"].astype(object)
        t.loc[2, "mse"] = "oops"
        return t

    assert main(["compare", str(evals / "a"), str(edited(evals, "text", text))]) == 2  # was 1: "error: mse"
    err = capsys.readouterr().err
    assert "'oops' in column 'mse' on the row 'P2'" in err and "1 row of 8 not a number" in err


def test_a_column_of_text_on_every_row_is_not_a_metric(evals):
    res = compare(evals / "a", edited(evals, "comment", lambda t: t.assign(comment="looked at")))
    assert "comment" not in res["metrics"] and res["metrics"]["mse"]["n"] == 8


@pytest.mark.parametrize("name, edit, said", [
    ("swapped", lambda t: t.rename(columns={"mse": "pearson_delta", "pearson_delta": "mse"}), "mse (0."),
    ("row_dropped", lambda t: t.iloc[1:], "mse (0."),
    ("nan", lambda t: t.assign(mse=[np.nan] + list(t["mse"][1:])), "1 metric (mse (0."),
])
def test_a_table_that_no_longer_gives_its_recorded_means_is_said(evals, name, edit, said):
    with pytest.warns(UserWarning, match="does not give the means its summary.json records"):
        res = compare(evals / "a", edited(evals, name, edit))
    assert res["notes"][0].startswith("B's metrics.csv") and said in res["notes"][0]


def test_an_unedited_or_reordered_table_says_nothing(evals):
    for folder in (evals / "b", edited(evals, "reordered", lambda t: t.iloc[::-1])):
        res = compare(evals / "a", folder)
        assert not any("metrics.csv" in n for n in res["notes"])


def test_three_folders_are_refused_saying_how_to_compare_several(evals, capsys):
    a, b = str(evals / "a"), str(evals / "b")
    assert main(["compare", a, b, a]) == 2  # argparse said only "unrecognized arguments"
    err = capsys.readouterr().err
    assert "compare pairs two evaluations, got 3" in err and f"distgen compare {a} {b}" in err and "distgen sweep" in err


def test_evaluations_under_other_profiles_are_refused_for_the_profile_not_their_metric_names(evals, tmp_path):
    import json

    other = tmp_path / "ce2"
    shutil.copytree(evals / "b", other)
    table = pd.read_csv(other / "metrics.csv").rename(columns={"mse": "de_wilcoxon_direction_coverage"})
    table.drop(columns=["pearson_delta"]).to_csv(other / "metrics.csv", index=False)
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "profile": "celleval2", "metrics": {}}))
    with pytest.raises(ValueError, match=r"scored under profile 'distgen' and .* under 'celleval2'"):  # was: no metric in common
        compare(evals / "a", other)


@pytest.mark.parametrize("with_eval", [True, False])
def test_a_training_folder_is_not_called_an_unfinished_evaluation(evals, tmp_path, capsys, with_eval):
    run = tmp_path / "run"
    (run / "train" / "checkpoints").mkdir(parents=True)
    (run / "train" / "manifest.json").write_text("{}")
    (run / "train" / "metrics.csv").write_text("step,loss\n2,1.8\n")  # the loss log
    if with_eval:
        shutil.copytree(evals / "b", run / "eval")
    assert main(["compare", str(evals / "a"), str(run / "train")]) == 1
    err = capsys.readouterr().err
    # was: "holds an evaluation that did not finish ... run the evaluation again into it" (into the training folder)
    assert "is a training folder" in err and "did not finish" not in err
    assert (f"pass the run folder ({run})" in err) == with_eval and ("evaluate it first" in err) != with_eval


def test_a_label_column_sorted_on_its_own_is_refused_naming_the_file(evals, capsys):
    """A spreadsheet sort of the perturbation column alone moves every value to another condition; every column's mean and
    every label's truth digest stay the same, so it was compared silently (comparison round, left over)."""
    def sort_labels(t):
        t["perturbation"] = t["perturbation"].iloc[::-1].to_numpy()
        return t

    folder = edited(evals, "labels_sorted", sort_labels)
    assert main(["compare", str(evals / "a"), str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(folder / "metrics.csv") in err and "8 rows of 8 hold the values the evaluation wrote for another label" in err
    import re

    pairs = re.findall(r"'P(\d)' holds those of 'P(\d)'", " ".join(err.split()))
    assert pairs and all(int(a) + int(b) == 7 for a, b in pairs)  # each row names the label whose values it holds


def test_values_exchanged_within_a_column_keep_its_mean_and_are_said(evals):
    def exchange(t):
        t.loc[[0, 1], "mse"] = t.loc[[1, 0], "mse"].to_numpy()
        return t

    with pytest.warns(UserWarning, match=r"2 rows \('P0', 'P1'\) hold other values than the evaluation wrote"):
        res = compare(evals / "a", edited(evals, "exchanged", exchange))
    assert res["notes"][0].startswith("B's metrics.csv")


def test_a_table_written_again_with_fewer_digits_or_without_row_digests_compares_as_before(evals, tmp_path):
    import json

    def six_digits(t):  # a spreadsheet's save: 6 significant digits, not Python's 17
        for c in ("mse", "pearson_delta"):
            t[c] = [float(f"{v:.6g}") for v in t[c]]
        return t

    rounded = edited(evals, "rounded", six_digits)
    res = compare(evals / "a", rounded)
    assert not any("metrics.csv" in n for n in res["notes"])
    old = tmp_path / "old"
    shutil.copytree(evals / "b", old)
    summary = json.loads((old / "summary.json").read_text())
    assert "row_fingerprints" in summary
    (old / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "row_fingerprints"}))
    table = pd.read_csv(old / "metrics.csv", dtype={"perturbation": str})
    table["perturbation"] = table["perturbation"].iloc[::-1].to_numpy()
    table.to_csv(old / "metrics.csv", index=False)
    assert compare(evals / "a", old)["n_shared"] == 8  # an older evaluation: the checks it had


def test_one_prediction_evaluated_twice_is_said(evals, tmp_path):
    truth = _population(0)
    score(_population(2, noise=0.6), truth, metrics=METRICS, ceiling=False, seed=5).write(tmp_path / "again", make_plots=False)
    res = compare(evals / "b", tmp_path / "again")
    assert "scored the same predicted cells on all 8 shared rows" in res["notes"][0]
    assert not any("same predicted cells" in n for n in compare(evals / "a", evals / "b")["notes"])


def _table(labels, cells, mse):
    lines = ["perturbation,n_cells_real,n_cells_pred,mse,pearson_delta"]
    lines += [f"{p},{n},{n},{m!r},{0.999 - m!r}" for p, n, m in zip(labels, cells, mse)]
    return "\n".join(lines) + "\n"


def test_a_sorted_label_column_is_found_beside_large_cell_counts():
    """A row's fingerprint summed its numbers: 3,000 cells per row set a tolerance (1e-5 of the row's size) above every
    difference of metrics ~1e-4, so a perturbation column sorted on its own compared silently on real-sized data. Each
    value now counts by its relative change."""
    import csv
    import io

    from distgen.evaluation.compare import row_changes
    from distgen.evaluation.report import table_row_fingerprints

    labels = [f"P{i}" for i in range(8)]
    mse = [1.36e-4, 8.7e-5, 9.1e-5, 2.99e-4, 1.14e-4, 1.82e-4, 1.0e-4, 7.1e-5]
    summary = {"row_fingerprints": table_row_fingerprints(_table(labels, [3000] * 8, mse))}
    resorted = list(csv.DictReader(io.StringIO(_table(labels[::-1], [3000] * 8, mse))))
    moved, edited_rows = row_changes(resorted, summary)
    assert sorted(moved) == sorted(zip(labels[::-1], labels)) and not edited_rows
    nudged = list(csv.DictReader(io.StringIO(_table(labels, [3000] * 8, [mse[0] * 1.01] + mse[1:]))))
    assert row_changes(nudged, summary) == ([], ["P0"])  # one value edited by 1%: noted
    six = list(csv.DictReader(io.StringIO(_table(labels, [3000] * 8, [float(f"{m * 1.0000012:.6g}") for m in mse]))))
    assert row_changes(six, summary) == ([], [])  # saved again at 6 significant digits: the same rows


def test_fingerprints_recorded_before_the_log_form_are_checked_as_written():
    import csv
    import io

    from distgen.evaluation.compare import row_changes
    from distgen.evaluation.report import row_fingerprint

    labels = ["P0", "P1", "P2"]
    text = _table(labels, [20, 20, 20], [0.5, 0.9, 0.1])
    columns = ["mse", "n_cells_pred", "n_cells_real", "pearson_delta"]
    rows = {r["perturbation"]: list(row_fingerprint(r, columns, "linear")[:2]) for r in csv.DictReader(io.StringIO(text))}
    summary = {"row_fingerprints": {"columns": columns, "rows": rows}}  # no "form": the first records' linear sums
    assert row_changes(list(csv.DictReader(io.StringIO(text))), summary) == ([], [])
    resorted = list(csv.DictReader(io.StringIO(_table(labels[::-1], [20, 20, 20], [0.5, 0.9, 0.1]))))
    assert sorted(row_changes(resorted, summary)[0]) == [("P0", "P2"), ("P2", "P0")]


@pytest.mark.parametrize("dropped, rows_said", [
    ("nan_reasons", r"2 rows \('P0', 'P1'\) hold other values"),  # text adds nothing to a fingerprint: the two rows alone
    ("pearson_delta", r"8 rows \('P0', 'P1', 'P2'\) hold other values"),  # a number column removed: every row unequal
])
def test_values_exchanged_with_a_column_removed_are_said(evals, dropped, rows_said):
    """Review of 2026-12-07: a table without one of the columns its fingerprints cover was not checked at all, so values
    exchanged between two rows (which keep the column's mean) compared silently once any column was dropped."""
    def drop_and_exchange(t):
        t.loc[[0, 1], "mse"] = t.loc[[1, 0], "mse"].to_numpy()
        return t.drop(columns=[dropped])

    with pytest.warns(UserWarning, match=rows_said):
        res = compare(evals / "a", edited(evals, f"dropped_{dropped}", drop_and_exchange))
    assert res["notes"][0].startswith("B's metrics.csv") and f"1 column removed ('{dropped}')" in res["notes"][0]


def test_a_label_column_sorted_with_a_text_column_removed_is_still_refused(evals, capsys):
    def drop_and_sort(t):
        t["perturbation"] = t["perturbation"].iloc[::-1].to_numpy()
        return t.drop(columns=["nan_reasons"])

    assert main(["compare", str(evals / "a"), str(edited(evals, "sorted_dropped", drop_and_sort))]) == 2
    assert "8 rows of 8 hold the values the evaluation wrote for another label" in capsys.readouterr().err


def test_a_table_resaved_or_reordered_without_a_text_column_names_only_the_column(evals):
    import csv as csv_module

    out = edited(evals, "resaved_dropped", lambda t: t.iloc[::-1].drop(columns=["nan_reasons"]))
    table = pd.read_csv(out / "metrics.csv", dtype={"perturbation": str})
    table.to_csv(out / "metrics.csv", index=False, quoting=csv_module.QUOTE_ALL, float_format="%.15g")
    with pytest.warns(UserWarning, match="1 column removed"):
        res = compare(evals / "a", out)
    assert "1 column removed ('nan_reasons')" in res["notes"][0] and "hold other values" not in res["notes"][0]
