"""Every number of the page's metric table is the summary's, and a score that is not computed from the row's means says so."""

import copy
import math
import re

from distgen.evaluation import run_metrics
from distgen.evaluation.calibration import ceiling_data, summarise
from distgen.evaluation.report import markdown
from distgen.report import ReportInputs, render

from .tiny import METRICS, control_prediction, tiny_data


def _table_rows(html: str) -> dict[str, list[str]]:
    """The "All metrics" table: ``{metric: [cell texts]}`` (cells unescaped, tags dropped)."""
    from html import unescape

    part = html.split("<h3>All metrics</h3>", 1)[1].split("</table>", 1)[0]
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", part)[1:]:
        cells = [unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        rows[cells[0]] = cells
    return rows


def _evaluation():
    data = tiny_data(tiny_pert=False)
    return data, run_metrics(data, METRICS), run_metrics(control_prediction(data), METRICS), run_metrics(ceiling_data(data), METRICS)


def test_a_normalised_score_over_fewer_conditions_is_marked_with_the_means_it_used():
    """A condition without a ceiling (too few cells for a half-split) stays in the model's mean but not in the score."""
    data, model, ctrl, ceil = _evaluation()
    ceil = copy.deepcopy(ceil)
    ceil.values["mse"][0] = math.nan
    ceil.reasons["mse"]["P0"] = "3 real cell(s): a half-split leaves 1 per half"
    summary = {"n_genes": 24, "metrics": summarise(model, {"control": ctrl}, ceil), "notes": []}
    row = summary["metrics"]["mse"]
    assert row["normalised_rows"]["n"] == len(data.perts) - 1
    shown = (row["model"] - row["baselines"]["control"]) / (row["ceiling"] - row["baselines"]["control"])
    assert not math.isclose(shown, row["normalised"], rel_tol=1e-6)  # not the formula of the row's own means
    html = render(ReportInputs.from_evaluation(model, {"control": ctrl}, ceil, summary), sections=("headline",))
    rows = _table_rows(html)
    assert rows["mse"][-2] == f"{row['normalised']:.3g} †"
    used = row["normalised_rows"]
    assert f"mse: over {used['n']} of {len(data.perts)} conditions (model {used['model']:.4g}, control {used['baseline']:.4g}, " \
           f"ceiling {used['ceiling']:.4g}); left out: P0 (" in html
    # every other score is the formula of its row's numbers, unmarked
    for name in ("pearson_delta", "edistance"):
        r = summary["metrics"][name]
        assert "normalised_rows" not in r and "†" not in rows[name][-2]
        assert math.isclose((r["model"] - r["baselines"]["control"]) / (r["ceiling"] - r["baselines"]["control"]), r["normalised"])


def test_a_baseline_undefined_everywhere_says_why_on_the_page_and_in_summary_md():
    """The control baseline predicts no change: a correlation of its zero delta is undefined, and the reader is told so."""
    data, model, ctrl, ceil = _evaluation()
    flat = copy.deepcopy(ctrl)
    flat.values["pearson_delta"] = [math.nan] * len(data.perts)
    flat.reasons["pearson_delta"] = {p: "a delta is constant over genes (or no cells)" for p in data.perts}
    metrics = summarise(model, {"control": flat, "other": ctrl}, ceil)
    assert metrics["pearson_delta"]["baseline_notes"] == {"control": "a delta is constant over genes (or no cells)"}
    assert "baseline_notes" not in metrics["mse"]
    summary = {"pred": "p", "real": "r", "n_perturbations": len(data.perts), "n_genes": 24, "control": "ctrl",
               "metrics": metrics, "notes": []}
    html = render(ReportInputs.from_evaluation(model, {"control": flat, "other": ctrl}, ceil, summary, aliases={"control": [], "other": []}),
                  sections=("headline",))
    assert _table_rows(html)["pearson_delta"][3] == "nan"
    assert "pearson_delta, control: undefined on every condition (a delta is constant over genes (or no cells))" in html
    md = markdown(summary)
    assert "## Undefined baseline scores" in md and "- pearson_delta, control: a delta is constant over genes (or no cells)" in md


def test_a_diagnostic_metric_has_no_better_side_anywhere():
    """A diagnostic (a count of significant genes) has no better direction: summary.md, the page and a sweep must not invent one."""
    from distgen.pipeline.aggregate import paired_comparison
    from distgen.report.page import per_condition_metrics
    from distgen.report.style import metric_info

    data = tiny_data(tiny_pert=False)
    names = ["mse", "de_wilcoxon_nsig_counts_pred"]
    model, ctrl, ceil = (run_metrics(d, names) for d in (data, control_prediction(data), ceiling_data(data)))
    metrics = summarise(model, {"control": ctrl}, ceil)
    summary = {"pred": "p", "real": "r", "n_perturbations": len(data.perts), "n_genes": 24, "control": "ctrl", "metrics": metrics, "notes": []}
    md_row = next(line for line in markdown(summary).splitlines() if line.startswith("| de_wilcoxon_nsig_counts_pred |"))
    assert md_row.split(" | ")[1] == "none (diagnostic)"  # it said "higher" next to "it has no better direction"
    assert next(line for line in markdown(summary).splitlines() if line.startswith("| mse |")).split(" | ")[1] == "lower"
    info = metric_info("de_wilcoxon_nsig_counts_pred")
    assert info.higher_is_better is None and not info.better(1.0, 2.0) and not info.better(2.0, 1.0)
    inp = ReportInputs.from_evaluation(model, {"control": ctrl}, ceil, summary)
    assert per_condition_metrics(inp) == ["mse"]
    cls = re.search(r"<tr><td>de_wilcoxon_nsig_counts_pred</td><td>direction unknown</td><td class=\"([^\"]*)\"", render(inp, sections=("headline",)))
    assert cls and cls.group(1) == "num"
    rows = [{"variant": v, "seed": s, "perturbation": f"P{p}", "de_wilcoxon_nsig_counts_pred": float(p + 3 * (v == "b"))}
            for v in ("a", "b") for s in range(2) for p in range(6)]
    c = paired_comparison(rows, "b", "a", "de_wilcoxon_nsig_counts_pred")
    assert c.mean_diff == 3.0 and c.better == "no direction"
    assert paired_comparison([{**r, "mse": r["de_wilcoxon_nsig_counts_pred"]} for r in rows], "b", "a", "mse").better == "reference"


def test_the_page_draws_the_model_interval_summary_json_gives():
    """The headline figure's interval of a metric (``report.stats.mean_ci``) and ``summary.json``'s ``model_ci`` are one
    interval: the page drew 2,000 bootstrap draws where summary.json draws 1,000, so the two disagreed in the last digits."""
    from distgen.evaluation.uncertainty import calibrate, metric_bounds
    from distgen.report.stats import mean_ci

    _, model, base, ceiling = _evaluation()
    rows = summarise(model, {"control": base}, ceiling)
    calibrate(rows, model, {"control": base}, [ceiling])
    checked = 0
    for name, row in rows.items():
        values = [v for v in model.values[name] if math.isfinite(v)]
        if len(values) > 3 and len(set(values)) > 1:  # the bootstrap (at 3 or fewer the page draws a t interval)
            _, lo, hi = mean_ci(model.values[name], bounds=metric_bounds(name))
            assert [lo, hi] == row["model_ci"], name
            checked += 1
    assert checked
