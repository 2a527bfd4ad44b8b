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


def test_listing_quotes_only_the_labels_that_would_read_as_two():
    from distgen.wording import listing

    assert listing(["a, b", "c"]) == '"a, b", c'
    assert listing(["KLF1+MAP2K6", "ctrl_1", "T cell"]) == "KLF1+MAP2K6, ctrl_1, T cell"  # ordinary labels as they are
    assert listing(["a,b", "", " x", 'say "hi"', "...", "x\ny"]) == r'"a,b", "", " x", "say \"hi\"", "...", "x\ny"'
    assert listing(["a; b", "c"], sep="; ") == '"a; b"; c'


def test_contexts_with_the_separator_read_unambiguously_in_summary_md_and_the_report():
    summary = {"metrics": {}, "pred": "p.h5ad", "real": "r.h5ad", "n_perturbations": 4, "n_genes": 10, "control": "ctrl",
               "contexts": ["a, b", "c"]}
    assert 'Scored per context: "a, b", c.' in markdown(summary)  # before: "a, b, c" (three contexts or two?)
    inputs = tiny_inputs(cells=False)
    html = render(ReportInputs(inputs.model, inputs.references, {**inputs.summary, "contexts": ["a, b", "c"]}), sections=("headline",))
    assert "2 contexts (&quot;a, b&quot;, c)" in html


def test_preflight_lists_atoms_unambiguously():
    from distgen.models.preflight import PreflightReport

    report = PreflightReport(component="onehot", conditions=("x, y", "z"), embeddable=(False, False), missing_atoms=("x, y", "z"))
    assert '(atoms without an embedding: "x, y", z)' in report.message()
    one = PreflightReport(component="onehot", conditions=("x",), embeddable=(False,), missing_atoms=("x",))
    assert one.message().startswith("1 of 1 test perturbation is not embeddable by onehot")


def test_an_adaptive_solver_that_produces_nan_says_after_how_many_evaluations():
    import pytest
    import torch

    from distgen.dynamics.ode_solvers import Dopri5, SolverBudgetError

    solver = Dopri5()
    with pytest.raises(SolverBudgetError, match=r"after \d+ evaluations?[;( ]"):  # a message, not a TypeError
        solver.solve(lambda t, x: torch.full_like(x, math.nan), torch.zeros(2, 3))


def test_first_of_names_the_first_few_and_counts_the_rest():
    from distgen.wording import first_of

    assert first_of("abcde", 3) == "a, b, c (and 2 more)"
    assert first_of(["a", "b", "c"], 3) == "a, b, c" and first_of([], 2) == ""  # none left out: no tail
    assert first_of(["x; y", "z"], 1, "; ", repr) == "'x; y' (and 1 more)"
    assert first_of(["a", "b"], 2, total=7) == "a, b (and 5 more)"  # items hold only the first ones of 7
    assert first_of("abcd", 3, noun="group") == "a, b, c (and 1 more group)"
    assert first_of("abcde", 3, noun="group") == "a, b, c (and 2 more groups)"


def test_a_cut_list_inside_parentheses_counts_the_rest_without_a_second_pair():
    from distgen.wording import first_of

    assert f"({first_of('abcde', 3, enclosed=True)})" == "(a, b, c, and 2 more)"
    assert f"({first_of('abcd', 3, '; ', noun='group', enclosed=True)})" == "(a; b; c; and 1 more group)"
    assert f"({first_of('abcde', 2, ' -> ', enclosed=True)})" == "(a -> b, and 3 more)"
    assert first_of("abc", 3, enclosed=True) == "a, b, c" and first_of("", 3, enclosed=True) == ""  # nothing left out


def test_a_refusal_of_four_label_groups_says_one_more_group_not_groups():
    from distgen.types.layout import form_message, spacing_message

    groups = [[f"g{i}", f"g{i} "] for i in range(4)]
    text = spacing_message(groups, lambda lab: 5, "condition", "prediction")
    assert "(and 1 more group)." in text and "more groups" not in text
    text = form_message(groups, "the file", "conditions", "condition")
    assert "(and 1 more group) (shown" in text and "more groups" not in text
    assert "(and 2 more groups)" in form_message([*groups, ["h", "h "]], "the file", "conditions", "condition")


def test_a_batch_of_five_sets_is_named_with_one_more_set_not_sets():
    import torch

    from distgen.train.trainer import describe_conditions
    from distgen.types import ConditionLabels

    def sets(b):
        return ConditionLabels(torch.full((b, 1), -1), torch.ones(b, 1), torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long))

    assert describe_conditions(sets(5), None) == "control @ 0, control @ 0, control @ 0, control @ 0 (and 1 more set)"
    assert describe_conditions(sets(6), None).endswith("control @ 0 (and 2 more sets)")
    assert describe_conditions(sets(4), None) == "control @ 0, control @ 0, control @ 0, control @ 0"
