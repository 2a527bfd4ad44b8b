"""Labels written into Markdown read back as themselves: tables keep their columns, nothing renders as HTML or emphasis.

Rendered with Python-Markdown (what mkdocs uses; installed with the dev extras) and its ``tables`` extension.
"""

import html
import math
import re

import pytest

from distgen import markdown as md
from distgen.evaluation.report import markdown as summary_markdown
from distgen.pipeline.aggregate import summary_markdown as sweep_markdown

markdown = pytest.importorskip("markdown")

HOSTILE = ["A|B", "<b>x</b>", "*bold*", "_x_", "__init__", "`x`", "two\nlines", "[a](http://x)", "[r]: http://x", "&amp;",
           "~~s~~", "a\\b", "# h", "- l", "+ p", "1. o", "x > y", "p < 0.05", "a<b", "<3", "<!-- c -->", "</x>", "<?x?>", "<http://x>", "é+ü, x", " lead", "trail ", "1e3", "001", "nan", "None"]
PLAIN = ["pearson_delta", "KLF1+MAP2K6", "model.coupling.name=exact_ot", "name=kme,depth=2", "A ['mae'], B ['w2']",
         "the two-sided Wilcoxon test cannot reach p < 0.05 with fewer than 6"]  # was 'p &lt; 0.05' in a terminal


def _render(text: str) -> str:
    return markdown.markdown(text, extensions=["tables"])


def _plain(fragment: str) -> str:
    """The text a reader sees in a rendered fragment (a line break as a newline)."""
    return html.unescape(re.sub(r"<br ?/?>", "\n", fragment))


def _rows(page: str) -> list[list[str]]:
    """The cells of each row of each rendered table (header cells included)."""
    return [[_plain(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]


@pytest.mark.parametrize("label", HOSTILE + PLAIN)
def test_a_label_reads_back_as_itself_in_a_table_cell_a_list_item_and_a_code_span(label):
    assert _rows(_render(f"| a | b |\n|---|---|\n| {md.cell(label)} | v |\n")) == [["a", "b"], [label, "v"]]
    items = re.findall(r"<li>(.*?)</li>", _render(f"- {md.inline(label, line_start=True)}: why\n- other\n"), re.S)
    assert [_plain(i) for i in items] == [f"{label}: why", "other"]
    spans = re.findall(r"<code>(.*?)</code>", _render(f"see {md.code(label)} here"), re.S)
    assert [html.unescape(s) for s in spans] == [label.replace("\n", " ").strip()]  # Python-Markdown strips a code span


@pytest.mark.parametrize("label", PLAIN)
def test_ordinary_names_are_written_as_they_are(label):
    assert md.cell(label) == md.inline(label, line_start=True) == label


def _summary(baseline: str, pert: str, note: str) -> dict:
    nan = math.nan
    return {"pred": "runs/a|b/pred.h5ad", "real": "real `x`.h5ad", "n_perturbations": 2, "n_genes": 5, "pert_col": "gene",
            "control": "non-targeting", "contexts": ["K562|a", "*b*"], "notes": [note],
            "metrics": {"mse": {"higher_is_better": False, "model": 0.5, "baselines": {baseline: 0.75, "control": 1.0}, "ceiling": 0.25,
                                "normalised": 0.5, "strongest_baseline": baseline, "normalised_note": "", "n_nan": 0,
                                "normalised_rows": {"n": 1, "model": 0.5, "baseline": 0.75, "ceiling": 0.25,
                                                    "left_out": {pert: f"ceiling: {pert} has 3 real cell(s)"}}},
                        "pearson_delta": {"higher_is_better": True, "model": 0.5, "baselines": {baseline: nan, "control": nan},
                                          "ceiling": 0.9, "normalised": nan, "strongest_baseline": None, "n_nan": 0,
                                          "normalised_note": f"no baseline score defined ({pert})",
                                          "baseline_notes": {baseline: f"{pert}: undefined", "control": "constant"}}}}


@pytest.mark.parametrize("label", HOSTILE)
def test_summary_md_keeps_its_table_and_every_label(label):
    page = _render(summary_markdown(_summary(label, label, f"{label}: all metrics NaN (too few cells)")))
    rows = _rows(page)
    assert len(rows) == 3 and all(len(r) == len(rows[0]) for r in rows)  # header, mse, pearson_delta: no cell split or lost
    assert sorted(rows[0][3:5]) == sorted([label, "control"]) and rows[1][-2] == label  # baseline columns, the strongest
    text = _plain(re.sub(r"<(?!br)[^>]+>", "", page))  # what a reader sees, tags removed
    assert f"{label}: all metrics NaN (too few cells)" in text  # the note
    assert f"{label} (ceiling: {label} has 3 real cell(s))" in text  # the left-out perturbation
    assert f"pearson_delta, {label}: {label}: undefined" in text  # the undefined baseline
    assert "runs/a|b/pred.h5ad" in text and "real `x`.h5ad" in text and "K562|a, *b*" in text


@pytest.mark.parametrize("label", HOSTILE)
def test_sweep_summary_md_keeps_each_variant_in_its_own_row(label):
    rows = [{"variant": v, "seed": s, "perturbation": p, "mse": 1.0 + i + 0.1 * s + 0.01 * j}
            for i, v in enumerate(["ref", label]) for s in (0, 1) for j, p in enumerate(["P0", "P1", "P2"])]
    text, _ = sweep_markdown(rows, ["ref", label], "ref", ["mse"], failed=[label])
    page = _render(text)
    tables = _rows(page)
    assert [r[0] for r in tables[:3]] == ["variant", "ref", label] and all(len(r) == 3 for r in tables[:3])
    assert [r[0] for r in tables[3:]] == ["variant", label] and all(len(r) == 11 for r in tables[3:])  # 11: the test (t over seeds), its interval, p (Holm), margin, verdict
    assert _plain(re.findall(r"<li>(.*?)</li>", page, re.S)[-1]) == label  # the failed run
