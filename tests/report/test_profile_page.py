"""A ``--profile`` evaluation writes report.html with what it has: the means, the vcc2026 score with its baseline and
replicate, the per-perturbation table and the notes (``distgen.report.profile``); the values on the page are the files'."""

import csv
import json
import math
import re
from html import unescape

import pytest

from distgen.cli import main
from distgen.pipeline.profile_eval import evaluate_profile_files

from ..evaluation.test_profile_eval import _counts_pair


def _cells(html: str, section: str) -> list[list[str]]:
    """The text of each row's cells in section ``section``'s first table."""
    body = html.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    return [[unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1])]


@pytest.fixture(scope="module")
def vcc(tmp_path_factory):
    root = tmp_path_factory.mktemp("vcc")
    real, pred = _counts_pair(seed=3)
    real.write_h5ad(root / "real.h5ad")
    pred.write_h5ad(root / "pred.h5ad")
    assert main(["evaluate", "--pred", str(root / "pred.h5ad"), "--real", str(root / "real.h5ad"), "--out", str(root / "ev"),
                 "--profile", "vcc2026", "--quiet"]) == 0
    return root / "ev"


def test_a_vcc2026_evaluation_writes_its_page_with_the_score_table(vcc, capsys):
    html = (vcc / "report.html").read_text()
    with (vcc / "vcc2026_score.csv").open() as fh:
        score = list(csv.DictReader(fh))
    shown = _cells(html, "vcc2026")
    assert [r[0] for r in shown] == [r["metric"] for r in score]  # every scored metric, then avg_score
    avg = next(r for r in shown if r[0] == "avg_score")
    assert math.isclose(float(avg[4]), float(score[-1]["from_replicate"]), rel_tol=1e-3)  # 4 significant digits
    first = score[0]
    assert [float(v) for v in shown[0][1:4]] == pytest.approx([float(first[k]) for k in ("user", "baseline", "replicate")], rel=1e-3)


def test_the_page_shows_every_metric_mean_and_every_row(vcc):
    html = (vcc / "report.html").read_text()
    summary = json.loads((vcc / "summary.json").read_text())
    means = {r[0]: r[2] for r in _cells(html, "scores")}
    assert set(means) == set(summary["metrics"])
    for name, v in summary["metrics"].items():
        assert means[name] == "nan" if v is None else math.isclose(float(means[name]), v, rel_tol=1e-3, abs_tol=1e-12)
    with (vcc / "metrics.csv").open() as fh:
        perts = [r["perturbation"] for r in csv.DictReader(fh)]
    assert [r[0] for r in _cells(html, "per-perturbation")] == perts
    assert f"{len(perts)} perturbations" in html


def test_no_plots_writes_no_page_and_the_cli_says_where_the_page_is(tmp_path, capsys):
    real, pred = _counts_pair(seed=4)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    args = ["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--profile", "celleval2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "report.html" in capsys.readouterr().out and (tmp_path / "a" / "report.html").is_file()
    assert main([*args, "--out", str(tmp_path / "b"), "--no-plots"]) == 0
    assert "report.html" not in capsys.readouterr().out and not (tmp_path / "b" / "report.html").exists()
    evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), tmp_path / "a", "celleval2", page=False)
    assert not (tmp_path / "a" / "report.html").exists()  # re-evaluated without a page: the earlier page is gone
