"""What the verdicts against baselines and between models may claim, simulated with sides of known equality.

* The strongest baseline is picked by its mean; where a second baseline is as good, the pick is noise and the headline,
  the page and summary.md say so (``uncertainty.runner_up``).
* Metrics that are NaN on some perturbations (too few cells, a degenerate denominator) under the null: the paired test,
  the verdict, the interval and the page's win counts keep their stated level.
* ``negligible`` (no practical difference) is said only where the interval shows it (within +-margin), not where the
  estimate alone is within the margin.

``python -m tests.evaluation.test_verdict_honesty [--reps N]`` prints the rates with more repetitions (docs/metrics.md,
"Claims under the null").
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from distgen.evaluation.suite import MetricTable

from .synth import evaluation_folder

#: NaN mechanisms, each the same for both sides (so the two stay equally good): a value NaN on its own (a side with too
#: few cells), a perturbation NaN on both sides (no real DE genes: degenerate for everyone), and a value NaN where it
#: is small (a denominator near 0: missing not at random, but alike on both sides).
MECHANISMS = ("independent", "shared", "small values")


def _with_nans(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, how: str, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    a, b = a.copy(), b.copy()
    if how == "independent":
        a[rng.random(a.shape) < rate] = np.nan
        b[rng.random(b.shape) < rate] = np.nan
    elif how == "shared":
        both = rng.random(a.shape) < rate
        a[both], b[both] = np.nan, np.nan
    else:
        cut = np.quantile(np.concatenate([a, b]), rate)
        a[a < cut], b[b < cut] = np.nan, np.nan
    return a, b


def compare_rates(reps: int, n: int, how: str, seed: int = 0, n_metrics: int = 3, n_boot: int = 200) -> dict[str, float]:
    """``distgen compare`` of two equally good models with NaN metrics: the rate of a named winner per metric and of a
    95% interval of the mean difference that leaves out 0 (the truth)."""
    import tempfile
    from pathlib import Path

    from distgen.evaluation.compare import compare

    rng = np.random.default_rng(seed)
    names = [f"score{i}" for i in range(n_metrics)]
    perts = [f"P{i}" for i in range(n)]
    wins = misses = tested = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(reps):
            a, b = {}, {}
            for m in names:
                effect = rng.normal(size=n)
                a[m], b[m] = _with_nans(rng, effect + rng.normal(size=n), effect + rng.normal(size=n), how)
            fa = evaluation_folder(Path(tmp) / f"a{r}", {p: {m: a[m][i] for m in names} for i, p in enumerate(perts)},
                                   {m: True for m in names})
            fb = evaluation_folder(Path(tmp) / f"b{r}", {p: {m: b[m][i] for m in names} for i, p in enumerate(perts)},
                                   {m: True for m in names})
            res = compare(fa, fb, seed=r, n_boot=n_boot)
            for row in res["metrics"].values():
                wins += bool(row["better"])
                lo, hi = row["ci"]
                if math.isfinite(lo) and math.isfinite(hi):
                    tested += 1
                    misses += not (lo <= 0.0 <= hi)
    return {"winner": wins / (reps * n_metrics), "ci_misses_0": misses / max(tested, 1)}


def baseline_rates(reps: int, n: int, how: str, seed: int = 0) -> dict[str, float]:
    """``score``'s verdict against the strongest baseline (``summarise`` + ``calibrate``: the pick by mean, the paired
    test and verdict) for a model as good as both of its two baselines, on ``mse`` values NaN by ``how``: the rate of
    'model' and of 'baseline' verdicts."""
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.uncertainty import calibrate

    rng = np.random.default_rng(seed)
    perts = tuple(f"P{i}" for i in range(n))
    said = {"model": 0, "baseline": 0}
    for r in range(reps):
        effect = rng.normal(size=n)
        draw = [np.exp(0.3 * (effect + rng.normal(size=n))) for _ in range(3)]  # an error metric: positive values
        model, base1 = _with_nans(rng, draw[0], draw[1], how)
        _, base2 = _with_nans(rng, draw[0], draw[2], how)
        tables = [MetricTable(perts=perts, values={"mse": v.tolist()}) for v in (model, base1, base2)]
        baselines = {"control": tables[1], "additive": tables[2]}
        rows = summarise(tables[0], baselines, None)
        calibrate(rows, tables[0], baselines, None, seed=r, n_boot=200)
        verdict = (rows["mse"].get("vs_strongest_baseline") or {}).get("verdict")
        if verdict in said:
            said[verdict] += 1
    return {k: v / reps for k, v in said.items()}


BASELINE_NAMES = ("control", "additive", "linear", "mean_perturbation")


def several_baselines_rates(reps: int, n: int, k: int, gain: float = 0.0, seed: int = 0, n_boot: int = 200,
                            worse: float = 0.0) -> dict[str, float]:
    """``mse``'s verdict against ``k`` baselines as good as each other (``summarise`` + ``calibrate``: the strongest picked
    by mean, the verdict at the claim's p), the model ``gain`` log-units better than all of them (0: as good), and every
    baseline but the first ``worse`` log-units worse than it (``gain=0, worse>0``: the model as good as one baseline and
    better than the rest, where the claim 'better than every baseline' is false and easiest to make). Rates of
    'model' and 'baseline' verdicts now (``claim_p``: every baseline for the model, Holm over the baselines for the
    strongest) and before (the strongest's own Wilcoxon p, the same draws, margins and intervals)."""
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.uncertainty import calibrate, verdict

    rng = np.random.default_rng(seed)
    perts = tuple(f"P{i}" for i in range(n))
    said = dict.fromkeys(("model", "baseline", "model before", "baseline before"), 0)
    for r in range(reps):
        effect = rng.normal(size=n)
        draws = [np.exp(0.3 * (effect + rng.normal(size=n))) for _ in range(k + 1)]  # an error metric: positive values
        draws[0] = draws[0] * math.exp(-gain)
        draws[2:] = [v * math.exp(worse) for v in draws[2:]]
        tables = [MetricTable(perts=perts, values={"mse": v.tolist()}) for v in draws]
        baselines = dict(zip(BASELINE_NAMES, tables[1:]))
        rows = summarise(tables[0], baselines, None)
        calibrate(rows, tables[0], baselines, None, seed=r, n_boot=n_boot)
        test = rows["mse"]["vs_strongest_baseline"]
        if test["verdict"] in ("model", "baseline"):
            said[test["verdict"]] += 1
        before = {"a": "model", "b": "baseline"}.get(verdict(test, False, test["margin"], 0.05)[0])
        if before:
            said[f"{before} before"] += 1
    return {key: v / reps for key, v in said.items()}


def test_naming_a_side_against_several_equally_good_baselines_keeps_its_level():
    """Three baselines as good as the model, 20 perturbations: a side named (model or baseline) in at most about 5% of
    evaluations (binomial sd 1.5% at 200); before, the strongest's own p named it more often, the baseline above all
    (its pick by mean favours it)."""
    r = several_baselines_rates(200, 20, 3, seed=21)
    assert r["model"] + r["baseline"] <= 0.085, r
    assert r["baseline before"] > r["baseline"], r  # the claim p changes the verdict where the selection inflated it


def test_a_model_better_than_every_baseline_is_still_found():
    """The model 0.5 log-units better than each of three baselines, 20 perturbations: named better in most evaluations,
    nearly as often as by the strongest's own p (the largest per-baseline p is mostly the strongest's; the cost is larger
    at smaller gains: docs/metrics.md, "Claims against several baselines")."""
    r = several_baselines_rates(60, 20, 3, gain=0.5, seed=22)
    assert r["model"] >= 0.75, r
    assert r["model"] >= r["model before"] - 0.1, r


def _t(d: float, p: float, n: int = 20, ranks: int | None = None) -> dict:
    return {"mean_difference": d, "wilcoxon_p": p, "n": n, "rank_direction": int(np.sign(d)) if ranks is None else ranks}


def test_the_claim_against_several_baselines_is_the_one_its_p_tests():
    """mse (lower is better). The model ahead of the strongest: 'better than every baseline', whose p is the largest of the
    per-baseline p-values, a baseline the model is not ahead of (by mean or by ranks) counting 1 and one it cannot be
    tested against (1 pair) leaving no p. The strongest ahead: its p after Holm over the baselines."""
    from distgen.evaluation.uncertainty import CLAIM_BASELINE, CLAIM_MODEL, baseline_claim

    got = baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(-0.5, 0.04)}, "control", False)
    assert got["claim"] == CLAIM_MODEL and got["claim_p"] == 0.04 and got["family"] == ["additive", "control"]
    assert baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(0.1, 0.001)}, "control", False)["claim_p"] == 1.0
    assert baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(-0.1, 0.001, ranks=1)}, "control", False)["claim_p"] == 1.0
    assert math.isnan(baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(-0.5, math.nan, n=1)}, "control", False)["claim_p"])
    ahead = baseline_claim({"control": _t(0.3, 0.02), "additive": _t(0.2, 0.01), "linear": _t(0.1, 0.5)}, "control", False)
    assert ahead["claim"] == CLAIM_BASELINE and ahead["claim_p"] == pytest.approx(0.04)  # 2 x 0.02, after 3 x 0.01
    assert baseline_claim({"control": _t(0.3, 0.02)}, "control", None)["claim"] == ""


def test_identical_baselines_count_once_in_the_family():
    """Two baselines with the same values (baseline_aliases: identical predictions) are one baseline to Holm."""
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.uncertainty import calibrate

    rng = np.random.default_rng(4)
    perts = tuple(f"P{i}" for i in range(15))
    base = np.exp(rng.normal(size=15))
    tables = [MetricTable(perts=perts, values={"mse": v.tolist()}) for v in (base * 0.5, base, base, base * 1.3)]
    rows = summarise(tables[0], {"linear": tables[1], "mean_perturbation": tables[2], "control": tables[3]}, None)
    calibrate(rows, tables[0], {"linear": tables[1], "mean_perturbation": tables[2], "control": tables[3]}, None, n_boot=100)
    test = rows["mse"]["vs_strongest_baseline"]
    assert len(test["family"]) == 2 and "control" in test["family"]
    assert test["verdict"] == "model" and test["claim_p"] == max(test["wilcoxon_p"], test["claim_p"])


def test_runner_up_notes_are_given_in_full_only_where_they_matter():
    """A note per metric where the pick of the strongest bears on the verdict; one grouped line for the metrics where the
    model is shown better than every baseline, and one for those over too few pairs to tell anything apart (a run on 2
    perturbations had one long sentence per metric)."""
    from distgen.evaluation.report import claims_lines
    from distgen.evaluation.uncertainty import CLAIM_MODEL, runner_up_notes
    from distgen.pipeline.experiment import headline

    def row(verdict: str, n: int, claim: str = "") -> dict:
        r = _summary(False)["metrics"]["mse"]
        r["vs_strongest_baseline"] = {**r["vs_strongest_baseline"], "verdict": verdict, "claim": claim, "n": n,
                                      "runner_up": {**r["vs_strongest_baseline"]["runner_up"], "n": n}}
        return r

    rows = {"mse": row("inconclusive", 12), "pearson_delta": row("model", 12, CLAIM_MODEL), "a": row("inconclusive", 2),
            "b": row("inconclusive", 2)}
    sentences, grouped = runner_up_notes(rows)
    assert list(sentences) == ["mse"]
    assert len(grouped) == 2 and "on pearson_delta, where the model is shown better than every baseline" in grouped[0]
    assert "Over 2 perturbation(s)" in grouped[1] and "on a, b is so by its mean alone" in grouped[1]
    said = headline({"metrics": rows}, ["mse", "pearson_delta", "a", "b"])
    assert said.count("not told apart from additive (paired difference") == 1 and grouped[1] in said
    text = "\n".join(claims_lines(rows, 0.95))
    assert text.count("not told apart from additive (paired difference") == 1 and "on a, b is so by its mean alone" in text


def _strata_cells(model: np.ndarray, base: np.ndarray) -> list[str]:
    """The page's difficulty table (``page._strata_table``) for one metric (``overlap_at_N``, higher is better): the class
    of each stratum's cell."""
    import re

    from distgen.report.inputs import Reference, ReportInputs
    from distgen.report.page import _strata_table

    perts = tuple(f"P{i}" for i in range(model.size))
    tables = [MetricTable(perts=perts, values={"overlap_at_N": v.tolist()}) for v in (model, base)]
    summary = {"metrics": {"overlap_at_N": {"strongest_baseline": "additive", "higher_is_better": True}}}
    inputs = ReportInputs(tables[0], [Reference("additive", tables[1], "negative")], summary)
    html = _strata_table(inputs, ["overlap_at_N"], {p: float(i) for i, p in enumerate(perts)})
    return re.findall(r'<td class="(num[^"]*)">\d+/\d+', html)


def win_count_rates(reps: int, n: int, tie_rate: float, seed: int = 0) -> dict[str, float]:
    """The page's difficulty table for an equally good model and baseline whose scores tie on a share of the conditions
    (a discrete score, an overlap of a few genes): the rate of a coloured stratum (the sign test at 5%), now (ties left
    out of the sign test) and before (``_sign_class(wins, conditions)``: ties counted with the losses). ``n``: conditions
    per stratum (three strata)."""
    from distgen.report.page import _sign_class

    rng = np.random.default_rng(seed)
    now = before = cells = 0
    for _ in range(reps):
        base = rng.integers(0, 4, 3 * n).astype(float)
        model = base + rng.normal(size=3 * n) * (rng.random(3 * n) >= tie_rate)
        classes = _strata_cells(model, base)
        now += sum(c != "num" for c in classes)
        for k in range(3):
            adv = (model - base)[k * n:(k + 1) * n]
            before += _sign_class(int((adv > 0).sum()), n) != "num"
        cells += len(classes)
    return {"now": now / cells, "before": before / (3 * reps)}


@pytest.mark.parametrize("how", MECHANISMS)
def test_compare_with_nan_metrics_names_a_false_winner_at_about_its_level(how):
    """Equally good models, 3 metrics NaN on about 30% of the values by each mechanism, 20 perturbations: a winner at most
    about 5% per metric (binomial sd 1.6% at 180 metric comparisons) and the interval misses 0 about 5% of the time."""
    rates = compare_rates(60, 20, how, seed=MECHANISMS.index(how))
    assert rates["winner"] <= 0.10
    assert rates["ci_misses_0"] <= 0.11


@pytest.mark.parametrize("how", MECHANISMS)
def test_the_verdict_against_the_strongest_baseline_with_nan_metrics_is_rarely_a_false_win(how):
    """A model as good as its two baselines: 'model' (the model better) in at most about 5% of evaluations; 'baseline' can
    be a little more often than 5% (the baseline kept is the better of two by their means: the selection favours it)."""
    rates = baseline_rates(80, 20, how, seed=10 + MECHANISMS.index(how))
    assert rates["model"] <= 0.09
    assert rates["baseline"] <= 0.15


def test_the_page_leaves_ties_out_of_its_sign_test():
    """Equally good, a third of the conditions tied: the sign test over wins and losses colours a cell in about 5% of
    strata or fewer; counting ties as losses (before) coloured far more, always as 'fewer than half'."""
    rates = win_count_rates(100, 20, 1 / 3, seed=3)
    assert rates["now"] <= 0.08
    assert rates["before"] >= 3 * max(rates["now"], 0.05)


def test_a_baseline_with_the_strongest_values_is_not_its_runner_up():
    """Two baselines with the same values (one to the verdict: ``_distinct_scored``) are not ranked against each other: the
    runner-up is the next distinct baseline. Before, the twin was the runner-up, 'not told apart' over a difference of 0
    everywhere, and summary.md said the verdict was 'against one of two baselines the data do not rank'."""
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.uncertainty import calibrate, runner_up_notes

    rng = np.random.default_rng(5)
    perts = tuple(f"P{i}" for i in range(30))
    base = rng.uniform(1, 2, 30)
    tables = {k: MetricTable(perts=perts, values={"mse": v.tolist()}) for k, v in
              (("model", base + 0.5), ("linear", base), ("mean_perturbation", base.copy()), ("control", base + 0.2))}
    baselines = {k: v for k, v in tables.items() if k != "model"}
    rows = summarise(tables["model"], baselines, None)
    calibrate(rows, tables["model"], baselines, None, n_boot=100)
    test = rows["mse"]["vs_strongest_baseline"]
    assert test["verdict"] == "baseline" and test["baseline"] in ("linear", "mean_perturbation")
    assert test["runner_up"]["baseline"] == "control" and test["runner_up"]["told_apart"]
    assert runner_up_notes(rows) == ({}, [])
    only_twins = {k: baselines[k] for k in ("linear", "mean_perturbation")}
    rows = summarise(tables["model"], only_twins, None)
    calibrate(rows, tables["model"], only_twins, None, n_boot=100)
    assert "runner_up" not in rows["mse"]["vs_strongest_baseline"]


def _two_baselines(gap: float, seed: int, n: int = 20) -> dict:
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.uncertainty import calibrate

    rng = np.random.default_rng(seed)
    perts = tuple(f"P{i}" for i in range(n))
    effect = rng.normal(size=n)
    model = np.exp(0.3 * (effect + rng.normal(size=n)))
    b1 = np.exp(0.3 * (effect + rng.normal(size=n)))
    b2 = np.exp(0.3 * (effect + rng.normal(size=n)) + gap)  # mse: lower is better, so gap > 0 makes b2 the weaker one
    tables = [MetricTable(perts=perts, values={"mse": v.tolist()}) for v in (model, b1, b2)]
    baselines = {"control": tables[1], "additive": tables[2]}
    rows = summarise(tables[0], baselines, None)
    calibrate(rows, tables[0], baselines, None, seed=seed, n_boot=200)
    return rows


def test_the_strongest_baseline_is_told_apart_from_the_runner_up_only_when_the_data_rank_them():
    """Two baselines drawn alike: the pick by mean is told apart from the runner-up in about 5% of draws or fewer (it
    is the larger of two means, so its side of 0 is the likelier one); a baseline 0.6 log-units worse: told apart in
    nearly every draw, and the runner-up is that baseline."""
    equal = [_two_baselines(0.0, s)["mse"]["vs_strongest_baseline"]["runner_up"] for s in range(60)]
    apart = sum(r["told_apart"] for r in equal)
    assert apart <= 7
    assert {r["baseline"] for r in equal} == {"control", "additive"}  # the pick follows the noise
    far = [_two_baselines(0.6, s)["mse"] for s in range(30)]
    assert all(r["strongest_baseline"] == "control" and r["vs_strongest_baseline"]["runner_up"]["baseline"] == "additive"
               for r in far)
    assert sum(r["vs_strongest_baseline"]["runner_up"]["told_apart"] for r in far) >= 28
    for r in far + [_two_baselines(0.0, s)["mse"] for s in range(60)]:
        second = r["vs_strongest_baseline"]["runner_up"]
        assert second["told_apart"] == (second["ci"][1] < 0)  # mse: the strongest's side of 0 is the negative one


def _summary(told_apart: bool) -> dict:
    test = {"baseline": "control", "verdict": "model", "wilcoxon_p": 0.01, "holm_p": 0.02, "n": 12,
            "runner_up": {"baseline": "additive", "mean_difference": -0.01, "ci": [-0.3 if not told_apart else -0.2, -0.1 if told_apart else 0.2],
                          "n": 12, "told_apart": told_apart}}
    row = {"model": 0.5, "baselines": {"control": 0.6, "additive": 0.61}, "ceiling": 0.4, "strongest_baseline": "control",
           "higher_is_better": False, "normalised": 0.5, "ci_level": 0.95, "vs_strongest_baseline": test}
    return {"metrics": {"mse": row}}


def test_the_headline_and_summary_md_say_when_the_strongest_baseline_is_not_told_apart():
    from distgen.evaluation.report import claims_lines
    from distgen.pipeline.experiment import headline

    unranked, ranked = _summary(False), _summary(True)
    said = headline(unranked)
    assert "strongest baseline control not told apart from additive" in said and "95% CI [-0.3, 0.2]" in said
    assert "over 12 perturbations" in said
    assert "not told apart" not in headline(ranked)
    assert any("not told apart from additive" in line for line in claims_lines(unranked["metrics"], 0.95))
    assert not any("not told apart" in line for line in claims_lines(ranked["metrics"], 0.95))
    older = _summary(False)  # a summary.json written before runner_up: nothing said, nothing broken
    del older["metrics"]["mse"]["vs_strongest_baseline"]["runner_up"]
    assert "not told apart" not in headline(older)


def test_the_page_says_when_the_best_baseline_is_not_told_apart_from_the_runner_up():
    from distgen.report.inputs import Reference, ReportInputs
    from distgen.report.page import _summary_table

    perts = ("P0", "P1", "P2")
    tables = [MetricTable(perts=perts, values={"mse": v}) for v in ([0.5, 0.5, 0.5], [0.6, 0.6, 0.6], [0.61, 0.61, 0.61])]
    refs = [Reference("control", tables[1], "negative"), Reference("additive", tables[2], "negative")]
    for told_apart in (False, True):
        html = _summary_table(ReportInputs(tables[0], refs, _summary(told_apart)), ["mse"])
        assert ("mse: strongest baseline control not told apart from additive" in html) is not told_apart
        assert ("not told apart from the next one" in html) is not told_apart


def negligible_rates(reps: int, n: int, ratio: float, seed: int = 0, width: float = 0.1) -> dict[str, float]:
    """How often ``verdict`` says ``negligible`` when the true paired difference is ``ratio`` times the margin
    (per-perturbation noise twice the margin, as ``benchmarks/null_claims.py``'s ``negligible_claims``): ``now``, and
    ``before`` (the rule until 2026-12-06 on the same draws: also a significant difference whose estimate is within it)."""
    from distgen.evaluation.uncertainty import paired_test, verdict

    rng = np.random.default_rng(seed)
    now = before = 0
    for i in range(reps):
        d = rng.normal(ratio * width, 2 * width, n)
        test = paired_test(d, np.zeros(n), n_boot=200, seed=i)
        said = verdict(test, True, width, 0.05)[0] == "negligible"
        now += said
        before += said or (test["wilcoxon_p"] < 0.05 and abs(test["mean_difference"]) <= width)
    return {"now": now / reps, "before": before / reps}


def negligible_rate(reps: int, n: int, ratio: float, seed: int = 0) -> float:
    return negligible_rates(reps, n, ratio, seed)["now"]


def test_negligible_is_said_only_where_the_interval_shows_it():
    """At a true difference of exactly the margin, 'no practical difference' is a false claim: the equivalence rule makes
    it in at most 2.5% of tests (one side of a 95% interval); reading it off the estimate made it in about half at 100
    pairs. Well inside the margin it is still said (the rule has power)."""
    assert negligible_rate(150, 100, 1.0, seed=1) <= 0.06
    assert negligible_rate(150, 100, 1.25, seed=2) <= 0.03
    assert negligible_rate(100, 100, 0.0, seed=3) >= 0.9


def test_a_significant_difference_within_the_margin_by_its_estimate_only_is_not_called_negligible(tmp_path):
    from distgen.evaluation.compare import compare, markdown
    from distgen.pipeline.experiment import headline

    rng = np.random.default_rng(0)
    perts = [f"P{i}" for i in range(30)]
    base = rng.normal(size=30)
    z = rng.normal(size=30)
    d = 0.075 + 0.1 * (z - z.mean()) / z.std()  # mean 0.075, sd 0.1: its 95% interval reaches past the margin 0.1
    a = evaluation_folder(tmp_path / "a", {p: {"mse": base[i] + d[i]} for i, p in enumerate(perts)}, {"mse": False})
    b = evaluation_folder(tmp_path / "b", {p: {"mse": base[i]} for i, p in enumerate(perts)}, {"mse": False})
    r = compare(a, b, margins={"mse": 0.1})["metrics"]["mse"]
    assert r["wilcoxon_p"] < 0.05 and abs(r["mean_difference"]) <= 0.1 < r["ci"][1]
    assert r["verdict"] == "inconclusive" and "that it is too small to matter is not shown" in r["note"]
    assert "too small to matter is not shown" in markdown(compare(a, b, margins={"mse": 0.1}))
    shown = compare(a, b, margins={"mse": 0.5})["metrics"]["mse"]  # the interval well inside +-0.5
    assert shown["verdict"] == "negligible" and "not shown" not in shown["note"]
    test = {"baseline": "control", "verdict": "inconclusive", "mean_difference": r["mean_difference"], "ci": r["ci"],
            "wilcoxon_p": r["wilcoxon_p"], "margin": 0.1}
    row = {"model": 1.0, "baselines": {"control": 1.0}, "higher_is_better": False, "ci_level": 0.95, "vs_strongest_baseline": test}
    assert "within the margin by its estimate only" in headline({"metrics": {"mse": row}})
    test["wilcoxon_p"] = 0.3  # not significant: plainly not shown either way
    assert "vs control: not shown either way" in headline({"metrics": {"mse": row}})


def interval_check(reps: int) -> None:
    """``paired_test`` alone (1,000 bootstrap draws, seeded per draw), equally good sides: values NaN where small at 25
    perturbations (about 14 pairs remain) against no NaN at 14: the rates of an interval without 0 and of p < 0.05."""
    from distgen.evaluation.uncertainty import paired_test

    print(f"## paired_test alone, equally good sides ({reps} draws)\n")
    print("| perturbations | NaN | 95% CI leaves out 0 | Wilcoxon p < 0.05 |\n|---|---|---|---|")
    for how, n in (("small values", 25), ("none", 14)):
        rng = np.random.default_rng(11)
        miss = rej = 0
        for r in range(reps):
            effect = rng.normal(size=n)
            a, b = effect + rng.normal(size=n), effect + rng.normal(size=n)
            if how != "none":
                a, b = _with_nans(rng, a, b, how)
            t = paired_test(a, b, seed=r)
            miss += not (t["ci"][0] <= 0.0 <= t["ci"][1])
            rej += t["wilcoxon_p"] < 0.05
        print(f"| {n} | {how} | {miss / reps:.2%} | {rej / reps:.2%} |")


def several_baselines(reps: int) -> None:
    """The table of ``several_baselines_rates`` (docs/metrics.md, "Claims against several baselines")."""
    print(f"## verdict against the strongest of k baselines, mse, no NaN ({reps} repetitions): now at the claim's p "
          "(every baseline for 'model', Holm over the baselines for 'baseline'), before at the strongest's own p\n")
    print("| perturbations | baselines | model's gain (log units) | 'model' | 'baseline' | 'model' before | 'baseline' before |"
          "\n|---|---|---|---|---|---|---|")
    for n in (10, 25):
        for k in (1, 2, 4):
            for gain in (0.0, 0.15, 0.3):
                r = several_baselines_rates(reps, n, k, gain, seed=1000 * n + 10 * k + int(100 * gain))
                print(f"| {n} | {k} | {gain} | {r['model']:.1%} | {r['baseline']:.1%} | {r['model before']:.1%} | "
                      f"{r['baseline before']:.1%} |", flush=True)
        for k in (2, 4):  # the model as good as one baseline, the others 0.3 log units worse: 'model' is a false claim
            r = several_baselines_rates(reps, n, k, 0.0, seed=1000 * n + 10 * k + 7, worse=0.3)
            print(f"| {n} | {k}, all but one 0.3 worse | 0.0 | {r['model']:.1%} | {r['baseline']:.1%} | {r['model before']:.1%} | "
                  f"{r['baseline before']:.1%} |", flush=True)
    print()


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="verdicts under the null with NaN metrics")
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--interval-check", type=int, default=0, help="only the paired interval check, with this many draws")
    ap.add_argument("--several-baselines", action="store_true", help="only the verdict against several baselines")
    args = ap.parse_args()
    if args.interval_check:
        interval_check(args.interval_check)
        return
    reps = args.reps
    several_baselines(reps)
    if args.several_baselines:
        return
    print(f"## compare, equally good models, 3 metrics, 30% NaN, 1,000 bootstrap draws ({reps} repetitions)\n")
    print("| perturbations | NaN mechanism | winner per metric | 95% CI leaves out 0 |\n|---|---|---|---|")
    for n in (10, 25):
        for how in MECHANISMS:
            r = compare_rates(reps, n, how, seed=n, n_boot=1000)
            print(f"| {n} | {how} | {r['winner']:.1%} | {r['ci_misses_0']:.1%} |")
    print(f"\n## verdict against the strongest of two baselines, all three equally good, mse 30% NaN ({reps} repetitions)\n")
    print("| perturbations | NaN mechanism | 'model' | 'baseline' |\n|---|---|---|---|")
    for n in (10, 25):
        for how in MECHANISMS:
            r = baseline_rates(reps, n, how, seed=100 + n)
            print(f"| {n} | {how} | {r['model']:.1%} | {r['baseline']:.1%} |")
    print(f"\n## page difficulty table: a coloured cell, equally good, ties on a share of conditions ({reps} repetitions)\n")
    print("| conditions per stratum | tied | ties left out (now) | ties as losses (before) |\n|---|---|---|---|")
    for n in (7, 20, 50):
        for tie in (0.0, 1 / 3):
            r = win_count_rates(reps, n, tie, seed=n)
            print(f"| {n} | {tie:.0%} | {r['now']:.1%} | {r['before']:.1%} |")
    print(f"\n## verdict 'negligible' at a true difference of k x the margin, equivalence rule ({reps} repetitions)\n")
    print("| perturbations | k | 'negligible' (interval inside +-margin) | before (or significant, estimate inside) |\n|---|---|---|---|")
    for n in (10, 25, 100):
        for ratio in (0.0, 0.5, 1.0, 1.25, 1.5):
            r = negligible_rates(reps, n, ratio, seed=n)
            print(f"| {n} | {ratio} | {r['now']:.1%} | {r['before']:.1%} |")
    print(f"\n## strongest baseline told apart from the runner-up ({reps} repetitions, 20 perturbations)\n")
    print("| baselines' gap (log units) | told apart |\n|---|---|")
    for gap in (0.0, 0.2, 0.6):
        told = sum(_two_baselines(gap, s)["mse"]["vs_strongest_baseline"]["runner_up"]["told_apart"] for s in range(reps))
        print(f"| {gap} | {told / reps:.1%} |")


if __name__ == "__main__":
    main()


def test_summary_md_names_the_baseline_that_holds_back_a_claim_against_every_baseline():
    """The model far ahead of the strongest baseline (Wilcoxon p ~ 1e-6 over 30 perturbations) but a second baseline scored
    on 2 of them: the claim 'better than every baseline' takes that baseline's p (0.5), the verdict is inconclusive, and the
    table showed only a claim p of 0.5 beside a Wilcoxon p near 0, naming nothing. Now ``held_by`` names the baseline and
    summary.md says it holds the claim back."""
    from distgen.evaluation.calibration import summarise
    from distgen.evaluation.report import claims_lines
    from distgen.evaluation.uncertainty import baseline_claim, calibrate

    rng = np.random.default_rng(6)
    perts = tuple(f"P{i}" for i in range(30))
    base = rng.uniform(1, 2, 30)
    sparse = base + 0.2  # worse than a where scored, so a is the strongest
    sparse[2:] = np.nan
    tables = {k: MetricTable(perts=perts, values={"mse": v.tolist()}) for k, v in
              (("model", base - 0.5), ("a", base), ("b", sparse))}
    baselines = {k: v for k, v in tables.items() if k != "model"}
    rows = summarise(tables["model"], baselines, None)
    calibrate(rows, tables["model"], baselines, None, n_boot=100)
    test = rows["mse"]["vs_strongest_baseline"]
    assert test["wilcoxon_p"] < 0.05 and test["claim_p"] >= 0.05 and test["verdict"] == "inconclusive"
    assert test["baseline"] == "a" and test["held_by"] == "b"
    text = "\n".join(claims_lines(rows, 0.95))
    assert "held back by" in text and "- mse: b (claim p" in text
    # the strongest itself setting the claim p, or a claim made: no such line
    assert "held_by" not in baseline_claim({"control": _t(-0.3, 0.04), "additive": _t(-0.5, 0.01)}, "control", False)
    untestable = baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(-0.5, math.nan, n=1)}, "control", False)
    assert untestable["held_by"] == "additive"


def test_a_claim_held_back_by_baselines_tied_at_its_p_names_them_all():
    """Two baselines the model is not ahead of both count p 1, and two untestable ones both leave no p: ``held_by`` named
    the family's first alone, as if the other did not hold the claim back."""
    from distgen.evaluation.uncertainty import baseline_claim

    tied = baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(0.1, 0.2), "linear": _t(0.2, 0.3)}, "control", False)
    assert tied["claim_p"] == 1.0 and tied["held_by"] == "additive and linear (tied)"  # was "additive"
    untestable = baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(-0.5, math.nan, n=1),
                                 "linear": _t(-0.5, math.nan, n=0)}, "control", False)
    assert untestable["held_by"] == "additive and linear (tied)"
    one = baseline_claim({"control": _t(-0.3, 0.01), "additive": _t(0.1, 0.2), "linear": _t(-0.2, 0.03)}, "control", False)
    assert one["held_by"] == "additive"
