"""Labels in scripts matplotlib's DejaVu Sans lacks (CJK, some emoji) are never drawn as silent empty boxes.

Before, a condition ``基因敲除`` was four empty boxes in every figure of the page (tables and text were right; matplotlib
warned "Glyph ... missing from font(s) DejaVu Sans" into a log). Now each figure draws such a character with an
installed font that has it, else writes its escape (``\\u57fa``), which the page says and maps to the label. The tests
catch matplotlib's missing-glyph warnings, so a box anywhere in a figure fails them, whatever fonts the machine has.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from html import unescape

import pytest

from distgen import glyphs
from distgen.report.style import short_label, theme

from .tiny import METRICS, check_page, control_prediction, tiny_data

#: Chinese, Japanese (kanji and katakana), Korean, Arabic, emoji DejaVu Sans has and one it lacks, a ZWJ sequence.
LABELS = ["基因敲除", "遺伝子ノックダウン", "한국 KO", "مرحبا", "😀 happy", "🧬 DNA", "👨\u200d🔬", "Müller", "plain"]


def _boxes(caught) -> list[str]:
    return [str(w.message) for w in caught if glyphs.MISSING_WARNING in str(w.message)]


@pytest.fixture
def base_only(monkeypatch):
    """A machine whose only text font is DejaVu Sans (the caches cleared around it)."""
    fonts = tuple(f for f in glyphs.installed_fonts() if f[0] == glyphs.BASE)
    glyphs._covered.cache_clear()
    monkeypatch.setattr(glyphs, "installed_fonts", lambda: fonts)
    yield
    glyphs._covered.cache_clear()


def _inputs(labels=LABELS, model_name="模型 🧬", baseline="控制"):
    from distgen.evaluation import run_metrics
    from distgen.evaluation.calibration import ceiling_data, summarise
    from distgen.report import ReportInputs

    data = tiny_data(n_perts=len(labels), genes=40)
    genes = tuple("基因" + str(i) if i % 3 == 0 else f"G{i}" for i in range(40))
    data = dataclasses.replace(data, perts=tuple(labels), genes=genes)
    model, ctrl = run_metrics(data, METRICS), run_metrics(control_prediction(data), METRICS)
    ceiling = run_metrics(ceiling_data(data), METRICS)
    summary = {"pred": "<memory>", "real": "<memory>", "n_genes": len(genes), "metrics": summarise(model, {baseline: ctrl}, ceiling)}
    return dataclasses.replace(ReportInputs.from_evaluation(model, {baseline: ctrl}, ceiling, summary, cells=data), model_name=model_name)


def _render(inputs):
    from distgen.report.page import render

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = render(inputs)
    return html, _boxes(caught)


def test_the_missing_glyph_warning_is_what_these_tests_catch():
    """The detector itself: DejaVu Sans alone draws CJK as boxes, and matplotlib says so in the warning caught here."""
    import io

    from matplotlib.figure import Figure

    with warnings.catch_warnings(record=True) as caught, theme():
        warnings.simplefilter("always")
        fig = Figure()
        fig.subplots().set_title("基因")
        fig.savefig(io.BytesIO(), format="svg")
    assert _boxes(caught) and "57FA" in _boxes(caught)[0].upper()


def test_a_page_of_labels_in_other_scripts_draws_no_box():
    """Whatever fonts this machine has: no box, and every label a figure writes otherwise is listed with its stand-in."""
    html, boxes = _render(_inputs())
    assert boxes == []
    check_page(html, ["headline", "per-perturbation", "distributions"])
    with theme(LABELS):
        shown = glyphs.stand_ins(LABELS)
        for label in LABELS:
            assert glyphs.missing(short_label(label)) == []  # what a figure writes is drawn by the theme's fonts
    for label, stand_in in shown.items():
        assert f"<code>{stand_in}</code></td><td>{label}</td>" in unescape(html)
    assert "Müller" not in shown and "مرحبا" not in shown and "plain" not in shown  # DejaVu Sans draws them


def test_without_a_cjk_font_the_figures_write_escapes_and_the_page_says_so(base_only):
    html, boxes = _render(_inputs())
    assert boxes == []
    text = unescape(html)
    assert 'id="figure-labels"' in html and "labels in figures" in text
    for label in ("基因敲除", "遺伝子ノックダウン", "한국 KO", "🧬 DNA", "模型 🧬", "控制"):
        stand_in = "".join(ascii(ch)[1:-1] if ord(ch) > 0x2FFF else ch for ch in label)
        assert f"<code>{stand_in}</code></td><td>{label}</td>" in text, label
    assert "\\u57fa\\u56e0\\u6572\\u9664" in short_label("基因敲除")


def test_an_installed_font_that_has_the_glyph_draws_it():
    """A character DejaVu Sans lacks but another installed font has (STIX's or DejaVu Serif's arrows, on any machine
    with matplotlib's own fonts) is drawn from that font, not escaped."""
    base = glyphs._covered((glyphs.BASE,))
    other = next((chr(cp) for fam, path in glyphs.installed_fonts() if fam != glyphs.BASE
                  for cp in sorted(glyphs._charmap(path)) if cp not in base and 0x2900 <= cp < 0x2A00), None)
    if other is None:
        pytest.skip("no installed font has an arrow DejaVu Sans lacks")
    label = f"{other} arrow"
    assert glyphs.fallback_families([label])
    assert glyphs.missing(label) == [other]  # outside the theme: DejaVu Sans alone
    html, boxes = _render(_inputs(labels=[label, "plain", "other"], model_name="model", baseline="control"))
    assert boxes == [] and 'id="figure-labels"' not in html
    with theme([label]):
        assert short_label(label) == label


def test_text_that_bypasses_short_label_is_named_in_the_caption():
    """The last net: a box in a figure (a title set by hand) is named under it, never silent."""
    from matplotlib.figure import Figure

    from distgen.report.html import figure

    with theme():
        fig = Figure()
        fig.subplots().set_title("基因 X")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the glyph warnings are taken by the caption, others would pass on
            out = figure(fig, "caption.", alt="t")
    assert "show as boxes" in out and "U+57FA" in out and "U+56E0" in out


def test_the_evaluation_bar_figure_draws_no_box(tmp_path):
    from distgen.evaluation import run_metrics
    from distgen.evaluation.report import plots

    data = dataclasses.replace(tiny_data(n_perts=len(LABELS), genes=40), perts=tuple(LABELS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = plots(data, run_metrics(data, ["mse"]), str(tmp_path))
    assert any(f.endswith("metrics_per_perturbation.png") for f in files) and _boxes(caught) == []


def test_the_sweep_page_draws_no_box(base_only):
    from distgen.report.sweep import SweepInputs, render_sweep

    variants = ["enc=基因", "enc=set", "名前=🧬"]
    rows = [{"variant": v, "seed": s, "perturbation": f"P{p}", "mse": 0.01 + 0.001 * (vi + s + p)}
            for vi, v in enumerate(variants) for s in range(2) for p in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = render_sweep(SweepInputs(rows, variants, variants[0], ["mse"]))
    assert _boxes(caught) == []
    assert re.search(r"<code>enc=\\u57fa\\u56e0</code></td><td>enc=基因</td>", unescape(html))


def test_a_label_with_right_to_left_letters_is_set_left_to_right_as_a_whole():
    """matplotlib ordered 'مرحبا+\\U0001f9ecDNA' by its first letter (right to left): 'U0001f9ecDNA\\+مرحبا'; isolated,
    the label reads as the page's tables show it and a flag or a '(Δ ...)' after it stays after it."""
    import io

    from matplotlib.figure import Figure

    with theme(["مرحبا+🧬DNA"]):
        shown = short_label("مرحبا+🧬DNA")
        assert shown.startswith(glyphs.LRI) and shown.endswith(glyphs.PDI)
        assert short_label("plain") == "plain" and short_label("Müller") == "Müller"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig = Figure()
            fig.subplots().set_title(f"{shown} (Δ -2.6)")
            fig.savefig(io.BytesIO(), format="png")
    assert _boxes(caught) == []  # the isolates are invisible controls, drawn by no glyph


def test_a_character_the_bold_face_lacks_is_not_drawn_as_a_box_in_bold():
    """DejaVu Sans Bold lacks 140 characters of the regular face (the math sans-serif letters): a bold title (metric
    panels, metric families) drew such a character as a box although the regular face has it."""
    from matplotlib.ft2font import FT2Font

    regular, bold = glyphs._file(glyphs.BASE), glyphs._bold_file(glyphs.BASE)
    if regular is None or bold is None:
        pytest.skip("DejaVu Sans Bold is not installed")
    only = sorted(set(FT2Font(regular).get_charmap()) - set(FT2Font(bold).get_charmap()))
    if not only:
        pytest.skip("this DejaVu Sans Bold has every character of the regular face")
    import io

    from matplotlib.figure import Figure

    name = f"{chr(only[0])}model"
    with theme([name]), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = Figure()
        fig.subplots().set_title(short_label(name), fontweight="bold")  # as figures._title and the families' titles
        fig.savefig(io.BytesIO(), format="png")
    assert _boxes(caught) == []


_ESCAPE = re.compile(r"\\u[0-9a-f]{4}|\\U[0-9a-f]{8}")


def test_a_long_label_is_never_cut_inside_an_escape(base_only):
    """A long label of characters no font draws was cut wherever the 40th character fell: ``\\u57fa`` cut to ``\\u5``
    (or ``\\u06`` of ``\\u0645``), a broken escape in the figure that reads as another character. The cut falls between
    the written characters now, whatever the offset of the escapes and the width."""
    for lead in range(8):
        for width in (12, 17, 25, 40, 41):
            label = "a" * lead + "基因敲除🧬" * 12 + "z" * lead
            whole = glyphs.drawable(label)
            shown = glyphs.short_label(label, width)
            assert len(shown) <= width and "…" in shown
            assert "\\" not in _ESCAPE.sub("", shown), (lead, width, shown)  # every escape whole
            start, end = shown.split("…")
            assert whole.startswith(start) and whole.endswith(end)


#: A plugin metric's name in a script no installed font may draw, long enough to be cut (it reached titles and axes whole).
PLUGIN_METRIC = "指標_" + "分布間の距離" * 12 + "_終"


@pytest.fixture
def plugin_metric_inputs():
    from distgen.capabilities import MetricCapabilities
    from distgen.evaluation.metrics import metrics
    from distgen.evaluation.metrics.base import Metric

    class _LongNamed(Metric):
        """A plugin-like metric (lower is better) whose values the test supplies."""

        capabilities = MetricCapabilities(higher_is_better=False)

        def compute(self, data):
            raise NotImplementedError

    metrics.add(PLUGIN_METRIC, _LongNamed)
    try:
        inputs = _inputs(labels=["P0", "P1", "P2", "P3", "P4", "P5"], model_name="model", baseline="control")
        for table in (inputs.model, *(r.table for r in inputs.references)):
            table.values = {PLUGIN_METRIC: [v * 1.5 for v in table.values["mse"]], **table.values}  # first: a headline panel
        yield inputs
    finally:
        metrics.unregister(PLUGIN_METRIC)


def _figure_texts(fig) -> list[str]:
    from matplotlib.text import Text

    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_a_plugin_metric_name_is_labelled_as_conditions_are(base_only, plugin_metric_inputs):
    """Metric names bypassed ``short_label``: a plugin metric named in CJK was a row of boxes (or escapes 700 characters
    wide) in every panel title and axis. Now each figure writes the short form, and the page lists the whole name."""
    from distgen.report import figures
    from distgen.report.explain import condition_strength, flagged
    from distgen.report.page import per_condition_metrics
    from distgen.report.style import metric_labels

    inputs = plugin_metric_inputs
    short = short_label(PLUGIN_METRIC)
    assert len(short) <= glyphs.LABEL_WIDTH and metric_labels([PLUGIN_METRIC, "mse"]) == {PLUGIN_METRIC: short, "mse": "mse"}
    assert PLUGIN_METRIC in per_condition_metrics(inputs)
    strength, _ = condition_strength(inputs)
    order = list(inputs.model.perts)
    with theme([PLUGIN_METRIC]), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = [figures.headline_figure(inputs, [PLUGIN_METRIC, "mse"]),
                figures.per_condition_figure(inputs, per_condition_metrics(inputs), order, strength, flagged(inputs)),
                figures.advantage_figure(inputs, per_condition_metrics(inputs), strength)]
        texts = [t for fig in made for t in _figure_texts(fig)]
    assert _boxes(caught) == []
    for fig in made:
        assert any(short in t for t in _figure_texts(fig))  # the panel names it, in the short form
    whole = glyphs.drawable(PLUGIN_METRIC)
    assert not any(PLUGIN_METRIC in t or whole[: glyphs.LABEL_WIDTH + 1] in t for t in texts)
    assert "\\" not in re.sub(r"\\u[0-9a-f]{4}", "", "".join(texts))  # every escape whole
    html, boxes = _render(inputs)
    assert boxes == []
    assert f"<code>{whole}</code></td><td>{PLUGIN_METRIC}</td>" in unescape(html)  # "Labels in figures": the whole name


def test_the_sweep_figures_write_a_plugin_metric_name_short(base_only, plugin_metric_inputs):
    from distgen.report.sweep import SweepInputs, differences_figure, render_sweep, values_figure

    variants = ["a", "b"]
    rows = [{"variant": v, "seed": s, "perturbation": f"P{p}", PLUGIN_METRIC: 0.01 + 0.001 * (vi + s + p)}
            for vi, v in enumerate(variants) for s in range(2) for p in range(4)]
    inp = SweepInputs(rows, variants, variants[0], [PLUGIN_METRIC])
    with theme([PLUGIN_METRIC]):
        texts = [t for fig in (values_figure(inp), differences_figure(inp)) for t in _figure_texts(fig)]
    assert any(short_label(PLUGIN_METRIC) in t for t in texts) and not any(PLUGIN_METRIC in t for t in texts)
    assert max(map(len, texts)) < 2 * glyphs.LABEL_WIDTH
    html = unescape(render_sweep(inp))
    assert f"<td>{PLUGIN_METRIC}</td>" in html and f"{PLUGIN_METRIC} (lower is better)" in html  # the tables: whole


def test_the_training_curves_and_the_sweep_bars_write_long_names_short(base_only, tmp_path, monkeypatch):
    """The training figure's panels (``val_<metric>``, a plugin's loss term) and the sweep's ``summary.png`` (variant and
    metric names) wrote them whole too."""
    import matplotlib.pyplot as plt

    from distgen.pipeline.aggregate import plot_summary
    from distgen.report.training import training_figure

    log = [{"step": s, "loss": 1.0 / (s + 1), f"val_{PLUGIN_METRIC}": 0.5 + 0.01 * s} for s in range(12)]
    with theme([PLUGIN_METRIC]):
        texts = _figure_texts(training_figure(log))
    assert any(short_label(PLUGIN_METRIC) in t for t in texts) and not any(PLUGIN_METRIC in t for t in texts)

    shown = []
    monkeypatch.setattr(plt, "close", lambda fig=None: shown.extend(_figure_texts(fig)))
    variants = ["model.encoder.name=" + "x" * 200, "名前=" + "🧬" * 30]
    rows = [{"variant": v, "seed": s, "perturbation": "P0", PLUGIN_METRIC: 0.1 * s} for v in variants for s in range(2)]
    plot_summary(rows, variants, [PLUGIN_METRIC], tmp_path / "summary.png")
    assert shown and max(map(len, shown)) <= 2 * glyphs.LABEL_WIDTH
    assert not any(v in t for t in shown for v in [*variants, PLUGIN_METRIC])


def _warned_boxes(fig) -> list[str]:
    """The characters matplotlib warns it draws as boxes when it draws ``fig`` (its own "Glyph ... missing" warnings)."""
    from distgen.report.html import embed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embed(fig)
    found = (re.match(r"Glyph (\d+) ", str(w.message)) for w in caught)
    return list(dict.fromkeys(chr(int(m.group(1))) for m in found if m is not None))


def test_boxes_are_found_from_the_texts_fonts_not_from_warnings():
    """Storage round 2: ``embed_checked`` finds the characters a figure draws as boxes from its ``Text`` artists' font
    coverage (before, from matplotlib's warnings, caught per figure, which takes the process's warning filters); a
    figure whose fonts draw every character gets no note and no warning machinery around its draw."""
    from matplotlib.figure import Figure

    from distgen.report.html import drawn_as_boxes, embed_checked

    lacking = next(chr(cp) for cp in range(0x4E00, 0x9FFF) if glyphs.missing(chr(cp), glyphs.families_of(["DejaVu Sans"])))

    def made() -> Figure:
        fig = Figure()
        ax = fig.subplots()
        ax.set_xticks([0, 1], ["plain", f"x{lacking}"])  # a tick label: made at the draw
        ax.set_title("$\\alpha$ is math")
        return fig

    fig = made()
    assert drawn_as_boxes(fig) == _warned_boxes(made())  # what matplotlib itself warns of when it draws the same figure
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's glyph warning is not let out; the box is named
        raw, boxes = embed_checked(fig)
    assert boxes == drawn_as_boxes(fig) and raw
    ok = Figure()
    ok.subplots().set_title("Müller Δ −2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raw, boxes = embed_checked(ok)
    assert boxes == [] and raw.startswith(b"<?xml")


def test_a_generic_family_draws_with_its_first_installed_font_only():
    """Review of storage round 2: matplotlib resolves each family of a text to one font (a generic ``sans-serif`` to the
    best installed font of ``font.sans-serif``), never to every font of the list; ``drawn_as_boxes`` read the whole list
    as the chain, so a character of the list's second font was not named in the caption, and matplotlib's glyph warning
    reached the user (the warning-based check before named it). Here ``font.sans-serif`` names DejaVu Sans, then DejaVu
    Sans Mono, which has a character DejaVu Sans lacks: matplotlib draws it as a box, and the caption must say so."""
    import matplotlib
    from matplotlib.figure import Figure

    from distgen.report.html import drawn_as_boxes, embed_checked

    fonts = dict(glyphs.installed_fonts())
    if "DejaVu Sans Mono" not in fonts:
        pytest.skip("needs DejaVu Sans Mono (matplotlib ships it)")
    only_mono = sorted(glyphs._covered(("DejaVu Sans Mono",)) - glyphs._covered(("DejaVu Sans",)))
    ch = chr(next(cp for cp in only_mono if glyphs.needs_glyph(chr(cp))))
    with matplotlib.rc_context({"font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans", "DejaVu Sans Mono"]}):
        fig = Figure()
        fig.subplots().set_title(f"arc {ch}")
        warned = Figure()
        warned.subplots().set_title(f"arc {ch}")
        assert _warned_boxes(warned) == [ch]  # matplotlib draws it as a box (it takes DejaVu Sans alone for sans-serif)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            boxes = embed_checked(fig)[1]
        assert boxes == [ch] and drawn_as_boxes(fig) == [ch]
        assert not [w for w in caught if glyphs.MISSING_WARNING in str(w.message)]  # the caption names it: no warning
        mono = Figure()  # a text whose own family list is the two fonts: matplotlib chains them, the character is drawn
        mono.subplots().set_title(f"arc {ch}", fontfamily=["DejaVu Sans", "DejaVu Sans Mono"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert embed_checked(mono)[1] == []
