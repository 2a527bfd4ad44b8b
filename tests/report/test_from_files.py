"""Pages written again from an evaluation folder (``python -m distgen.report FOLDER``) show what the files hold."""

import math

import anndata as ad
import pytest

import distgen
from distgen.report import load_eval_dir, render
from distgen.report.__main__ import main, read_cells
from distgen.report.explain import condition_strength

from ..evaluation.synth import make_pair
from .tiny import check_page

METRICS = ["mse", "pearson_delta", "edistance"]


def _two_contexts(a: ad.AnnData, tag: str) -> ad.AnnData:
    b = a.copy()
    b.obs_names = [f"{tag}{i}" for i in range(b.n_obs)]
    a = a.copy()
    a.obs["celltype"], b.obs["celltype"] = "K562", "HepG2"
    return ad.concat([a, b])


@pytest.fixture(scope="module")
def per_context(tmp_path_factory):
    """An evaluation scored per context (rows ``condition @ context``), files kept next to it."""
    tmp = tmp_path_factory.mktemp("ctx")
    real, pred = make_pair(seed=3, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    _two_contexts(real, "r").write_h5ad(tmp / "real.h5ad")
    _two_contexts(pred, "p").write_h5ad(tmp / "pred.h5ad")
    out = tmp / "eval"
    distgen.evaluate(str(tmp / "pred.h5ad"), str(tmp / "real.h5ad"), out, metric_names=METRICS, make_plots=False, progress=False,
                     celltype_col="celltype")
    return out


def test_cells_of_a_per_context_evaluation_are_read_per_context(per_context):
    cells = read_cells(per_context)
    assert isinstance(cells, list) and len(cells) == 2
    inp = load_eval_dir(per_context, cells=cells)
    assert "G0 @ K562" in inp.model.perts and set(inp.cell_index()) == set(inp.model.perts)
    strength, how = condition_strength(inp)
    assert "‖" in how and all(not math.isnan(strength[p]) for p in inp.model.perts)
    # the page's distributions section draws the cells (embedding and marginals), it does not call them missing
    html = render(inp, sections=("distributions",))
    assert len(check_page(html, ["distributions"])) == 2


def test_pooled_cells_that_name_no_row_are_not_claimed_as_the_strength_measure(per_context):
    """Cells pooled over contexts name ``G0``, the table ``G0 @ K562``: the page must not order rows by a measure it could not take."""
    from distgen.data import layout
    from distgen.evaluation.io import align, eval_data

    pred_c, real_c, _, _ = layout.read_pair(per_context.parent / "pred.h5ad", per_context.parent / "real.h5ad", celltype_col=None,
                                            guess_celltype=False)
    inp = load_eval_dir(per_context, cells=eval_data(align(pred_c, real_c)[0], real_c))
    strength, how = condition_strength(inp)
    assert "‖" not in how and "control baseline" in how
    assert all(not math.isnan(strength[p]) for p in inp.model.perts)
    html = render(inp, sections=("distributions",))
    assert "name none of the evaluated conditions" in html


def test_the_module_rewrites_a_per_context_page_with_its_distributions(per_context, capsys):
    assert main([str(per_context)]) == 0
    html = (per_context / "report.html").read_text()
    assert len(check_page(html, ["headline", "per-perturbation", "distributions", "training"])) == 5
    assert "No condition has a finite response strength" not in html


def test_a_profile_folder_gets_its_own_page_and_the_evaluation_page_is_refused_clearly(tmp_path, capsys):
    """A --profile evaluation's summary.json holds one mean per metric and no references: the evaluation page has nothing
    to compare, so reading the folder for it is refused with a clear message; the folder's page is the profile's tables."""
    real, pred = make_pair(seed=4, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    from distgen.pipeline.evaluate import evaluate_profile_files

    out = tmp_path / "prof"
    evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, "cell-eval-0.8.2", page=False)
    assert not (out / "report.html").exists()
    with pytest.raises(ValueError, match=r"--profile cell-eval-0\.8\.2 evaluation.*its page is the profile's tables"):
        load_eval_dir(out)
    assert main([str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    html = (out / "report.html").read_text()
    assert "profile <code>cell-eval-0.8.2</code>" in html and 'id="per-perturbation"' in html


def test_the_ceiling_band_is_the_range_over_the_evaluations_splits(tmp_path):
    """distgen evaluate makes 5 ceiling splits (summary: ceiling_band); the page's band is their range, written or rewritten."""
    import json
    import re
    from html import unescape

    real, pred = make_pair(seed=6, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=METRICS, progress=False)
    band = json.loads((out / "summary.json").read_text())["metrics"]["mse"]["ceiling_band"]
    assert band["n_splits"] == 5 and band["min"] < band["max"]
    for _ in range(2):  # as distgen evaluate wrote it, then as python -m distgen.report writes it again
        html = (out / "report.html").read_text()
        head = re.findall(r"<th>(.*?)</th>", html.split("<h3>All metrics</h3>")[1].split("</thead>")[0])
        assert "replicate band" in head
        row = re.search(r"<tr><td>mse</td>(.*?)</tr>", html).group(1)
        cells = [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        assert cells[head.index("replicate band") - 1] == f"{band['min']:.3g} – {band['max']:.3g}"
        assert main([str(out)]) == 0


def test_the_interpolated_duplicate_asked_for_is_shown(tmp_path):
    """--interpolated scores a second positive reference: summary.md, calibration.csv and the page (written and rewritten) show it."""
    import csv
    import json
    import re
    from html import unescape

    real, pred = make_pair(seed=7, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=METRICS, progress=False,
                     interpolated=True, ceiling_splits=2)
    value = json.loads((out / "summary.json").read_text())["metrics"]["mse"]["positive_references"]["interpolated_duplicate"]
    assert math.isfinite(value)
    md = (out / "summary.md").read_text().splitlines()
    head = next(line for line in md if line.startswith("| metric |")).split(" | ")
    row = next(line for line in md if line.startswith("| mse |")).split(" | ")
    assert row[head.index("interpolated_duplicate (positive)")] == f"{value:.4g}"
    with (out / "calibration.csv").open() as fh:
        vals = [float(r["value"]) for r in csv.DictReader(fh) if r["source"] == "interpolated_duplicate" and r["metric"] == "mse"]
    assert vals and math.isclose(sum(vals) / len(vals), value, rel_tol=1e-9)
    for _ in range(2):  # as distgen evaluate wrote it, then as python -m distgen.report writes it again
        html = (out / "report.html").read_text()
        th = re.findall(r"<th>(.*?)</th>", html.split("<h3>All metrics</h3>")[1].split("</thead>")[0])
        cells = [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", re.search(r"<tr><td>mse</td>(.*?)</tr>", html).group(1))]
        assert cells[th.index("interpolated_duplicate (positive)") - 1] == f"{value:.4g}"
        assert main([str(out), "--no-cells"]) == 0


def test_cells_are_found_next_to_the_folder_and_other_files_are_refused(tmp_path, monkeypatch, capsys):
    """Relative paths in summary.json are the evaluation's cwd's: found by name next to the folder; files of another truth are not used."""
    real, pred = make_pair(seed=8, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    work = tmp_path / "proj"
    work.mkdir()
    real.write_h5ad(work / "real.h5ad")
    pred.write_h5ad(work / "pred.h5ad")
    monkeypatch.chdir(work)
    distgen.evaluate("pred.h5ad", "real.h5ad", "eval", metric_names=METRICS, make_plots=False, progress=False)
    monkeypatch.chdir(tmp_path)  # elsewhere: "pred.h5ad" does not resolve from here
    cells = read_cells(work / "eval")
    assert cells is not None and list(cells.perts) == list(load_eval_dir(work / "eval").model.perts)
    # a file of that name with other cells (another draw, fewer cells) is not what metrics.csv scored
    other, _ = make_pair(seed=9, n_genes=30, n_ctrl=40, n_cells=7, combos=False)
    other.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    capsys.readouterr()
    assert read_cells(work / "eval") is None
    assert "are not the files this evaluation scored" in capsys.readouterr().err


@pytest.mark.parametrize("side", ["pred", "real"])
def test_files_rewritten_with_other_cells_of_the_same_counts_are_not_used(tmp_path, capsys, side):
    """Only the real cell counts were compared: a prediction (or truth) rewritten with other cells of the same numbers
    was drawn in the distributions as if it had been scored. summary.json's digests of each row's cells say so now."""
    real, pred = make_pair(seed=8, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=METRICS, make_plots=False,
                     progress=False)
    assert read_cells(out) is not None
    again = (pred if side == "pred" else real).copy()
    rows = again.obs["target"].to_numpy() == "G3"
    again.X[rows] = again.X[rows][:, ::-1]  # the same cells counts, other values for one perturbation
    again.write_h5ad(tmp_path / f"{side}.h5ad")
    capsys.readouterr()
    assert read_cells(out) is None
    err = capsys.readouterr().err
    assert "are not the files this evaluation scored" in err and "'G3'" in err
    assert err.startswith("python -m distgen.report: warning: "), err  # was a bare "warning:", unlike its errors


def test_the_header_counts_condition_context_groups_of_a_per_context_evaluation(per_context):
    inp = load_eval_dir(per_context)
    html = render(inp, sections=("headline",))
    n = len(inp.model.perts)
    assert f"{n} held-out (condition, context) groups: {n // 2} conditions in 2 contexts (HepG2, K562)" in html
    assert f"{n} held-out conditions" not in html


def test_a_per_context_page_written_again_reads_the_contexts_by_the_column_it_was_scored_by(tmp_path):
    """A context column not named like the default (``cell_line``) was not recorded, so a rewrite read the cells pooled
    and showed no distributions; summary.json records it now."""
    real, pred = make_pair(seed=4, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    for name, a, tag in (("real", real, "r"), ("pred", pred, "p")):
        b = _two_contexts(a, tag)
        b.obs["cell_line"] = b.obs.pop("celltype")
        b.write_h5ad(tmp_path / f"{name}.h5ad")
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=METRICS, make_plots=False,
                     progress=False, celltype_col="cell_line")
    import json

    assert json.loads((out / "summary.json").read_text())["celltype_col"] == "cell_line"
    cells = read_cells(out)
    assert isinstance(cells, list) and len(cells) == 2
    assert main([str(out)]) == 0
    html = (out / "report.html").read_text()
    assert len(check_page(html, ["headline", "per-perturbation", "distributions", "training"])) == 5


def test_metrics_csv_reads_back_labels_and_reasons_as_written(tmp_path):
    """A context called ``1e3`` stays text (it was read as 1000.0), and a reason holding "; " is kept whole (it was cut
    there, the rest read as a metric that does not exist and dropped)."""
    from distgen.evaluation.report import write_csv
    from distgen.evaluation.suite import MetricTable
    from distgen.report.inputs import read_metric_table

    half = "3 real cell(s): a half-split leaves 1 per half; the ceiling needs at least 4 real cells (2 per half)"
    table = MetricTable(perts=("001", "1e3", "A|B; x"), values={"mse": [math.nan, 1.0, 2.0], "pearson_delta": [math.nan, math.nan, 0.5]},
                        reasons={"mse": {"001": half}, "pearson_delta": {"001": "x; pearson_delta", "1e3": "constant"}},
                        info={"context": ["1e3", "001", "K562"], "n_cells_real": [3, 5, 6]})
    write_csv(table, tmp_path / "metrics.csv")
    back = read_metric_table(tmp_path / "metrics.csv", ["mse", "pearson_delta"])
    assert back.perts == table.perts and back.reasons == table.reasons
    assert back.info["context"] == ["1e3", "001", "K562"] and back.info["n_cells_real"] == [3.0, 5.0, 6.0]
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(tmp_path / "metrics.csv", dtype={"perturbation": str, "context": str})
    assert frame["perturbation"].tolist() == list(table.perts) and frame["context"].tolist() == table.info["context"]


def test_labels_with_dollar_signs_are_drawn_as_text_not_mathtext(tmp_path):
    """A condition called ``dose $\\nope$ 5`` made matplotlib parse it as a formula and fail (ParseFatalException:
    Unknown symbol), ending ``distgen evaluate`` after metrics.csv, before summary.json and the page; ``$x_1$`` was
    set as a subscript. Every figure (the PNG plots and the page's) draws labels as text."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from distgen.report import figures
    from distgen.report.style import theme

    real, pred = make_pair(seed=6, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    names = {"G0": "dose $\\nope$ 5", "G1": "cost $x_1$ and $y$", "G2": "$"}
    for a in (real, pred):
        a.obs["target"] = a.obs["target"].astype(str).replace(names)
        a.write_h5ad(tmp_path / ("real.h5ad" if a is real else "pred.h5ad"))
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=METRICS, progress=False)
    for f in ("summary.json", "summary.md", "report.html", "metrics_per_perturbation.png"):
        assert (out / f).is_file(), f
    assert matplotlib.rcParams["text.parse_math"]  # the user's session is left as it was
    inputs = load_eval_dir(out)
    order = list(inputs.model.perts)
    with theme():
        fig = figures.per_condition_figure(inputs, ["mse"], order, dict.fromkeys(order, 1.0), {})
        FigureCanvasAgg(fig).draw()
        drawn = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()}
    assert set(names.values()) <= drawn and all(not t.get_parse_math() for ax in fig.axes for t in ax.get_yticklabels())


def test_a_model_prediction_off_the_data_range_is_read_back_as_distgen_evaluate_scored_it(tmp_path):
    """A prediction marked as a model's (uns['distgen']['kind'] == 'pred') whose generated values left the range of
    log-normalised data is scored by distgen evaluate, with a note; the page written again from its folder refused it
    ('the pred cells are normalised but not log-transformed ... apply scanpy.pp.log1p to the pred cells'), a fix for
    a file that is not the problem (seen on a run folder whose model generated values up to 33)."""
    import numpy as np

    real, pred = make_pair(seed=4, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    pred = pred.copy()
    pred.X = np.asarray(pred.X, dtype=np.float32)
    pred.X[(pred.obs["target"] != "non-targeting").to_numpy()] *= 6.0  # generated cells far above log1p's range, controls kept
    pred.uns["distgen"] = {"kind": "pred"}
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=["mse"], make_plots=False,
                     progress=False)
    assert float(np.max(pred.X)) > 20  # beyond what the scale check takes as log-normalised
    cells = read_cells(out)
    assert cells is not None and not isinstance(cells, list)
