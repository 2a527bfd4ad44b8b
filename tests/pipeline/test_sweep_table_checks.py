"""A sweep reads its runs' ``eval/metrics.csv`` with ``distgen compare``'s check of the row fingerprints and means that
``summary.json`` records (``compare.check_table``): a table edited by hand in a sweep folder was aggregated without a word,
and one whose label column was sorted on its own paired every value with another condition's (comparison round, left over)."""

import csv
import io
import json

import pytest

from distgen.config import save_yaml
from distgen.evaluation.compare import MismatchedEvaluations
from distgen.evaluation.report import table_row_fingerprints
from distgen.pipeline.sweep import METRICS_FILE, sweep

PERTS = [f"P{i}" for i in range(6)]


def table_text(run):
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["perturbation", "mse", "pearson_delta"])
    for i, p in enumerate(PERTS):
        w.writerow([p, 1.0 + 0.1 * i + 0.01 * run.seed + (0.5 if "bad" in run.variant else 0.0), 0.5 - 0.03 * i])
    return buf.getvalue()


def runner(config, run, run_dir):
    """metrics.csv and the summary.json an evaluation writes with it: each metric's mean and the rows' fingerprints."""
    text = table_text(run)
    (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / METRICS_FILE).write_text(text, newline="")
    values = [float(r["mse"]) for r in csv.DictReader(io.StringIO(text))]
    (run_dir / "eval" / "summary.json").write_text(json.dumps(
        {"n_genes": 10, "metrics": {"mse": {"model": sum(values) / len(values)}}, "row_fingerprints": table_row_fingerprints(text)}))
    return 0


GRID = {"description": ["good", "bad"], "train.seed": [0, 1]}


@pytest.fixture
def swept(tmp_path):
    base = str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))
    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=runner, metrics=["mse"], progress=False)
    (slug,) = [p.name for p in (out / "runs").iterdir() if "bad" in p.name and p.name.endswith("seed1")]
    return base, out, out / "runs" / slug / METRICS_FILE


def rewrite(path, edit):
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    edit(rows)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_an_unedited_sweep_says_nothing(swept):
    _, out, _ = swept
    assert json.loads((out / "summary.json").read_text())["tables_edited"] == {}
    assert "edited after" not in (out / "summary.md").read_text()


def test_a_label_column_sorted_on_its_own_in_a_run_is_refused_naming_the_file_and_the_run(swept):
    base, out, path = swept

    def sort_labels(rows):
        labels = [r["perturbation"] for r in rows][::-1]
        for r, label in zip(rows, labels, strict=True):
            r["perturbation"] = label

    rewrite(path, sort_labels)
    with pytest.raises(MismatchedEvaluations, match="hold the values the evaluation wrote for another label") as e:
        sweep(base, GRID, out, runner=runner, metrics=["mse"], progress=False)  # was aggregated: every row another condition's
    assert str(path) in str(e.value) and f"remove {path.parent.parent}" in str(e.value)


@pytest.mark.parametrize("edit, said", [
    (lambda rows: rows[0].update(mse=str(float(rows[0]["mse"]) + 3.0)), "does not give the means its summary.json records"),
    (lambda rows: rows.__setitem__(slice(0, 2), [dict(rows[0], mse=rows[1]["mse"]), dict(rows[1], mse=rows[0]["mse"])]),
     "2 rows ('P0', 'P1') hold other values than the evaluation wrote"),  # the column's mean kept: the row digests see it
])
def test_a_run_table_edited_by_hand_is_said_in_the_summary_and_the_page(swept, capsys, edit, said):
    base, out, path = swept
    rewrite(path, edit)
    capsys.readouterr()
    sweep(base, GRID, out, runner=runner, metrics=["mse"], progress=False)  # the finished runs are reused, the tables read again
    slug = path.parent.parent.name
    recorded = json.loads((out / "summary.json").read_text())["tables_edited"]
    assert list(recorded) == [slug] and said in recorded[slug]
    assert "## Tables edited after their evaluation" in (out / "summary.md").read_text()
    assert "Tables edited after their evaluation" in (out / "report.html").read_text()
    assert said in " ".join(capsys.readouterr().err.split())
