"""Evaluating again into a folder leaves no file of the earlier evaluation beside the new one (a stale, mixed report),
and never removes a file an evaluation does not write (docs/reliability.md, "Outputs")."""

import json

import pytest

from distgen.cli import main
from distgen.evaluation.report import EVALUATION_MARK as MARK
from distgen.pipeline.outputs import EVALUATE_OUTPUTS
from tests.evaluation.synth import make_pair

FAST = ["--metrics", "mse,pearson_delta", "--no-ceiling", "--baselines", "", "--quiet"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerun")
    real, pred = make_pair(seed=5, n_genes=20, n_ctrl=20, n_cells=6, combos=False)
    real.write_h5ad(root / "real.h5ad")
    pred.write_h5ad(root / "pred.h5ad")
    counts_real, counts_pred = real.copy(), pred.copy()
    import numpy as np

    counts_real.X = np.round(np.expm1(real.X)).astype(np.float32)
    counts_pred.X = np.round(np.expm1(pred.X)).astype(np.float32)
    counts_real.write_h5ad(root / "real_counts.h5ad")
    counts_pred.write_h5ad(root / "pred_counts.h5ad")
    return root


def _evaluate(pair, out, *extra, counts=False):
    suffix = "_counts" if counts else ""
    return main(["evaluate", "--pred", str(pair / f"pred{suffix}.h5ad"), "--real", str(pair / f"real{suffix}.h5ad"),
                 "--out", str(out), *extra])


def test_every_file_an_evaluation_writes_is_a_known_name(pair, tmp_path):
    """The list the rerun clears is complete: a full evaluation (plots, page) and a vcc2026 profile write nothing else."""
    assert _evaluate(pair, tmp_path / "full", *FAST) == 0
    assert _evaluate(pair, tmp_path / "vcc", "--profile", "vcc2026", "--quiet", counts=True) == 0
    written = {p.name for d in ("full", "vcc") for p in (tmp_path / d).iterdir()}
    assert {MARK, "report.html", "delta_scatter.png", "vcc2026_score.csv", "calibration.csv"} <= written
    assert written <= set(EVALUATE_OUTPUTS), written - set(EVALUATE_OUTPUTS)


@pytest.mark.parametrize("second", [["--no-plots", *FAST], ["--profile", "cell-eval-0.8.2", "--quiet"]], ids=["no-plots", "profile"])
def test_a_rerun_leaves_no_file_of_the_earlier_evaluation(pair, tmp_path, second):
    out = tmp_path / "ev"
    assert _evaluate(pair, out, "--profile", "vcc2026", "--quiet", counts=True) == 0  # vcc2026_score.csv
    assert _evaluate(pair, out, *FAST) == 0  # plots, page, calibration.csv
    assert (out / "report.html").exists() and (out / "calibration.csv").exists() and not (out / "vcc2026_score.csv").exists()
    (out / "notes.txt").write_text("mine")  # a file of the user's, not an evaluation's
    (out / "figure.png").write_text("mine")
    assert _evaluate(pair, out, *second) == 0
    summary = json.loads((out / "summary.json").read_text())
    left = {p.name for p in out.iterdir()}
    if "--profile" in second:
        assert left == {MARK, "metrics.csv", "summary.json", "report.html", "notes.txt", "figure.png"} and summary["profile"] == "cell-eval-0.8.2"
        assert "profile <code>cell-eval-0.8.2</code>" in (out / "report.html").read_text()  # the profile's page, not the earlier one
    else:
        assert left == {MARK, "metrics.csv", "calibration.csv", "summary.json", "summary.md", "notes.txt", "figure.png"}
    assert (out / "notes.txt").read_text() == "mine" and (out / "figure.png").read_text() == "mine"


def test_a_page_of_someone_else_is_not_replaced_without_overwrite(pair, tmp_path, capsys):
    out = tmp_path / "site"
    out.mkdir()
    (out / "report.html").write_text("<html>mine</html>")
    assert _evaluate(pair, out, *FAST) == 1
    assert "already holds report.html" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "<html>mine</html>"
    assert _evaluate(pair, out, *FAST, "--overwrite") == 0
    assert (out / "report.html").read_text() != "<html>mine</html>"


def test_a_failed_rerun_keeps_the_earlier_evaluation(pair, tmp_path):
    out = tmp_path / "ev"
    assert _evaluate(pair, out, *FAST) == 0
    before = {p.name for p in out.iterdir()}
    assert main(["evaluate", "--pred", str(pair / "pred_counts.h5ad"), "--real", str(pair / "real.h5ad"), "--out", str(out), *FAST]) == 2  # bad input (counts against a lognorm truth)
    assert {p.name for p in out.iterdir()} == before  # refused before anything was removed
