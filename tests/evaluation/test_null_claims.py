"""Claims under the null, checked against scipy/statsmodels rather than against distgen: Holm's adjustment, the Student t
interval that goes with the sweep's t-test, the sweep's direction of an unknown metric, the page's intervals of one value."""

import math

import numpy as np
import pytest
from scipy import stats

from distgen.evaluation.intervals import holm, mean_interval, t_interval

from .synth import evaluation_folder


def test_holm_matches_statsmodels_and_leaves_nan_out():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 9, 30):
        p = rng.uniform(0, 0.2, m) ** 2
        p[rng.integers(0, m)] = p.min()  # a tie
        assert holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1].tolist(), rel=1e-12)
    p = [0.01, math.nan, 0.04, 0.03]
    adjusted = holm(p)
    assert math.isnan(adjusted[1])
    assert [adjusted[i] for i in (0, 2, 3)] == pytest.approx(multitest.multipletests([0.01, 0.04, 0.03], method="holm")[1].tolist())
    assert holm([]) == []


def test_t_interval_is_scipys_and_holds_zero_exactly_when_the_t_test_does_not_reject():
    rng = np.random.default_rng(1)
    disagree = 0
    for n in (2, 3, 4, 5, 8):
        for _ in range(60):
            d = rng.normal(0.3, 1.0, n)
            lo, hi = t_interval(d)
            ref = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=stats.sem(d))
            assert (lo, hi) == pytest.approx(ref, rel=1e-10)
            disagree += (stats.ttest_1samp(d, 0.0).pvalue < 0.05) == (lo <= 0.0 <= hi)
            assert mean_interval(d, unit="seed") == (lo, hi)
    assert disagree == 0
    assert all(math.isnan(v) for v in t_interval([1.0]))
    assert t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert t_interval([0.9, 1.0, 0.95], bounds=(-1.0, 1.0))[1] == 1.0  # cut at the metric's range


def test_one_condition_has_no_interval_on_the_page():
    """mean_ci gave (m, m, m) for a single value: a zero-width interval, drawn as if the mean were certain."""
    from distgen.report.stats import mean_ci, paired_interval

    m, lo, hi = mean_ci([0.4])
    assert m == 0.4 and math.isnan(lo) and math.isnan(hi)
    assert mean_ci([0.4, 0.4]) == (0.4, 0.4, 0.4)
    d = [0.2, -0.1, 0.5, 0.3]
    assert paired_interval(d, unit="seed")[1:] == pytest.approx(stats.t.interval(0.95, 3, loc=np.mean(d), scale=stats.sem(d)))


def test_sweep_calls_no_side_better_on_a_metric_of_unknown_direction():
    """metric_direction returned False (lower is better) for a name the registry does not hold: the summary marked it
    (down) and called the variant with the lower mean better."""
    from distgen.pipeline.aggregate import metric_direction, paired_comparison, summary_markdown

    assert metric_direction("not_a_metric") is None and metric_direction("mse") is False
    assert metric_direction("pearson_delta") is True and metric_direction("de_wilcoxon_nsig_counts_pred") is None
    rng = np.random.default_rng(2)
    rows = [{"variant": v, "seed": s, "perturbation": f"P{p}", "not_a_metric": float(rng.normal() - 5 * (v == "b")),
             "mse": float(rng.normal())} for v in ("a", "b") for s in range(3) for p in range(8)]
    c = paired_comparison(rows, "b", "a", "not_a_metric")
    assert c.p_value < 0.05 and c.better == "no direction"
    text, comps = summary_markdown(rows, ["a", "b"], "a", ["not_a_metric", "mse"])
    assert "not_a_metric (no direction)" in text and "mse (down)" in text
    # mse 1 lower for b on every seed (a clear win), pearson_delta noise: the count line says how many wins Holm keeps
    rows = [{"variant": v, "seed": s, "perturbation": f"P{p}", "mse": float(rng.normal(0, 0.1) - (v == "b")),
             "pearson_delta": float(rng.normal())} for v in ("a", "b") for s in range(4) for p in range(8)]
    text, comps = summary_markdown(rows, ["a", "b"], "a", ["mse", "pearson_delta"])
    named = [x for x in comps if x.verdict in ("variant", "reference")]  # a side named by the single-run rule
    kept = sum(x.p_holm < 0.05 for x in named)
    assert comps[0].better == "variant" and comps[0].verdict == "variant" and comps[0].p_holm < 0.05
    assert kept == len(named)  # the verdict reads Holm's p: every named side keeps it
    assert f"A side is named in {len(named)} of the 2 tests (at Holm's p)." in text
    ps = [x.p_value for x in comps]
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    assert [x.p_holm for x in comps] == pytest.approx(multitest.multipletests(ps, method="holm")[1].tolist())


def _folder(path, perts, values):
    return evaluation_folder(path, {p: {m: v[i] for m, v in values.items()} for i, p in enumerate(perts)},
                             {m: True for m in values})


def test_compare_adjusts_its_winners_for_the_number_of_metrics(tmp_path):
    """Nine metrics, each tested at 0.05 on its own: equally good models got a winner on some metric in about a third of
    comparisons, and nothing said so. compare now gives each metric's Holm p (statsmodels' for the same Wilcoxon p-values
    of scipy) and counts the winners that keep p < 0.05 after it."""
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    from distgen.evaluation.compare import compare, markdown

    rng = np.random.default_rng(3)
    n, names = 12, [f"score{i}" for i in range(9)]
    perts = [f"P{i}" for i in range(n)]
    a = {m: rng.normal(size=n) for m in names}
    b = {m: a[m] - (1.0 if m == "score0" else 0.0) + 0.1 * rng.normal(size=n) for m in names}  # score0: A far better
    b["score1"] = a["score1"] - 0.05 + 0.1 * rng.normal(size=n)  # a smaller real edge
    res = compare(_folder(tmp_path / "a", perts, a), _folder(tmp_path / "b", perts, b), n_boot=100)
    ps = [stats.wilcoxon(a[m] - b[m]).pvalue for m in names]
    assert [res["metrics"][m]["wilcoxon_p"] for m in names] == pytest.approx(ps)
    reference = multitest.multipletests(ps, method="holm")[1]
    assert [res["metrics"][m]["holm_p"] for m in names] == pytest.approx(reference.tolist())
    winners = [m for m in names if res["metrics"][m]["better"]]
    assert res["holm_winners"] == [m for m, q in zip(names, reference) if q < 0.05 and m in winners]
    assert "score0" in res["holm_winners"]
    text = markdown(res)
    assert "| Holm p |" in text
    for m in winners:  # each winner's row says whether it keeps its p after the adjustment
        row = next(line for line in text.splitlines() if line.startswith(f"| {m} |"))
        assert row.endswith("; not after Holm) |") == (m not in res["holm_winners"])
    if len(winners) > 1 or res["holm_winners"] != winners:
        assert f"{len(winners)} of the 9 tested metrics name a winner" in text


def test_compare_under_the_null_keeps_the_family_wise_rate_after_holm(tmp_path):
    """Two equally good models, 9 metrics, 10 perturbations: a winner on at least one metric in far more than 5% of
    comparisons; one that keeps p < 0.05 after Holm in about 5% or fewer (a loose bound for 60 repetitions)."""
    from distgen.evaluation.compare import compare

    rng = np.random.default_rng(4)
    names = [f"score{i}" for i in range(9)]
    perts = [f"P{i}" for i in range(10)]
    raw = adjusted = 0
    for r in range(60):
        effect = rng.normal(size=10)
        a, b = ({m: effect + rng.normal(size=10) for m in names} for _ in range(2))
        res = compare(_folder(tmp_path / f"a{r}", perts, a), _folder(tmp_path / f"b{r}", perts, b), n_boot=50, seed=r)
        raw += any(row["better"] for row in res["metrics"].values())
        adjusted += bool(res["holm_winners"])
    assert raw >= 8 and adjusted <= 6


def _summary_rows(tests):
    """summary.json-like metric rows: the model ahead on the mean on each, with the given (verdict, wilcoxon_p, holm_p)."""
    return {name: {"model": 0.6, "baselines": {"control": 0.5}, "strongest_baseline": "control", "higher_is_better": True,
                   "vs_strongest_baseline": {"verdict": v, "wilcoxon_p": p, "holm_p": q}, "ci_n": 12}
            for name, (v, p, q) in tests.items()}


def test_the_page_paints_a_win_only_where_the_paired_verdict_names_one():
    """The summary table painted the model blue ('beats the best baseline') wherever its mean was ahead: under the null
    that is about half the metrics (benchmarks/null_claims.py: 45-53%)."""
    from distgen.report.page import _claims_note, _sign_class, _verdict_class

    rows = _summary_rows({"a": ("inconclusive", 0.3, 0.9), "b": ("model", 0.01, 0.03), "c": ("model", 0.04, 0.08),
                          "d": ("baseline", 0.02, 0.06)})
    assert _verdict_class(rows["a"], True, False) == "num"  # ahead on the mean, no verdict: not a win
    assert _verdict_class(rows["b"], True, False) == "num good"
    assert _verdict_class(rows["d"], False, True) == "num bad"
    assert _verdict_class({"model": 1.0}, True, False) == "num"  # an older summary without verdicts: no colour
    note = _claims_note(rows, list(rows))
    assert "3 of the 4 tested metrics name a winner, 1 after Holm" in note
    for wins, n in ((2, 3), (6, 10), (9, 10), (1, 10), (20, 30), (5, 5)):
        p = stats.binomtest(wins, n, 0.5).pvalue
        assert _sign_class(wins, n) == ("num" if p >= 0.05 else ("num good" if wins * 2 > n else "num bad"))


def test_one_metric_naming_a_winner_reads_singular_on_the_page_and_in_summary_md():
    from distgen.evaluation.report import claims_lines
    from distgen.report.page import _claims_note

    rows = _summary_rows({"a": ("model", 0.01, 0.03), "b": ("inconclusive", 0.4, 0.8), "c": ("negligible", 0.5, 1.0)})
    assert "1 of the 3 tested metrics names a winner, 1 after Holm" in _claims_note(rows, list(rows))
    text = "\n".join(claims_lines(rows, 0.95))
    assert "1 of the 3 metrics tested against their strongest baseline names a winner" in text and "1 keeps its" in text


def test_summary_md_counts_winners_against_holm_and_says_when_intervals_rest_on_few_perturbations():
    from distgen.evaluation.report import claims_lines

    rows = _summary_rows({"a": ("model", 0.01, 0.03), "b": ("model", 0.04, 0.08), "c": ("negligible", 0.5, 1.0)})
    text = "\n".join(claims_lines(rows, 0.95))
    assert "2 of the 3 metrics tested against their strongest baseline name a winner" in text and "1 keeps its" in text
    assert "rest on" not in text
    rows["a"]["ci_n"] = 3
    assert "Some intervals rest on 3 perturbation(s)" in "\n".join(claims_lines(rows, 0.95))
    rows["b"]["model_ci"], rows["b"]["ci_n"] = [1.0, 1.0], 6  # six scores of 1: no spread seen
    assert "Zero-width intervals (b)" in "\n".join(claims_lines(rows, 0.95))
    rows["a"]["vs_strongest_baseline"]["n"] = 4  # 2 / 2**4 = 0.125: no Wilcoxon p below 0.05 exists
    assert "over 4 perturbation(s) cannot reach p < 0.05" in "\n".join(claims_lines(rows, 0.95))
    assert stats.wilcoxon([1.0, 2.0, 3.0, 4.0]).pvalue >= 0.05 and stats.wilcoxon(np.arange(1.0, 7.0)).pvalue < 0.05


def test_score_adjusts_the_verdicts_against_the_baseline_for_the_metrics_tested():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    import torch

    from distgen.evaluation import score
    from distgen.types import Cells

    rng = np.random.default_rng(5)
    genes = [f"g{i}" for i in range(10)]

    def cells(shift):
        x = [rng.normal(1.0, 0.3, (60, 10))] + [rng.normal(1.0 + (p % 3) * 0.5 + shift, 0.3, (20, 10)) for p in range(8)]
        return Cells(torch.tensor(np.concatenate(x), dtype=torch.float32), ["control"] * 60 + [f"P{p}" for p in range(8) for _ in range(20)], genes)

    truth, pred = cells(0.0), cells(0.1)
    ctrl = truth.controls().X
    baseline = Cells(torch.cat([ctrl[:20].repeat(8, 1), ctrl]), [f"P{p}" for p in range(8) for _ in range(20)] + ["control"] * 60, genes)
    rep = score(pred, truth, {"control": baseline}, metrics=["mse", "pearson_delta", "delta_mae"], ceiling_splits=2)
    tested = [r["vs_strongest_baseline"] for r in rep.metrics.values() if r.get("vs_strongest_baseline")]
    assert len(tested) == 3
    ps = [t["wilcoxon_p"] for t in tested]
    assert [t["holm_p"] for t in tested] == pytest.approx(multitest.multipletests(ps, method="holm")[1].tolist())
    assert all(r["ci_n"] == 8 for r in rep.metrics.values())


def test_the_page_says_when_its_intervals_rest_on_few_conditions():
    from distgen.report.page import _few_conditions_note

    assert _few_conditions_note(25) == ""
    assert "rest on 3 conditions" in _few_conditions_note(3) and "no interval" in _few_conditions_note(1)


def test_normalised_interval_is_the_paired_percentile_bootstrap_of_scipy():
    from distgen.evaluation.intervals import normalised_interval

    rng = np.random.default_rng(6)
    b = rng.normal(1.0, 0.2, 30)
    c = b - 0.5 + 0.1 * rng.normal(size=30)  # lower is better: the ceiling well below the baseline
    m = b - 0.3 + 0.1 * rng.normal(size=30)
    res = normalised_interval(m, b, c, n_boot=20000, seed=1)
    ref = stats.bootstrap((m, b, c), lambda x, y, z: (x - y).mean() / (z - y).mean(), paired=True, vectorized=False,
                          method="percentile", n_resamples=5000, random_state=1).confidence_interval
    assert res["stable"] and res["n"] == 30
    assert res["ci"] == pytest.approx([ref.low, ref.high], abs=0.02)
    assert res["ci"][0] < (m - b).mean() / (c - b).mean() < res["ci"][1]


def test_a_normalised_score_whose_ceiling_is_within_noise_of_the_baseline_is_marked_without_a_scale():
    """The baseline about as good as the replicate: (ceiling - baseline) is noise and the score was printed as a number
    like any other (here about 10). It now carries normalised_caution, summary.md marks it and the headline says it."""
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.report import markdown
    from distgen.evaluation.suite import MetricTable
    from distgen.evaluation.uncertainty import calibrate
    from distgen.pipeline.experiment import headline

    rng = np.random.default_rng(7)
    perts = tuple(f"P{i}" for i in range(12))
    base = rng.normal(1.0, 0.3, 12)
    tables = {k: MetricTable(perts, {"mse": list(v)}) for k, v in
              (("model", base - 0.1 + 0.05 * rng.normal(size=12)), ("control", base),
               ("c0", base + 0.05 * rng.normal(size=12)), ("c1", base + 0.05 * rng.normal(size=12)))}
    ceilings = [tables["c0"], tables["c1"]]
    from distgen.evaluation.uncertainty import mean_table

    rows = summarise(tables["model"], {"control": tables["control"]}, mean_table(ceilings))
    calibrate(rows, tables["model"], {"control": tables["control"]}, ceilings)
    row = rows["mse"]
    gap = np.mean([(a + b) / 2 for a, b in zip(tables["c0"].values["mse"], tables["c1"].values["mse"])]) - base.mean()
    assert math.isfinite(row["normalised"]) and abs(row["normalised"]) > 2  # a number far outside [0, 1]...
    lo, hi = bootstrap = stats.t.interval(0.95, 11, loc=gap, scale=stats.sem(
        (np.array(tables["c0"].values["mse"]) + np.array(tables["c1"].values["mse"])) / 2 - base))
    assert lo < 0 < hi and bootstrap  # ...whose scale a t interval does not tell apart from 0
    assert "not told apart from 0" in row["normalised_caution"] and row["normalised_ci"] == [None, None]  # no interval (None, as summary.json reads it back)
    summary = {"pred": "p", "real": "r", "n_perturbations": 12, "n_genes": 5, "control": "ctrl", "metrics": rows, "notes": []}
    assert "## Normalised scores without a scale" in markdown(summary)
    assert "(no scale)" in headline(summary, ("mse",))


def test_the_page_shows_the_normalised_interval_and_marks_a_score_without_a_scale():
    import re

    from distgen.report import ReportInputs
    from distgen.report.page import render

    rows = {"mse": {"model": 0.5, "baselines": {"control": 1.0}, "ceiling": 0.4, "strongest_baseline": "control",
                    "higher_is_better": False, "normalised": 0.833, "normalised_note": "", "normalised_ci": [0.7, 0.95]},
            "delta_mae": {"model": 0.5, "baselines": {"control": 1.0}, "ceiling": 0.99, "strongest_baseline": "control",
                          "higher_is_better": False, "normalised": 50.0, "normalised_note": "", "normalised_ci": [math.nan, math.nan],
                          "normalised_caution": "the ceiling - control gap ... not told apart from 0"}}
    from distgen.evaluation.suite import MetricTable

    perts = ("P0", "P1", "P2")
    table = lambda v: MetricTable(perts, {"mse": [v] * 3, "delta_mae": [v] * 3})  # noqa: E731
    summary = {"n_genes": 5, "metrics": rows, "notes": []}
    html = render(ReportInputs.from_evaluation(table(0.5), {"control": table(1.0)}, table(0.4), summary), sections=("headline",))
    cells = {m: re.findall(r"<td[^>]*>(.*?)</td>", row) for m, row in
             re.findall(r"<tr><td>(mse|delta_mae)</td>(.*?)</tr>", html, flags=re.S)}
    assert "0.833 [0.7, 0.95]" in cells["mse"]
    assert "50 (no scale)" in cells["delta_mae"] and any("not told apart from 0" in c for c in cells["delta_mae"])


def test_sweep_calls_a_tie_only_below_the_metrics_numerical_tolerance():
    """np.allclose(diffs, 0) (absolute 1e-8) called a metric of size 1e-8 tied when one variant was 10% lower on every seed."""
    from distgen.pipeline.aggregate import paired_comparison

    rng = np.random.default_rng(8)
    rows = [{"variant": v, "seed": s, "perturbation": f"P{p}", "mse": float(1e-8 * (1 + 0.01 * rng.normal() - 0.1 * (v == "b")))}
            for v in ("a", "b") for s in range(3) for p in range(6)]
    c = paired_comparison(rows, "b", "a", "mse")
    sm = {v: [np.mean([r["mse"] for r in rows if r["variant"] == v and r["seed"] == s]) for s in range(3)] for v in ("a", "b")}
    assert c.better == "variant" and c.p_value == pytest.approx(stats.ttest_rel(sm["b"], sm["a"]).pvalue)
    same = [{**r, "mse": 1.0 + 1e-9 * (r["variant"] == "b")} for r in rows]  # 1e-9 of 1: float rounding, a tie
    assert paired_comparison(same, "b", "a", "mse").better == "tie"


def test_compare_with_one_metric_naming_a_winner_reads_singular(tmp_path):
    """compare's Holm note read "1 of the 3 tested metrics name a winner"."""
    from distgen.evaluation.compare import compare, markdown

    rng = np.random.default_rng(0)
    n, names = 12, ["score0", "score1", "score2"]
    perts = [f"P{i}" for i in range(n)]
    a = {m: rng.normal(size=n) for m in names}
    b = {m: a[m] - (1.0 if m == "score0" else 0.0) + 0.5 * rng.normal(size=n) for m in names}
    res = compare(_folder(tmp_path / "a", perts, a), _folder(tmp_path / "b", perts, b), n_boot=100)
    assert [m for m in names if res["metrics"][m]["better"]] == ["score0"]
    text = markdown(res)
    assert "1 of the 3 tested metrics names a winner" in text, text
    assert "metrics name a winner" not in text
