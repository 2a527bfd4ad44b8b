"""``python -m distgen.report`` reads an evaluation's ``metrics.csv`` with ``distgen compare``'s check of the row
fingerprints and means ``summary.json`` records (``compare.check_table``): a table edited by hand was drawn without a word,
and one whose label column was sorted on its own showed every value under another condition (comparison round, left over)."""

import re
import shutil

import pandas as pd
import pytest

from distgen.evaluation import score
from distgen.report.__main__ import main
from tests.evaluation.test_compare import _population as population


def _population(seed, noise=0.3):
    """6 perturbations of 10 genes (``test_compare``'s populations: the same effects)."""
    return population(seed, range(6), noise)


def _edited(root, edit):
    folder = root / "ev"
    score(_population(1), _population(0), metrics=["mse", "pearson_delta"], ceiling=False).write(folder, make_plots=False)
    table = pd.read_csv(folder / "metrics.csv", dtype={"perturbation": str})
    if edit is not None:
        edit(table).to_csv(folder / "metrics.csv", index=False)
    return folder


def _sort_labels(t):
    t["perturbation"] = t["perturbation"].iloc[::-1].to_numpy()
    return t


def _exchange(t):
    t.loc[[0, 1], "mse"] = t.loc[[1, 0], "mse"].to_numpy()
    return t


def test_a_label_column_sorted_on_its_own_is_refused(tmp_path, capsys):
    folder = _edited(tmp_path, _sort_labels)
    assert main([str(folder), "--no-cells"]) == 2  # was 0: a page of every value under another condition
    err = " ".join(capsys.readouterr().err.split())
    assert str(folder / "metrics.csv") in err and "hold the values the evaluation wrote for another label" in err
    assert not (folder / "report.html").exists() or "P0" not in (folder / "report.html").read_text()


def test_values_edited_by_hand_are_said_on_the_page(tmp_path):
    folder = _edited(tmp_path, _exchange)
    said = "2 rows ('P0', 'P1') hold other values than the evaluation wrote"
    with pytest.warns(UserWarning, match=re.escape(said)):
        assert main([str(folder), "--no-cells"]) == 0
    from html import unescape

    assert said in unescape((folder / "report.html").read_text())


def test_an_unedited_table_says_nothing(tmp_path, recwarn):
    folder = _edited(tmp_path, None)
    assert main([str(folder), "--no-cells"]) == 0
    assert not any("evaluation wrote" in str(w.message) for w in recwarn)


def test_a_profile_page_checks_its_table_too(tmp_path, capsys):
    from distgen.report.profile import render_profile

    folder = _edited(tmp_path, _exchange)
    import json

    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "profile": "celleval2"}))
    with pytest.warns(UserWarning, match="hold other values than the evaluation wrote"):
        assert "hold other values than the evaluation wrote" in render_profile(folder)
    shutil.rmtree(folder)


def test_values_exchanged_with_a_column_removed_are_said_on_the_page(tmp_path):
    """Review of 2026-12-07: a table without a column its fingerprints cover (here the text ``nan_reasons``) was not
    checked, so values exchanged between two rows were drawn without a word."""
    folder = _edited(tmp_path, lambda t: _exchange(t).drop(columns=["nan_reasons"]))
    said = "2 rows ('P0', 'P1') hold other values than the evaluation wrote (summary.json row_fingerprints); " \
           "1 column removed ('nan_reasons')"
    with pytest.warns(UserWarning, match=re.escape(said)):
        assert main([str(folder), "--no-cells"]) == 0
    from html import unescape

    assert said in unescape((folder / "report.html").read_text())
