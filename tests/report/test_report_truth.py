"""Report truth round: what the page and summary.md state, recomputed independently of the code that writes them."""

import math

from distgen.evaluation.calibration import normalised, summarise
from distgen.evaluation.intervals import normalised_interval
from distgen.evaluation.report import markdown
from distgen.evaluation.suite import MetricTable
from distgen.evaluation.uncertainty import calibrate
from distgen.report import ReportInputs, render

PERTS = tuple(f"P{i}" for i in range(12))
MSE = [0.5 + 0.04 * i for i in range(12)]


def _table(values: list[float]) -> MetricTable:
    return MetricTable(PERTS, {"mse": list(values)}, {"mse": {}})


def test_a_model_equal_to_the_best_baseline_scores_plus_zero_not_minus_zero():
    """mse is lower-is-better, so the ceiling - baseline gap is negative and 0 / negative is -0.0: the page and summary.md
    printed "-0 [-0, 0]", a sign that reads as "slightly worse than the baseline" for a model that equals it."""
    assert math.copysign(1.0, normalised(0.7, 0.7, 0.2)[0]) == 1.0
    ci = normalised_interval(MSE, MSE, [v * 0.2 for v in MSE])["ci"]
    assert all(math.copysign(1.0, v) == 1.0 for v in ci if v == 0.0)
    model, ceiling = _table(MSE), _table([v * 0.2 for v in MSE])
    bases = {"control": _table(MSE), "worse": _table([2 * v for v in MSE])}
    summary = {"pred": "p", "real": "r", "n_perturbations": 12, "n_genes": 10, "control": "ctrl", "notes": []}
    summary["metrics"] = summarise(model, bases, ceiling)
    calibrate(summary["metrics"], model, bases, [ceiling])
    row = next(line for line in markdown(summary).splitlines() if line.startswith("| mse | lower"))
    assert "-0" not in row, row
    html = render(ReportInputs.from_evaluation(model, bases, ceiling, summary), sections=("headline",))
    table = html.split("<h3>All metrics</h3>", 1)[1].split("</table>", 1)[0]
    assert ">-0" not in table and "[-0" not in table


def _headline_lead(model: MetricTable, bases: dict[str, MetricTable], ceiling: MetricTable) -> str:
    summary = {"pred": "p", "real": "r", "n_perturbations": len(model.perts), "n_genes": 10, "control": "ctrl", "notes": []}
    summary["metrics"] = summarise(model, bases, ceiling)
    calibrate(summary["metrics"], model, bases, [ceiling])
    html = render(ReportInputs.from_evaluation(model, bases, ceiling, summary), sections=("headline",))
    return html.split('<p class="lead">', 1)[1].split("</p>", 1)[0], markdown(summary)


def test_the_page_warns_of_intervals_over_few_values_where_nan_leaves_few_of_many_conditions():
    """12 conditions, the model's mse defined on 6: summary.md said "Some intervals rest on 6 perturbation(s)", while the
    page's lead counted the 12 rows and said nothing (its note is for under 10)."""
    values = [math.nan] * 6 + MSE[6:]
    lead, md_text = _headline_lead(_table(values), {"control": _table([2 * v for v in MSE])}, _table([v * 0.2 for v in MSE]))
    assert "rest on 6 perturbation(s)" in md_text  # what summary.md says, independently of the page
    assert "6 conditions" in lead, lead
    # one metric defined on a single condition of 12: no interval, said on the page as in summary.md
    one = [math.nan] * 11 + MSE[11:]
    lead, md_text = _headline_lead(_table(one), {"control": _table([2 * v for v in MSE])}, _table([v * 0.2 for v in MSE]))
    assert "defined on one perturbation only has no interval" in md_text
    assert "one condition only" in lead, lead
    # every metric defined on all 12: nothing said
    lead, _ = _headline_lead(_table(MSE), {"control": _table([2 * v for v in MSE])}, _table([v * 0.2 for v in MSE]))
    assert "rest on" not in lead and "no interval" not in lead
