"""Very long condition and model names: figures cut them in the middle (bounded, still distinct); tables keep them whole."""

from __future__ import annotations

import dataclasses
from html import escape

import pytest

from distgen.report.style import LABEL_WIDTH, short_label, short_labels

from .tiny import METRICS, check_page, control_prediction, tiny_data

BOUND = LABEL_WIDTH + 10  # short_labels' promise: the cut plus a digest when two cuts would read alike


def test_short_labels_are_bounded_distinct_and_keep_both_ends():
    long = ["GENE_" + "x" * 190 + f"_{i:03d}" for i in range(300)]  # one long common start: the ends tell them apart
    twins = ["A" * 100 + f"{i}" + "B" * 100 for i in range(5)]  # the difference in the middle: the cut alone collides
    labels = [*long, *twins, "short", "x" * 5000, "two\nlines"]
    out = short_labels(labels)
    assert len(set(out)) == len(labels) and max(map(len, out)) <= BOUND
    assert out[0].startswith("GENE_") and out[0].endswith("_000") and "…" in out[0]
    assert out[-3] == "short" and out[-1] == "two lines"
    assert short_label("abc") == "abc" and len(short_label("y" * 5000)) == LABEL_WIDTH


@pytest.fixture(scope="module")
def long_inputs():
    from distgen.evaluation import run_metrics
    from distgen.evaluation.calibration import ceiling_data, summarise
    from distgen.report import ReportInputs

    data = tiny_data(n_perts=40, genes=160)
    perts = tuple(["P" * 5000, *("DRUG_" + "z" * 195 + f"_{i:02d}" for i in range(len(data.perts) - 1))])
    data = dataclasses.replace(data, perts=perts)
    model, ctrl = run_metrics(data, METRICS), run_metrics(control_prediction(data), METRICS)
    ceiling = run_metrics(ceiling_data(data), METRICS)
    summary = {"pred": "<memory>", "real": "<memory>", "n_genes": len(data.genes), "metrics": summarise(model, {"control": ctrl}, ceiling)}
    return dataclasses.replace(ReportInputs.from_evaluation(model, {"control": ctrl}, ceiling, summary, cells=data), model_name="M" * 3000)


def test_the_per_condition_figure_has_bounded_distinct_tick_labels(long_inputs):
    from distgen.report import figures
    from distgen.report.explain import condition_strength, flagged
    from distgen.report.page import per_condition_metrics

    strength, _ = condition_strength(long_inputs)
    order = list(long_inputs.model.perts)
    fig = figures.per_condition_figure(long_inputs, per_condition_metrics(long_inputs), order, strength, flagged(long_inputs))
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(ticks) == len(order) and len(set(ticks)) == len(order)
    assert max(map(len, ticks)) <= BOUND + 2  # ' *' on flagged rows
    head = figures.headline_figure(long_inputs, METRICS[:2])
    assert head.get_size_inches()[0] < 20  # the 3,000-character model name set the width: 200+ inches
    names = [t.get_text() for ax in head.axes for t in ax.get_yticklabels() if t.get_text()]
    assert names and max(map(len, names)) <= BOUND


def test_the_page_renders_and_its_tables_keep_the_whole_labels(long_inputs):
    from distgen.report import render

    html = render(long_inputs)
    check_page(html, ["headline", "per-perturbation", "distributions"])
    assert escape("DRUG_" + "z" * 195 + "_38") in html  # the flagged table names the whole condition (1 real cell)


def test_the_advantage_figure_keeps_its_layout_with_a_long_model_name(long_inputs):
    """A legend in each 2.35-inch panel named the model and the baseline: wider than the panel for a 3,000-character
    model name (cut to 40), it collapsed constrained layout ('axes sizes collapsed to zero'). One legend above now."""
    import io
    import warnings

    from distgen.report import figures
    from distgen.report.explain import condition_strength
    from distgen.report.page import per_condition_metrics
    from distgen.report.style import theme

    strength, _ = condition_strength(long_inputs)
    with theme(), warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fig = figures.advantage_figure(long_inputs, per_condition_metrics(long_inputs), strength)
        fig.savefig(io.BytesIO(), format="png")
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1


def test_right_to_left_twins_keep_their_whole_digest():
    """A right-to-left label is set between two invisible isolates (``glyphs.ltr``); the digest after a colliding cut was
    sliced to ``width + 10`` characters with them counted, so it lost its last two hex digits."""
    from distgen.glyphs import LRI, PDI

    twins = ["مرحبا" * 3 + "x" * 30 + f"{i}" + "y" * 30 + "مرحبا" * 3 for i in range(2)]
    out = short_labels(twins)
    assert len(set(out)) == 2 and all(o.startswith(LRI) and len(o.replace(LRI, "").replace(PDI, "")) <= BOUND for o in out)
    import re
    import zlib

    assert [re.search(r"#([0-9a-f]+)$", o).group(1) for o in out] == [f"{zlib.crc32(t.encode()):08x}" for t in twins]
