"""A sweep records the row fingerprints of its ``results.csv`` in ``summary.json`` (keyed by variant, seed and
perturbation, ``compare.row_changes``), and ``python -m distgen.report SWEEP`` checks them: a hand-edited results.csv was
drawn as written (ablation-settings round, 2026-12-07)."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from distgen.config import save_yaml
from distgen.evaluation.compare import MismatchedEvaluations
from distgen.evaluation.report import RESULT_KEYS, ROW_FINGERPRINTS, table_row_fingerprints
from distgen.pipeline.sweep import sweep
from distgen.report.sweep import load_sweep_dir
from tests.pipeline.test_sweep_table_checks import GRID, rewrite, runner  # one stand-in sweep runner and csv edit


@pytest.fixture(scope="module")
def swept_once(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    base = str(save_yaml({"model": {"name": "control"}}, tmp / "base.yaml"))
    sweep(base, GRID, tmp / "sw", runner=runner, metrics=["mse"], progress=False)
    return tmp / "sw"


@pytest.fixture
def swept(swept_once, tmp_path):
    return Path(shutil.copytree(swept_once, tmp_path / "sw"))


def test_the_summary_records_one_fingerprint_per_variant_seed_and_perturbation(swept):
    record = json.loads((swept / "summary.json").read_text())[ROW_FINGERPRINTS]
    assert record["keys"] == list(RESULT_KEYS)
    with (swept / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(record["rows"]) == len(rows) == 2 * 2 * 6  # 2 variants x 2 seeds x 6 perturbations, none merged
    assert record == table_row_fingerprints((swept / "results.csv").read_text(), RESULT_KEYS)


def test_an_unedited_results_table_is_drawn_without_a_note(swept, recwarn):
    assert "results.csv" not in load_sweep_dir(swept).tables_edited


def test_a_value_edited_by_hand_is_named_on_the_page(swept):
    def nudge(rows):
        rows[3]["mse"] = str(float(rows[3]["mse"]) * 0.5)  # a worse variant made to look better

    rewrite(swept / "results.csv", nudge)
    with pytest.warns(UserWarning, match="hold other values than the sweep wrote"):
        inp = load_sweep_dir(swept)  # was drawn as written, without a word
    note = inp.tables_edited["results.csv"]
    with (swept / "results.csv").open(newline="") as fh:
        row = list(csv.DictReader(fh))[3]
    assert f"{row['variant']}/{row['seed']}/{row['perturbation']}" in note and "1 row" in note


def test_rows_removed_are_named(swept):
    rewrite(swept / "results.csv", lambda rows: rows.pop(0))
    with pytest.warns(UserWarning, match="removed"):
        assert "1 row removed" in load_sweep_dir(swept).tables_edited["results.csv"]


def test_the_variant_column_sorted_on_its_own_is_refused(swept):
    def swap_variants(rows):  # each row's numbers now stand under the other variant's name
        names = sorted({r["variant"] for r in rows})
        for r in rows:
            r["variant"] = names[1 - names.index(r["variant"])]

    rewrite(swept / "results.csv", swap_variants)
    with pytest.raises(MismatchedEvaluations, match="hold the values the sweep wrote for another variant/seed/perturbation"):
        load_sweep_dir(swept)


def test_a_sweep_from_before_the_fingerprints_is_read_as_before(swept, recwarn):
    doc = json.loads((swept / "summary.json").read_text())
    del doc[ROW_FINGERPRINTS]
    (swept / "summary.json").write_text(json.dumps(doc))
    rewrite(swept / "results.csv", lambda rows: rows.pop(0))
    assert "results.csv" not in load_sweep_dir(swept).tables_edited


def test_the_page_names_the_edited_results_table(swept, tmp_path):
    from distgen.report.sweep import render_sweep

    rewrite(swept / "results.csv", lambda rows: rows.pop(0))
    with pytest.warns(UserWarning):
        html = render_sweep(load_sweep_dir(swept))
    assert "<code>results.csv</code>: " in html and "1 row removed" in html


def test_a_row_pasted_twice_is_named_on_the_page(swept):
    """Review of 2026-12-07: a row on two lines matched its fingerprint, was said nowhere and drawn (averaged) twice."""
    rewrite(swept / "results.csv", lambda rows: rows.insert(0, dict(rows[5])))
    with (swept / "results.csv").open(newline="") as fh:
        row = next(iter(csv.DictReader(fh)))
    with pytest.warns(UserWarning, match="on more than one line"):
        note = load_sweep_dir(swept).tables_edited["results.csv"]
    assert f"{row['variant']}/{row['seed']}/{row['perturbation']}" in note and "1 row on more than one line" in note


def test_rows_reordered_or_resaved_by_pandas_are_not_a_change(swept, recwarn):
    """Rows in another order, or the table re-saved by pandas (other float text, every field quoted), hold the values the
    sweep wrote: no note, no refusal."""
    import csv as csv_module

    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(swept / "results.csv")
    frame.sample(frac=1.0, random_state=0).to_csv(swept / "results.csv", index=False, quoting=csv_module.QUOTE_ALL,
                                                    float_format="%.15g")
    assert "results.csv" not in load_sweep_dir(swept).tables_edited


def test_a_value_edited_with_a_column_removed_is_still_named(swept):
    """Review of 2026-12-07: a table without one of the columns its fingerprints cover was not checked at all, so an
    edited value drawn as written once any column (a text one too) was dropped."""
    def drop_and_nudge(rows):
        for r in rows:
            r["note"] = "text"  # a column the sweep never wrote, and one it wrote dropped
            del r["pearson_delta"]
        rows[3]["mse"] = str(float(rows[3]["mse"]) * 0.5)

    rewrite(swept / "results.csv", drop_and_nudge)
    with pytest.warns(UserWarning, match="column removed"):
        note = load_sweep_dir(swept).tables_edited["results.csv"]
    assert "1 column removed ('pearson_delta')" in note and "hold other values than the sweep wrote" in note


def test_a_text_column_removed_leaves_the_other_rows_unflagged(swept_once, tmp_path):
    """A column that holds no number (text, NaN) adds nothing to a fingerprint: with it removed, only the edited row is named."""
    import json

    sw = Path(shutil.copytree(swept_once, tmp_path / "sw"))

    def add_text(rows):
        for r in rows:
            r["nan_reasons"] = ""

    rewrite(sw / "results.csv", add_text)  # the table and its fingerprints as a sweep with a nan_reasons column writes them
    doc = json.loads((sw / "summary.json").read_text())
    doc[ROW_FINGERPRINTS] = table_row_fingerprints((sw / "results.csv").read_text(), RESULT_KEYS)
    (sw / "summary.json").write_text(json.dumps(doc))

    def drop_and_nudge(rows):
        for r in rows:
            del r["nan_reasons"]
        rows[3]["mse"] = str(float(rows[3]["mse"]) * 0.5)

    rewrite(sw / "results.csv", drop_and_nudge)
    with pytest.warns(UserWarning, match="1 row hold"):
        note = load_sweep_dir(sw).tables_edited["results.csv"]
    assert "1 column removed ('nan_reasons')" in note
