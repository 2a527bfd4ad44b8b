"""The evaluation report: one self-contained, well-formed page with every section, built from a tiny evaluation."""

import json
import math

import pytest

from distgen.report import Reference, ReportInputs, RunRecord, load_eval_dir, render
from distgen.report.explain import condition_strength, flagged, normalised_reason
from distgen.report.page import per_condition_metrics
from distgen.report.style import metric_info

from .tiny import check_page, tiny_inputs

SECTIONS = ["headline", "per-perturbation", "distributions", "training"]


@pytest.fixture(scope="module")
def inputs():
    return tiny_inputs()


@pytest.fixture(scope="module")
def page_html(inputs):
    return render(inputs)


def test_report_is_self_contained_html_with_every_section(inputs, page_html):
    html = page_html
    images = check_page(html, SECTIONS)
    # headline; per condition: dot plot and advantage; distributions: embedding and marginals (no run: no training figure)
    assert len(images) == 5
    assert "No training story" in html
    for text in ("Headline", "Per perturbation", "Distributions", "Training", "lower is better", "higher is better"):
        assert text in html


def test_identical_baselines_are_one_row_with_an_alias(inputs, page_html):
    assert [r.label for r in inputs.negatives] == ["control (= no_change)"]
    assert [r.name for r in inputs.positives] == ["ceiling"]
    assert "control (= no_change)" in page_html


def test_undefined_normalised_score_says_why_in_words():
    info = metric_info("mse")
    row = {"model": 0.01, "baselines": {"additive": 0.0004, "control": 0.003}, "ceiling": 0.0008,
           "strongest_baseline": "additive", "normalised": math.nan, "normalised_note": "ceiling is not better than the additive baseline"}
    short, text = normalised_reason(row, info)
    assert short == "baseline beats ceiling"
    assert "additive" in text and "already better than the ceiling" in text
    assert normalised_reason({**row, "normalised": 0.3}, info) == ("", "")
    short, text = normalised_reason({**row, "model": math.nan}, info)
    assert short == "model undefined"
    short, _ = normalised_reason({**row, "baselines": {}, "strongest_baseline": None}, info)
    assert short == "no baseline"
    # higher-is-better: a ceiling below the baseline is the same case
    pd = {"model": 0.1, "baselines": {"additive": 0.87}, "ceiling": 0.69, "strongest_baseline": "additive", "normalised": math.nan}
    assert normalised_reason(pd, metric_info("pearson_delta"))[0] == "baseline beats ceiling"


def test_reason_appears_on_the_page(page_html):
    # de_spearman_sig is undefined for the model in the tiny evaluation (too few conditions): the page says so
    assert "the model&#x27;s de_spearman_sig is undefined on every condition (fewer than 2" in page_html


def test_conditions_are_ordered_by_response_strength_and_flagged(inputs, page_html):
    strength, how = condition_strength(inputs)
    assert "‖" in how  # measured on the cells
    # the tiny data's shift grows with the condition index (P5 has one real cell but the largest shift)
    order = sorted(strength, key=lambda p: -strength[p])
    assert order[:3] == ["P5", "P4", "P3"]
    flags = flagged(inputs)
    assert list(flags) == ["P5"] and "only 1 real cell" in flags["P5"][0]
    assert "Flagged conditions" in page_html and "only 1 real cell" in page_html


def test_strength_without_cells_falls_back_to_the_control_baseline():
    inp = tiny_inputs(cells=False)
    strength, how = condition_strength(inp)
    assert "control baseline" in how
    ranked = [p for p in sorted(strength, key=lambda p: -strength[p]) if not math.isnan(strength[p])]
    assert ranked[:2] == ["P4", "P3"]  # P5 is NaN (invalid condition)
    html = render(inp, sections=("per-perturbation", "distributions"))
    check_page(html, ["per-perturbation", "distributions"])
    assert "cells were not available" in html


def test_per_condition_metrics_skip_global_ones(inputs):
    names = per_condition_metrics(inputs)
    assert names and "de_spearman_sig" not in names and len(names) <= 4


def test_replicate_band_and_training_section(inputs):
    ceiling = inputs.positives[0]
    refs = [*inputs.negatives, Reference(ceiling.name, ceiling.table, "positive", replicates=(ceiling.table, ceiling.table),
                                         description="5 disjoint half-splits")]
    run = RunRecord(log=[{"step": s, "loss": 1.0 / s, "val_mse": 0.5 / s} for s in range(1, 40)],
                    config={"train": {"steps": 39}}, preset={"train": {"steps": 1500}}, preset_name="tiny-preset",
                    manifest={"seed": 0, "versions": {"torch": "x"}}, timings={"train": 1.0})
    html = render(ReportInputs(inputs.model, refs, inputs.summary, cells=None, run=run))
    images = check_page(html, SECTIONS)
    assert "replicate band" in html and "(2 splits)" in html
    # the band is the same cells re-split, which understates a new experiment's spread: no reader is left to take a model
    # inside it as at the ceiling (docs/metrics.md, "Calibrated scores")
    assert "a model inside the band is not shown to be as good as the data allow" in html
    assert "not shown to be as good" not in render(ReportInputs(inputs.model, inputs.negatives, inputs.summary, cells=None))
    assert len(images) == 4  # headline, per condition x2, training curves
    assert "Config: differences from preset <code>tiny-preset</code>" in html and "train.steps" in html
    assert "versions.torch" in html and "Time per stage" in html


def test_a_partial_training_time_is_said_not_shown_as_seconds(inputs):
    """``timings.json``'s ``train_partial: true`` (a resume from a checkpoint that recorded no seconds) is a flag: the
    page says what it means instead of a number of seconds."""
    run = RunRecord(log=[{"step": s, "loss": 1.0 / s} for s in range(1, 5)], timings={"train": 2.5, "train_partial": True})
    html = render(ReportInputs(inputs.model, inputs.negatives, inputs.summary, cells=None, run=run))
    row = html[html.index("train_partial"):].split("</tr>")[0]
    assert "only the part since a resume" in row and ">True<" not in row


def test_eval_dir_round_trip_and_module_entry_point(tmp_path, capsys):
    import distgen
    from distgen.report.__main__ import main

    from ..evaluation.synth import make_pair

    real, pred = make_pair(seed=5, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "eval"
    distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), out, metric_names=["mse", "pearson_delta", "edistance"],
                     make_plots=False, progress=False)
    from distgen.report.__main__ import read_cells

    inp = load_eval_dir(out, cells=read_cells(out))
    assert inp.cells is not None and [r.name for r in inp.references] == ["control", "ceiling"]
    assert inp.model.mean("mse") == pytest.approx(json.loads((out / "summary.json").read_text())["metrics"]["mse"]["model"])
    assert main([str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")
    check_page((out / "report.html").read_text(), SECTIONS)
    assert main([str(tmp_path / "nothing")]) == 1
    assert "not an evaluation folder" in capsys.readouterr().err


def _relabelled(table, ctx):
    from distgen.evaluation import MetricTable

    lab = {p: f"{p} @ {ctx}" for p in table.perts}
    return MetricTable(tuple(lab.values()), dict(table.values), {m: {lab[p]: r for p, r in rs.items()} for m, rs in table.reasons.items()},
                       {"context": [ctx] * len(lab), **table.info})


def _merged(a, b):
    from distgen.evaluation import MetricTable

    return MetricTable(a.perts + b.perts, {m: a.values[m] + b.values[m] for m in a.values},
                       {m: {**a.reasons[m], **b.reasons[m]} for m in a.reasons})


def test_a_report_object_with_one_evaldata_per_context():
    """``from_report`` reads any object with table/references/ceiling/summary/data; rows are ``condition @ context``."""
    from types import SimpleNamespace

    from distgen.evaluation import run_metrics
    from distgen.evaluation.calibration import ceiling_data, summarise

    from .tiny import METRICS, control_prediction, tiny_data

    parts = {ctx: tiny_data(seed=s, n_perts=3, tiny_pert=False) for s, ctx in enumerate(("B cells", "T cells"))}
    tables = {ctx: (run_metrics(d, METRICS), run_metrics(control_prediction(d), METRICS), run_metrics(ceiling_data(d), METRICS))
              for ctx, d in parts.items()}
    model, ctrl, ceil = (_merged(*(_relabelled(tables[c][k], c) for c in parts)) for k in range(3))
    summary = {"n_genes": 24, "contexts": list(parts), "metrics": summarise(model, {"control": ctrl}, ceil), "notes": []}
    report = SimpleNamespace(table=model, references={"control": ctrl}, ceiling=ceil, summary=summary, data=list(parts.values()))
    inp = ReportInputs.from_report(report)
    assert set(inp.cell_index()) == set(model.perts) and "P2 @ T cells" in inp.cell_index()
    strength, how = condition_strength(inp)
    assert "‖" in how and all(not math.isnan(v) for v in strength.values())
    html = render(inp, sections=("headline", "distributions"))
    assert len(check_page(html, ["headline", "distributions"])) == 3  # headline, embedding, marginals
    assert 'id="training"' not in html
    with pytest.raises(ValueError, match="unknown report section"):
        render(inp, sections=("nope",))


def test_a_positive_reference_other_than_the_ceiling(inputs):
    ctrl = inputs.negatives[0]
    inp = ReportInputs.from_evaluation(inputs.model, {"control": ctrl.table, "interpolated_duplicate": inputs.positives[0].table},
                                       inputs.positives[0].table, inputs.summary, roles={"interpolated_duplicate": "positive"})
    assert [r.name for r in inp.negatives] == ["control"]
    assert [r.name for r in inp.positives] == ["ceiling", "interpolated_duplicate"]  # the ceiling stays the band
    html = render(inp, sections=("headline",))
    assert "interpolated_duplicate (positive)" in html


def test_hostile_labels_are_escaped_on_the_page_and_drawn_as_text():
    """A condition called ``<script>...</script> $x_1$ | *y*``: escaped in every table and note, never markup; the
    page's figures draw it (no mathtext failure)."""
    import dataclasses
    from html import escape

    from distgen.evaluation import run_metrics
    from distgen.evaluation.calibration import ceiling_data, summarise
    from distgen.report import ReportInputs, render

    from .tiny import METRICS, check_page, control_prediction, tiny_data

    hostile = "<script>alert(1)</script> $x_1$ | *y* & é"
    data = tiny_data()
    data = dataclasses.replace(data, perts=(*data.perts[:-1], hostile))
    model, ctrl = run_metrics(data, METRICS), run_metrics(control_prediction(data), METRICS)
    ceiling = run_metrics(ceiling_data(data), METRICS)
    summary = {"pred": "<memory>", "real": "<memory>", "n_genes": len(data.genes), "metrics": summarise(model, {"control": ctrl}, ceiling),
               "notes": [f"{hostile}: all metrics NaN (only 1 real cell(s); at least 2 are needed)"]}
    html = render(ReportInputs.from_evaluation(model, {"control": ctrl}, ceiling, summary, cells=data))
    check_page(html, ["headline", "per-perturbation", "distributions"])
    assert "<script>" not in html and escape(hostile) in html
