"""A genome-wide screen's evaluation (hundreds to thousands of conditions): figures of bounded size, pages with a summary
instead of one row per condition, every value still in the files."""

from __future__ import annotations

import re
import struct

import pytest

from .tiny import check_page, control_prediction, tiny_data

N = 150  # above every limit below, small enough to score in a second
FAST = ["mse", "pearson_delta"]


@pytest.fixture(scope="module")
def many():
    from distgen.evaluation import run_metrics
    from distgen.evaluation.calibration import ceiling_data, summarise
    from distgen.report import ReportInputs

    data = tiny_data(n_perts=N, genes=24, cells=6, n_ctrl=30)
    model, ctrl = run_metrics(data, FAST), run_metrics(control_prediction(data), FAST)
    ceiling = run_metrics(ceiling_data(data), FAST)
    # every condition flagged by a note, as a screen with many thin conditions would be
    notes = [f"{p}: few cells, its metrics are noisy" for p in data.perts]
    summary = {"pred": "<memory>", "real": "<memory>", "n_genes": len(data.genes), "metrics": summarise(model, {"control": ctrl}, ceiling),
               "notes": notes}
    return data, model, ReportInputs.from_evaluation(model, {"control": ctrl}, ceiling, summary, cells=data)


def test_shown_conditions_keeps_both_ends_of_the_order():
    from distgen.report.page import ROW_LIMIT, shown_conditions

    order = [f"c{i}" for i in range(1000)]
    shown = shown_conditions(order)
    assert len(shown) == ROW_LIMIT and shown[0] == "c0" and shown[-1] == "c999"
    assert shown == order[: ROW_LIMIT // 2] + order[-ROW_LIMIT // 2:]
    assert shown_conditions(order[:ROW_LIMIT]) == order[:ROW_LIMIT]  # up to the limit: every condition


def test_the_per_condition_figure_draws_the_strongest_and_weakest_only(many):
    from distgen.report import figures
    from distgen.report.explain import condition_strength, flagged
    from distgen.report.page import ROW_LIMIT, per_condition_metrics, shown_conditions

    _, _, inputs = many
    strength, _ = condition_strength(inputs)
    order = sorted(inputs.model.perts, key=lambda p: -strength[p])
    fig = figures.per_condition_figure(inputs, per_condition_metrics(inputs), shown_conditions(order), strength, flagged(inputs))
    fig.canvas.draw()
    ticks = [t.get_text().removesuffix(" *") for t in fig.axes[0].get_yticklabels()]
    assert len(ticks) == ROW_LIMIT
    assert ticks[0] == order[0] and ticks[-1] == order[-1]  # tiny_data: strength grows with the condition's number
    assert fig.get_size_inches()[1] < 20  # one row per condition: 0.2 inch each, 30 inches for 150


def test_the_page_summarises_many_conditions(many):
    from distgen.report.page import ROW_LIMIT, render

    _, _, inputs = many
    html = render(inputs)
    check_page(html, ["headline", "per-perturbation", "distributions", "training"])
    flagged_part = html.split("<h3>Flagged conditions</h3>", 1)[1].split("</table>", 1)[0]
    assert flagged_part.count("<tr") == 2 * ROW_LIMIT + 1  # header + the first rows; the rest are named in the note
    assert f"The first {2 * ROW_LIMIT} of {N} flagged conditions" in html
    assert f"of {N} conditions" in html  # the figure's caption says how many are drawn


def _png_size(path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_metrics_per_perturbation_png_has_a_bounded_width(many, tmp_path):
    from distgen.evaluation.report import BAR_LABEL_LIMIT, plots

    data, model, _ = many
    files = plots(data, model, str(tmp_path))
    bars = next(f for f in files if f.endswith("metrics_per_perturbation.png"))
    width, _ = _png_size(bars)
    assert width <= 0.3 * BAR_LABEL_LIMIT * 110 + 10  # 0.3 inch a bar at 110 dpi: 16.5 inches for 150 would be 4,950 px


def test_the_profile_page_repeats_at_most_page_rows(tmp_path, monkeypatch):
    from distgen.report import profile
    from distgen.report.profile import render_profile

    from ..evaluation.synth import evaluation_folder

    folder = evaluation_folder(tmp_path / "ev", {f"P{i}": {"mse": i / 10} for i in range(40)}, {"mse": False})
    summary = (folder / "summary.json").read_text().replace("{", '{"profile": "celleval2", "reference": "cell-eval2", ', 1)
    (folder / "summary.json").write_text(summary)
    whole = render_profile(folder)
    assert "40 rows of <code>metrics.csv</code>" in whole and "<details open>" in whole
    monkeypatch.setattr(profile, "PAGE_ROWS", 25)
    cut = render_profile(folder)
    body = cut.split('id="per-perturbation"', 1)[1]
    assert len(re.findall(r"<td>P\d+</td>", body)) == 25 and "P24<" in body and "P25<" not in body
    assert "The first 25 of the 40 rows" in cut


def _flag_notes_one_by_one(perts, notes):
    """The notes part of ``flagged`` as it was: every condition's pattern searched in every note."""
    out: dict[str, list[str]] = {}
    for note in notes:
        if note.startswith("baseline "):
            continue
        for p in perts:
            if note.startswith(f"{p}: all metrics NaN"):
                continue
            if re.search(rf"(?<![\w+]){re.escape(p)}(?![\w+])", note) or any(f"'{a}'" in note for a in p.split("+")):
                out.setdefault(p, []).append(note)
    return out


def test_flagged_reads_notes_without_a_pattern_per_condition_and_note(monkeypatch):
    import dataclasses
    import types

    from distgen.report import explain

    from .tiny import tiny_inputs

    inputs = tiny_inputs(cells=False)
    perts = inputs.model.perts  # P0 .. P5
    notes = ["P1: few cells", "P10 is not P1's neighbour", "atoms 'P2' and 'P3' unpredictable", "P4+P5 was skipped",
             "baseline control: fell back for P0", "P5: all metrics NaN (only 1 real cell(s))", "nothing about any condition",
             *(f"note {i} names no condition" for i in range(200))]
    inputs = dataclasses.replace(inputs, summary={**inputs.summary, "notes": notes})
    calls = []
    monkeypatch.setattr(explain, "re", types.SimpleNamespace(search=lambda *a: calls.append(a) or re.search(*a), escape=re.escape))
    got = explain.flagged(inputs)
    want = _flag_notes_one_by_one(perts, notes)
    first = {n: min(p for p, ws in want.items() if n in ws) for n in notes if any(n in ws for ws in want.values())}
    once = {p: [n if first[n] == p else f"the note under {first[n]} names it too" for n in ws] for p, ws in want.items()}
    assert {p: [w for w in ws if w in notes or w.startswith("the note under")] for p, ws in got.items()
            if any(w in notes or w.startswith("the note under") for w in ws)} == once  # in full once: under its first row
    assert want["P1"] == ["P1: few cells", "P10 is not P1's neighbour"] and "P2" in want and "P4" not in want
    assert len(calls) < 10  # only where the condition's name is in the note, not 6 x 207 searches


def test_the_advantage_figure_draws_many_dots_as_one_image(many, monkeypatch):
    from distgen.report import figures
    from distgen.report.explain import condition_strength
    from distgen.report.html import embed
    from distgen.report.page import per_condition_metrics

    _, _, inputs = many
    strength, _ = condition_strength(inputs)
    names = per_condition_metrics(inputs)
    vector = embed(figures.advantage_figure(inputs, names, strength))  # 150 conditions: under the limit, vector dots
    monkeypatch.setattr(figures, "VECTOR_DOTS", 50)
    raster = embed(figures.advantage_figure(inputs, names, strength))
    assert b"<image" not in vector and raster.count(b"<image") >= 1
    assert vector.count(b"<use") - raster.count(b"<use") >= 2 * N  # the model's and the ceiling's dots: no longer one mark each
