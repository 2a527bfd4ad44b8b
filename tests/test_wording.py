"""Counts in what distgen prints and writes read as English: ``1 condition``, never ``1 conditions`` (``distgen.wording``)."""

import math

from distgen.evaluation.report import markdown
from distgen.report import ReportInputs, render
from distgen.types import Cells
from distgen.wording import counted

from .report.tiny import tiny_inputs


def test_counted_is_singular_for_exactly_one():
    assert counted(1, "condition") == "1 condition"
    assert [counted(n, "cell") for n in (0, 2, 1.5)] == ["0 cells", "2 cells", "1.5 cells"]
    assert counted(1.0, "split") == "1.0 split"
    assert counted(1, "entry", "entries") == "1 entry" and counted(3, "entry", "entries") == "3 entries"
    assert counted(12000, "cell", spec=",") == "12,000 cells"
    assert counted(None, "gene") == "None genes" and counted("?", "gene") == "? genes"  # unknown counts: as they are
    assert counted(True, "flag") == "True flags"  # a bool is not a count
    assert counted(math.nan, "value") == "nan values"


def test_summary_md_of_one_perturbation_says_one_perturbation():
    text = markdown({"metrics": {}, "pred": "p.h5ad", "real": "r.h5ad", "n_perturbations": 1, "n_genes": 1, "control": "ctrl"})
    assert "1 perturbation, 1 gene (" in text and "1 perturbations" not in text


def test_report_header_counts_one_baseline_and_one_condition():
    inputs = tiny_inputs(cells=False)
    one = ReportInputs(inputs.model, inputs.negatives[:1], {**inputs.summary, "n_genes": 1})
    html = render(one, sections=("headline",))
    assert "1 distinct baseline ·" in html and "· 1 gene ·" in html
    assert "distinct baselines" not in html


def test_cells_repr_counts_in_english():
    import numpy as np

    cells = Cells(np.zeros((2, 1), dtype=np.float32), ["control", "A"], ["g"])
    assert repr(cells) == "Cells(2 cells x 1 gene, 1 condition, 1 control)"
