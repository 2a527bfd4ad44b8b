"""Difficulty strata: response strength, baseline saturation, quantile tables and the near-solved fraction."""

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.io import eval_data
from distgen.evaluation.strata import by_quantile, response_strength, saturation, stratify
from distgen.types import Cells


def test_saturation_and_near_solved_fraction_on_hand_values():
    # error metric (lower is better): control 10, ceiling 2; baseline 10 -> 0, 6 -> 0.5, 2.4 -> 0.95, 2 -> 1
    sat = saturation([10.0, 6.0, 2.4, 2.0, 1.0], [10.0, 10.0, 10.0, 10.0, 1.0], [2.0, 2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(sat[:4], [0.0, 0.5, 0.95, 1.0])
    assert math.isnan(sat[4])  # ceiling == control
    # agreement metric (higher is better): control 0, ceiling 0.8, baseline 0.2 -> 0.25
    assert saturation([0.2], [0.0], [0.8]) == [0.25]
    out = stratify([1.0] * 5, [10.0, 6.0, 2.4, 2.0, 1.0], [10.0] * 4 + [1.0], [2.0] * 4 + [1.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert out["near_solved_fraction"] == 2 / 4 and out["n_saturation"] == 4


def test_by_quantile_bins_and_means():
    key = list(range(9))
    model = [float(k) for k in key]
    base = [10.0 * k for k in key]
    rows = by_quantile(key, model, base, n_bins=3)
    assert [r["n"] for r in rows] == [3, 3, 3]
    assert [r["model"] for r in rows] == [1.0, 4.0, 7.0]
    assert [r["baseline"] for r in rows] == [10.0, 40.0, 70.0]
    assert by_quantile([math.nan, math.nan], [1.0, 2.0], [1.0, 2.0]) == []


def _cells(effects, seed=0, n=10):
    rng = np.random.default_rng(seed)
    rows, conds = [rng.normal(1.0, 0.2, (40, 4))], ["control"] * 40
    for p, e in enumerate(effects):
        rows.append(rng.normal(1.0 + np.asarray(e), 0.2, (n, 4)))
        conds += [f"P{p}"] * n
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, [f"g{i}" for i in range(4)])


def test_response_strength_is_distance_of_real_mean_from_control():
    truth = _cells([[0, 0, 0, 0], [3, 0, 0, 0], [0, 4, 3, 0]])
    data = eval_data(truth, truth)
    X = truth.X.double().numpy()
    ctrl = X[truth.is_control].mean(0)
    for p, name in enumerate(data.perts):
        expected = np.linalg.norm(X[truth.conditions == name].mean(0) - ctrl)
        assert abs(response_strength(data)[p] - expected) < 1e-6


def test_score_summary_has_strata():
    effects = [[k * 0.5, 0, -k * 0.3, 0] for k in range(9)]
    s = score(_cells(effects, 1), _cells(effects, 2), {"control": _cells([[0] * 4] * 9, 3), "shift": _cells([[1, 0, 0, 0]] * 9, 4)},
              metrics=["mse"], ceiling_splits=1).summary
    st = s["metrics"]["mse"]["strata"]
    assert st["baseline"] == "shift" and sum(r["n"] for r in st["by_response"]) == 9
    assert 0.0 <= st["near_solved_fraction"] <= 1.0


def test_no_saturation_where_the_ceiling_is_not_better_than_the_control_baseline():
    # an error metric on a weak response: the noisy half-split replicate (1.5) scores worse than predicting no change
    # (1.0), and a baseline worse than no change (1.45). (b - c) / (r - c) = 0.45 / 0.5 = 0.9 called that baseline
    # "near-solved"; there is no range from no change up to the replicate to place it in, so no saturation.
    assert saturation([1.45], [1.0], [1.5], higher_is_better=False)[0] != saturation([1.45], [1.0], [1.5])[0]
    assert math.isnan(saturation([1.45], [1.0], [1.5], higher_is_better=False)[0])
    assert math.isnan(saturation([0.1], [0.3], [0.2], higher_is_better=True)[0])  # the same for an agreement metric
    assert saturation([6.0], [10.0], [2.0], higher_is_better=False) == [0.5]  # a ceiling better than control: unchanged
    out = stratify([1.0] * 3, [1.45, 6.0, 2.2], [1.0, 10.0, 10.0], [1.5, 2.0, 2.0], [1.0, 2.0, 3.0], higher_is_better=False)
    assert out["n_saturation"] == 2 and out["near_solved_fraction"] == 0.5
    assert out["note"].startswith("1 perturbation(s) whose ceiling is not better than the control baseline")


def test_score_leaves_weak_responses_out_of_the_near_solved_fraction():
    # 9 perturbations of no effect: the half-split replicate (5 cells a half) is worse than the control baseline on mse
    # for every one; a baseline barely off control was "near-solved" on most of them
    effects = [[0.0] * 4] * 9
    s = score(_cells(effects, 1), _cells(effects, 2), {"control": _cells(effects, 3), "shift": _cells([[0.02, 0, 0, 0]] * 9, 4)},
              metrics=["mse"], ceiling_splits=1).summary
    st = s["metrics"]["mse"]["strata"]
    assert st["n_saturation"] < 9 and "ceiling is not better than the control baseline" in st["note"]


def test_the_page_and_summary_put_each_condition_in_the_same_difficulty_stratum():
    """8 conditions: the page cut them into thirds by rank (3/3/2) while summary.md's strata cut at quantile edges (3/2/3),
    so the page's middle third held a condition summary.md put in the strongest (docs/reliability.md, "Wording round").
    Both now use ``strata.quantile_bins``: the same members, and the page's counts are summary.md's ``n``."""
    import re

    from distgen.evaluation.strata import quantile_bins
    from distgen.evaluation.suite import MetricTable
    from distgen.report.inputs import Reference, ReportInputs
    from distgen.report.page import _strata_table
    from distgen.report.stats import strata

    perts = tuple(f"P{i}" for i in range(8))
    strength = {p: float(i) for i, p in enumerate(perts)}
    model, base = [0.5] * 8, [0.4] * 8
    rows = by_quantile(list(strength.values()), model, base, n_bins=3)
    assert [r["n"] for r in rows] == [3, 2, 3]  # P0-P2 | P3-P4 | P5-P7: the quantile edges 2.33 and 4.67
    _, bins = quantile_bins(list(strength.values()), 3)
    assert strata(strength, 3) == {p: int(b) for p, b in zip(perts, bins)} == {**{p: 0 for p in perts[:3]}, "P3": 1, "P4": 1,
                                                                                 **{p: 2 for p in perts[5:]}}
    tables = [MetricTable(perts=perts, values={"mse": v}) for v in (model, base)]
    summary = {"metrics": {"mse": {"strongest_baseline": "control", "higher_is_better": False}}}
    html = _strata_table(ReportInputs(tables[0], [Reference("control", tables[1], "negative")], summary), ["mse"], strength)
    assert [int(n) for n in re.findall(r'third</td><td class="num">(\d+)</td>', html)] == [r["n"] for r in rows]


def _page_counts(strength, model, base):
    import re

    from distgen.evaluation.suite import MetricTable
    from distgen.report.inputs import Reference, ReportInputs
    from distgen.report.page import _strata_table

    perts = tuple(strength)
    tables = [MetricTable(perts=perts, values={"mse": v}) for v in (model, base)]
    summary = {"metrics": {"mse": {"strongest_baseline": "control", "higher_is_better": False}}}
    html = _strata_table(ReportInputs(tables[0], [Reference("control", tables[1], "negative")], summary), ["mse"], strength)
    return [int(n) for n in re.findall(r'</td><td class="num">(\d+)</td>', html)], html


def test_equal_strengths_at_a_quantile_edge_leave_no_empty_stratum_unsaid():
    """6 of 8 conditions with one strength: both tertile edges fall on it. Before, every condition went to the strongest
    third and the page showed "0 conditions" in the weakest and middle thirds (summary.md n=0) without a word; the six
    equal (weakest) strengths were called the strongest. Now equal strengths at an edge form one stratum of their own,
    empty strata are not shown, and the page and summary.md say why."""
    from distgen.evaluation.strata import quantile_bins

    key = [1.0] * 6 + [2.0, 3.0]
    _, bins = quantile_bins(key, 3)
    assert list(bins[:6]) == [0] * 6 and bins[6] == bins[7] == 2  # the tied weakest in the weakest stratum, not the strongest
    rows = by_quantile(key, [0.5] * 8, [0.4] * 8, n_bins=3)
    assert [(r["stratum"], r["n"]) for r in rows] == [(1, 6), (3, 2)]  # no n=0 row
    st = stratify([0.5] * 8, [0.4] * 8, None, None, key)
    assert "6 perturbations share the strength 1" in st["note"] and "2 of 3 strata" in st["note"]
    counts, html = _page_counts({f"P{i}": v for i, v in enumerate(key)}, [0.5] * 8, [0.4] * 8)
    assert counts == [6, 2] and 0 not in counts
    assert "6 conditions share the strength 1" in html and "2 of 3 strata" in html
    # the markdown shows the note under the table
    from distgen.evaluation.report import strata_lines

    md = "\n".join(strata_lines({"mse": {"strata": {**st, "baseline": "control"}}}))
    assert "6 perturbations share the strength 1" in md and "(n=6, stratum 1 of 3)" in md


def test_distinct_strengths_keep_three_strata_and_no_note():
    key = [float(i) for i in range(8)]
    st = stratify([0.5] * 8, [0.4] * 8, None, None, key)
    assert [r["n"] for r in st["by_response"]] == [3, 2, 3] and "share" not in st.get("note", "")
    counts, html = _page_counts({f"P{i}": v for i, v in enumerate(key)}, [0.5] * 8, [0.4] * 8)
    assert counts == [3, 2, 3] and "share the strength" not in html
    # ties inside a stratum (not at an edge) change nothing
    key2 = [1.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 8.0]
    assert [r["n"] for r in by_quantile(key2, [0.5] * 8, [0.4] * 8)] == [3, 2, 3]


def test_equal_strongest_strengths_stay_in_the_strongest_stratum():
    """6 of 8 conditions share the largest strength: the top two tertile edges fall on it. fc7dbfe put them in the strongest
    third (rightly: nothing is above them); the rule "the lowest of the edges' strata" called them the middle third and
    left the strongest empty. A tied value on the top edge stays in the strongest stratum."""
    from distgen.evaluation.strata import quantile_bins

    key = [1.0, 2.0] + [3.0] * 6
    _, bins = quantile_bins(key, 3)
    assert list(bins) == [0, 0] + [2] * 6
    assert [(r["stratum"], r["n"]) for r in by_quantile(key, [0.5] * 8, [0.4] * 8, n_bins=3)] == [(1, 2), (3, 6)]
    counts, html = _page_counts({f"P{i}": v for i, v in enumerate(key)}, [0.5] * 8, [0.4] * 8)
    assert counts == [2, 6] and "strongest third" in html and "middle third" not in html


@pytest.mark.parametrize("key", [[0.3], [0.3, 0.7]])
def test_fewer_conditions_than_strata_are_not_said_to_share_a_strength(key):
    """One or two conditions of distinct strengths leave a stratum empty without any tie: the note said "1 perturbations
    share the strength 0.3, and equal strengths stay in one stratum"; it now says there are fewer conditions than strata."""
    st = stratify([0.5] * len(key), [0.4] * len(key), None, None, key)
    assert "share" not in st["note"] and "1 perturbations" not in st["note"]
    assert f"{len(key)} perturbation" in st["note"] and "3 strata" in st["note"]
    assert sum(r["n"] for r in st["by_response"]) == len(key)
