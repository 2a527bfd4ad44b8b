"""``distgen compare``: two evaluations paired on their shared perturbations."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from distgen.cli import main
from distgen.evaluation import score
from distgen.evaluation.compare import compare
from distgen.types import Cells

from .synth import evaluation_folder

METRICS = ["mse", "pearson_delta"]


def _population(seed, perts, noise=0.3):
    rng = np.random.default_rng(seed)
    effects = np.random.default_rng(7).normal(0, 1.0, (12, 10))
    rows, conds = [rng.normal(1.0, 0.3, (60, 10))], ["control"] * 60
    for p in perts:
        rows.append(rng.normal(1.0 + effects[p], noise, (20, 10)))
        conds += [f"P{p}"] * 20
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, [f"g{i}" for i in range(10)])


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    truth = _population(0, range(12))
    good = _population(1, range(12))  # a close prediction of all 12 perturbations
    bad = _population(2, range(2, 12), noise=1.5)  # a noisier one that skipped P0 and P1
    score(good, truth, metrics=METRICS, ceiling=False).write(root / "a", make_plots=False)
    score(bad, truth.subset(np.flatnonzero(~np.isin(truth.conditions, ["P0", "P1"]))), metrics=METRICS,
          ceiling=False).write(root / "b" / "eval", make_plots=False)  # a distgen run folder: its eval/
    return root


def test_compare_pairs_the_shared_perturbations(evals):
    res = compare(evals / "a", evals / "b")
    assert res["n_shared"] == 10 and res["only_a"] == 2 and res["only_b"] == 0
    a = pd.read_csv(evals / "a" / "metrics.csv").set_index("perturbation")
    b = pd.read_csv(evals / "b" / "eval" / "metrics.csv").set_index("perturbation")
    for m in METRICS:
        d = (a.loc[b.index, m] - b[m]).to_numpy()
        r = res["metrics"][m]
        assert r["n"] == 10 and r["mean_difference"] == pytest.approx(d.mean())
        assert r["ci"][0] <= r["mean_difference"] <= r["ci"][1]
    assert res["metrics"]["mse"]["better"] == "a" and res["metrics"]["mse"]["wilcoxon_p"] == pytest.approx(2 / 2**10)
    assert res["metrics"]["mse"]["higher_is_better"] is False
    same = compare(evals / "a", evals / "a")
    assert math.isnan(same["metrics"]["mse"]["wilcoxon_p"]) and same["metrics"]["mse"]["better"] is None
    assert same["notes"][0].startswith("A and B are one evaluation") and not any("one evaluation" in n for n in res["notes"])
    assert compare(evals / "b", evals / "b" / "eval")["notes"][0].startswith("A and B are one evaluation")  # a run folder and its eval/
    assert (res["seed"], res["n_boot"]) == (0, 1000)  # the bootstrap's seed is recorded: the intervals can be drawn again
    other = compare(evals / "a", evals / "b", seed=4, n_boot=200)
    assert (other["seed"], other["n_boot"]) == (4, 200) and other["metrics"]["mse"]["ci"] != res["metrics"]["mse"]["ci"]
    assert compare(evals / "a", evals / "b", seed=4, n_boot=200)["metrics"]["mse"]["ci"] == other["metrics"]["mse"]["ci"]


def test_compare_command_writes_json_and_markdown(evals, tmp_path, capsys):
    assert main(["compare", str(evals / "a"), str(evals / "b"), "--out", str(tmp_path)]) == 0
    assert "| mse | lower |" in capsys.readouterr().out
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["n_shared"] == 10 and "Wilcoxon" in (tmp_path / "compare.md").read_text()


def test_compare_refuses_a_folder_without_an_evaluation(evals, tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluation"):
        compare(evals / "a", tmp_path)


# ---------------------------------------------------------------------------------------------- hand-written folders


def test_one_value_metrics_are_compared_once_without_interval_or_test(tmp_path):
    perts = [f"P{i}" for i in range(7)]
    # pearson_edistance is one number for the evaluation, written on every row (A: 0.5, B: 0.2)
    a = evaluation_folder(tmp_path / "a", {p: {"mse": 1.0 + i, "pearson_edistance": 0.5} for i, p in enumerate(perts)},
                {"mse": False, "pearson_edistance": True})
    b = evaluation_folder(tmp_path / "b", {p: {"mse": 1.0 + i, "pearson_edistance": 0.2} for i, p in enumerate(perts)},
                {"mse": False, "pearson_edistance": True})
    r = compare(a, b)["metrics"]["pearson_edistance"]
    assert r["per_perturbation"] is False and r["n"] == 1
    assert r["value_a"] == 0.5 and r["value_b"] == 0.2 and r["mean_difference"] == pytest.approx(0.3)
    assert all(math.isnan(v) for v in r["ci"]) and math.isnan(r["wilcoxon_p"])  # was a zero-width CI and p = 0.0156
    assert r["better"] is None and r["verdict"] == "one value"
    from distgen.evaluation.compare import markdown

    md = markdown(compare(a, b))
    assert "| pearson_edistance | higher | 0.5 | 0.2 | 0.3 | - | - | - | - | one value* | - |" in md and "not paired observations" in md


def test_a_winner_needs_a_significant_paired_test_and_a_difference_beyond_the_margin(tmp_path):
    perts = [f"P{i}" for i in range(7)]
    base = {p: 0.1 + 0.01 * i for i, p in enumerate(perts)}
    a = evaluation_folder(tmp_path / "a", {p: {"mse": v + 2e-9} for p, v in base.items()}, {"mse": False})  # a rounding difference
    b = evaluation_folder(tmp_path / "b", {p: {"mse": v} for p, v in base.items()}, {"mse": False})
    r = compare(a, b)["metrics"]["mse"]
    assert r["mean_difference"] > 0 and r["wilcoxon_p"] < 0.05  # every pair differs the same way: statistically significant
    # ... but 2e-9 on values of ~0.13 is below one part in a million: no winner (it was "b")
    assert r["margin_source"] == "numerical tolerance" and r["margin"] == pytest.approx(1e-6 * max(r["mean_a"], r["mean_b"]))
    assert r["better"] is None and r["verdict"] == "negligible"
    worse = evaluation_folder(tmp_path / "w", {p: {"mse": v + 2e-3} for p, v in base.items()}, {"mse": False})  # a real difference
    res = compare(worse, b)
    r = res["metrics"]["mse"]
    assert r["better"] == "b" and r["verdict"] == "b"
    # with no replicate spread recorded, the winner rests on the tolerance alone, and the notes say so
    assert any("only statistically significant" in n and "'mse'" in n and "--margin" in n for n in res["notes"])
    assert not any("only statistically significant" in n for n in compare(worse, b, margins={"mse": 1e-4})["notes"])
    mixed = {p: v + (1e-3 if i % 2 else -1e-3) for i, (p, v) in enumerate(base.items())}
    mixed["P0"] += 1e-4  # mean difference slightly positive, the test far from rejecting
    c = evaluation_folder(tmp_path / "c", {p: {"mse": v} for p, v in mixed.items()}, {"mse": False})
    r = compare(c, b)["metrics"]["mse"]
    assert r["mean_difference"] != 0 and r["wilcoxon_p"] > 0.5
    assert r["better"] is None and r["verdict"] == "inconclusive"  # the interval reaches beyond +-1e-7: nothing shown
    from distgen.evaluation.compare import markdown

    assert "inconclusive" in markdown(compare(c, b))
    # the same difference, with a margin of 0.01 (a difference that matters to the user): shown to be within it
    r = compare(c, b, margins={"mse": 0.01})["metrics"]["mse"]
    assert r["margin"] == 0.01 and r["margin_source"] == "given" and r["verdict"] == "negligible"
    with pytest.raises(ValueError, match="do not share"):
        compare(c, b, margins={"pearson_delta": 0.01})


def test_the_margin_is_the_replicate_spread_when_the_evaluations_carry_one(tmp_path):
    """A significant difference smaller than the split-half replicate's spread of the metric is negligible."""
    perts = [f"P{i}" for i in range(10)]
    base = {p: 0.5 + 0.01 * i for i, p in enumerate(perts)}
    band = {"mse": {"higher_is_better": False, "ceiling_band": {"std": 0.004, "n_splits": 5}}}
    small = evaluation_folder(tmp_path / "s", {p: {"mse": v + 0.001 * (1 + i % 3)} for i, (p, v) in enumerate(base.items())}, {"mse": False})
    large = evaluation_folder(tmp_path / "l", {p: {"mse": v + 0.01 * (1 + i % 3)} for i, (p, v) in enumerate(base.items())}, {"mse": False})
    ref = evaluation_folder(tmp_path / "r", {p: {"mse": v} for p, v in base.items()}, {"mse": False})
    for folder in (small, large, ref):
        (folder / "summary.json").write_text(json.dumps({"metrics": band}))
    r = compare(small, ref)["metrics"]["mse"]
    assert r["wilcoxon_p"] < 0.01 and r["margin"] == 0.004 and r["margin_source"] == "replicate spread"
    assert r["verdict"] == "negligible" and r["better"] is None  # ~0.002 < the replicate's own spread 0.004
    r = compare(large, ref)["metrics"]["mse"]
    assert r["verdict"] == "b" and r["better"] == "b"  # ~0.02 > 0.004: B (lower mse) wins
    assert compare(small, ref, margins={"mse": 0.0})["metrics"]["mse"]["verdict"] == "b"  # margin 0: the test alone


def test_means_are_taken_over_the_rows_of_the_difference(tmp_path):
    perts = [f"P{i}" for i in range(6)]
    va = {p: float(i) for i, p in enumerate(perts)}
    vb = {p: float(i) + 1.0 for i, p in enumerate(perts)}
    va["P5"] = math.nan  # A failed on P5, where B has a large value
    vb["P5"] = 100.0
    a = evaluation_folder(tmp_path / "a", {p: {"mse": v} for p, v in va.items()}, {"mse": False})
    b = evaluation_folder(tmp_path / "b", {p: {"mse": v} for p, v in vb.items()}, {"mse": False})
    r = compare(a, b)["metrics"]["mse"]
    assert r["n"] == 5 and r["n_dropped"] == 1 and "1 row(s)" in r["note"]
    assert r["mean_a"] == pytest.approx(np.mean([0, 1, 2, 3, 4])) and r["mean_b"] == pytest.approx(np.mean([1, 2, 3, 4, 5]))
    assert r["mean_a"] - r["mean_b"] == pytest.approx(r["mean_difference"])


def test_one_value_metrics_are_exactly_those_constant_across_perturbations():
    """The registry's per_perturbation=False marks the metrics whose rows all repeat one number, and only those."""
    import warnings

    from distgen.evaluation.metrics import metrics
    from distgen.evaluation.suite import run_metrics
    from distgen.pipeline.profile_eval import load_pair

    from .synth import CONTROL, make_pair

    real, pred = make_pair(seed=0, n_genes=80, n_ctrl=120, n_cells=40)
    data, _ = load_pair(pred, real, "target", CONTROL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = run_metrics(data, metrics.names())
    constant, declared = set(), set()
    for name in metrics.names():
        v = np.asarray(table.values[name], dtype=float)
        v = v[np.isfinite(v)]
        if v.size >= 3 and np.all(v == v[0]):
            constant.add(name)
        if not metrics.get(name).capabilities.per_perturbation:
            declared.add(name)
    assert declared == constant and {"pearson_edistance", "de_spearman_sig"} <= declared


# ---------------------------------------------------------------------------------------------- hostile inputs
def test_few_pairs_ties_and_equal_values(tmp_path):
    for n in (1, 2, 3):
        perts = [f"P{i}" for i in range(n)]
        a = evaluation_folder(tmp_path / f"a{n}", {p: {"mse": 1.0 + i} for i, p in enumerate(perts)}, {"mse": False})
        b = evaluation_folder(tmp_path / f"b{n}", {p: {"mse": 2.0 + i} for i, p in enumerate(perts)}, {"mse": False})
        r = compare(a, b)["metrics"]["mse"]
        assert r["n"] == n and r["mean_difference"] == -1.0 and r["better"] is None and r["verdict"] == "inconclusive"
        if n == 1:
            assert all(math.isnan(v) for v in r["ci"]) and "only 1 paired" in r["note"]  # no bootstrap of one value
        else:
            assert r["ci"] == [-1.0, -1.0] and r["wilcoxon_p"] >= 0.25 and "fewer than 6" in r["note"]
    perts = [f"P{i}" for i in range(8)]
    same_a = evaluation_folder(tmp_path / "ea", {p: {"mse": 0.3} for p in perts}, {"mse": False})
    same_b = evaluation_folder(tmp_path / "eb", {p: {"mse": 0.3} for p in perts}, {"mse": False})
    r = compare(same_a, same_b)["metrics"]["mse"]
    assert r["ci"] == [0.0, 0.0] and math.isnan(r["wilcoxon_p"]) and r["verdict"] == "negligible"
    # ties: every |difference| equal, all one way; and one nonzero difference among zeros
    ta = evaluation_folder(tmp_path / "ta", {p: {"mse": 1.0 + i % 2} for i, p in enumerate(perts)}, {"mse": False})
    tb = evaluation_folder(tmp_path / "tb", {p: {"mse": 2.0 + i % 2} for i, p in enumerate(perts)}, {"mse": False})
    r = compare(ta, tb)["metrics"]["mse"]
    assert r["wilcoxon_p"] == pytest.approx(2 / 2**8) and r["verdict"] == "a"
    one = {p: {"mse": 1.0} for p in perts}
    one["P0"] = {"mse": 2.0}
    ones = evaluation_folder(tmp_path / "ob", {p: {"mse": 1.0} for p in perts}, {"mse": False})
    r = compare(evaluation_folder(tmp_path / "oa", one, {"mse": False}), ones)["metrics"]["mse"]
    assert r["verdict"] == "inconclusive" and "1 nonzero" in r["note"]


def test_rows_pair_by_label_not_by_position(tmp_path):
    perts = [f"P{i}" for i in range(8)]
    va = {p: float(i) for i, p in enumerate(perts)}
    vb = {p: float(i) + 0.5 for i, p in enumerate(perts)}
    vb["P3"] = math.nan  # B failed on P3 only
    a = evaluation_folder(tmp_path / "a", {p: {"mse": va[p]} for p in perts}, {"mse": False})
    b = evaluation_folder(tmp_path / "b", {p: {"mse": vb[p]} for p in reversed(perts)}, {"mse": False})  # rows in the other order
    r = compare(a, b)["metrics"]["mse"]
    assert r["n"] == 7 and r["n_dropped"] == 1 and r["mean_difference"] == pytest.approx(-0.5) and r["ci"] == [-0.5, -0.5]


def test_mismatched_evaluations_are_refused_or_restricted_with_a_note(tmp_path, capsys):
    from distgen.evaluation.compare import MismatchedEvaluations, markdown

    perts = [f"P{i}" for i in range(8)]
    rows = {p: {"mse": 1.0 + i, "mae": 0.5} for i, p in enumerate(perts)}
    a = evaluation_folder(tmp_path / "a", rows, {"mse": False, "mae": False})
    # another profile: same column names, other definitions (counts vs log scale, preset conventions)
    prof = evaluation_folder(tmp_path / "prof", rows, {"mse": False, "mae": False})
    (prof / "summary.json").write_text(json.dumps({"profile": "celleval2", "scale": "counts", "metrics": {"mse": 1.0, "mae": 0.5}}))
    with pytest.raises(MismatchedEvaluations, match=r"profile 'distgen' and .* under 'celleval2'"):
        compare(a, prof)
    assert main(["compare", str(a), str(prof)]) == 2  # bad input: exit 2
    assert "same --profile" in capsys.readouterr().err
    # another gene set, and another truth (the same label scored on other real cells)
    genes = evaluation_folder(tmp_path / "genes", rows, {"mse": False, "mae": False})
    (a / "summary.json").write_text(json.dumps({"n_genes": 10, "metrics": {"mse": {"higher_is_better": False}}}))
    (genes / "summary.json").write_text(json.dumps({"n_genes": 12, "metrics": {"mse": {"higher_is_better": False}}}))
    with pytest.raises(MismatchedEvaluations, match="10 genes"):
        compare(a, genes)
    other = evaluation_folder(tmp_path / "other", rows, {"mse": False, "mae": False})
    text = (other / "metrics.csv").read_text().replace("P5,,10,10,", "P5,,37,10,")
    (other / "metrics.csv").write_text(text)
    with pytest.raises(MismatchedEvaluations, match=r"P5 \(10 vs 37\)"):
        compare(evaluation_folder(tmp_path / "a2", rows, {"mse": False, "mae": False}), other)
    # a label on two rows cannot be paired
    dup = evaluation_folder(tmp_path / "dup", rows, {"mse": False, "mae": False})
    (dup / "metrics.csv").write_text((dup / "metrics.csv").read_text() + "P0,,10,10,100.0,0.5\n")
    with pytest.raises(MismatchedEvaluations, match=r"1 perturbation label on more than one row \('P0'\)"):
        compare(dup, other)
    # other metric sets: the shared ones are compared, the others named
    w2 = evaluation_folder(tmp_path / "w2", {p: {"mse": 2.0 + i, "w2": 1.0} for i, p in enumerate(perts)}, {"mse": False, "w2": False})
    res = compare(evaluation_folder(tmp_path / "a3", rows, {"mse": False, "mae": False}), w2)
    assert list(res["metrics"]) == ["mse"] and res["only_a_metrics"] == ["mae"] and res["only_b_metrics"] == ["w2"]
    assert "metrics in one evaluation only, not compared: A ['mae'], B ['w2']" in markdown(res)


def test_directions_of_every_registered_metric_and_profile_column():
    """compare orients each metric as the registry does; a diagnostic (no better value) gets no direction, so no winner."""
    from distgen.evaluation.compare import _higher_is_better
    from distgen.evaluation.metrics import metrics
    from distgen.evaluation.profiles import PROFILES

    for name in metrics.names():
        caps = metrics.get(name).capabilities
        assert _higher_is_better(name, {}) == (None if caps.diagnostic else caps.higher_is_better), name
        # a summary.json that says higher_is_better: true for a diagnostic (as evaluate writes it) is not a direction
        assert _higher_is_better(name, {"metrics": {name: {"higher_is_better": True, "diagnostic": caps.diagnostic}}}) \
            == (None if caps.diagnostic else True)
    for prof in PROFILES.values():
        for column, registered in prof.columns.items():
            caps = metrics.get(registered).capabilities
            summary = {"profile": prof.name, "metrics": {column: 0.5}}  # a profile's summary.json: means, no directions
            assert _higher_is_better(column, summary) == (None if caps.diagnostic else caps.higher_is_better), (prof.name, column)
    # the ones that matter most: errors and distances lower, agreement higher, counts none
    expect = {"mse": False, "edistance": False, "edistance_sq": False, "edistance_scperturb": False, "mmd": False, "w2": False,
              "de_wilcoxon_lfc_nmae": False, "expr_mse_unbiased_capped_norm": False, "pearson_delta": True,
              "discrimination_score_l1": True, "pds_cosine": True, "de_wilcoxon_sig_jaccard": True,
              "de_wilcoxon_nsig_counts_pred": None, "expr_real_mass_ratio": None, "expr_distance_unbiased": None}
    assert {m: _higher_is_better(m, {}) for m in expect} == expect
    assert _higher_is_better("de_nsig_counts_pred", {"profile": "cell-eval-0.7.6"}) is None  # v1 name of a diagnostic


def test_a_diagnostic_never_wins(tmp_path):
    perts = [f"P{i}" for i in range(8)]
    meta = {"de_wilcoxon_nsig_counts_pred": True}  # what summary.json said before: a count is not better when higher
    a = evaluation_folder(tmp_path / "a", {p: {"de_wilcoxon_nsig_counts_pred": 100.0 + i} for i, p in enumerate(perts)}, meta)
    b = evaluation_folder(tmp_path / "b", {p: {"de_wilcoxon_nsig_counts_pred": 10.0 + i} for i, p in enumerate(perts)}, meta)
    r = compare(a, b)["metrics"]["de_wilcoxon_nsig_counts_pred"]
    assert r["higher_is_better"] is None and r["better"] is None and r["verdict"] == "no direction"


def test_compare_of_evaluations_with_a_ceiling_takes_the_replicate_spread(tmp_path):
    truth = _population(0, range(8))
    for name, seed in (("a", 1), ("b", 2)):
        score(_population(seed, range(8)), truth, metrics=METRICS, ceiling_splits=3).write(tmp_path / name, make_plots=False)
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    res = compare(tmp_path / "a", tmp_path / "b")
    for m in METRICS:
        r = res["metrics"][m]
        assert r["margin"] == pytest.approx(saved["metrics"][m]["ceiling_band"]["std"]) and r["margin_source"] == "replicate spread"
        assert r["verdict"] in ("negligible", "inconclusive", "a", "b")


def test_evaluations_of_different_replicates_are_compared_with_a_note(tmp_path):
    """The margin is the larger replicate spread: when A's ceiling is half-split and B's extrapolated, a note says so."""
    truth = _population(0, range(8))
    for name, seed, rep in (("a", 1, "half-split"), ("b", 2, "extrapolated"), ("c", 3, "half-split")):
        score(_population(seed, range(8)), truth, metrics=METRICS, ceiling_splits=2, replicate=rep).write(tmp_path / name, make_plots=False)
    notes = compare(tmp_path / "a", tmp_path / "b")["notes"]
    assert any("A's ceiling is the half-split replicate and B's the extrapolated one" in n for n in notes)
    assert not any("replicate and B's" in n for n in compare(tmp_path / "a", tmp_path / "c")["notes"])


def test_margin_option_on_the_command_line(evals, tmp_path, capsys):
    assert main(["compare", str(evals / "a"), str(evals / "b"), "--margin", "mse=1e9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["mse"]["margin"] == 1e9 and out["metrics"]["mse"]["verdict"] == "negligible"
    with pytest.raises(SystemExit) as e:
        main(["compare", str(evals / "a"), str(evals / "b"), "--margin", "mse=-1"])
    assert e.value.code == 2
    # one metric's margin given twice: the last replaced the first without a word (h85's hostile round)
    capsys.readouterr()
    assert main(["compare", str(evals / "a"), str(evals / "b"), "--margin", "mse=1e9", "--margin", "mse=0"]) == 2
    assert "--margin mse is given 2 times (1e+09, 0)" in capsys.readouterr().err
    assert main(["compare", str(evals / "a"), str(evals / "b"), "--margin", " mse = 1e9", "--json"]) == 0  # spaces around the name
    assert json.loads(capsys.readouterr().out)["metrics"]["mse"]["margin"] == 1e9


def test_vcc2026_scores_are_shown_side_by_side_and_averages_over_other_metrics_named(tmp_path):
    from distgen.evaluation.compare import markdown

    perts = [f"P{i}" for i in range(6)]
    folders = []
    for name, scores in (("a", {"pds_cosine": 0.6, "de_wilcoxon_lfc_nmae": 0.2}), ("b", {"pds_cosine": 0.4})):
        f = evaluation_folder(tmp_path / name, {p: {"pds_cosine": 0.5 + i / 100} for i, p in enumerate(perts)}, {"pds_cosine": None})
        avg = sum(scores.values()) / len(scores)
        (f / "summary.json").write_text(json.dumps({"profile": "vcc2026", "metrics": {"pds_cosine": 0.5},
                                                    "vcc2026": {"from_replicate": scores, "avg_score": avg}}))
        folders.append(f)
    res = compare(*folders)
    v = res["vcc2026"]
    assert v["higher_is_better"] is True and v["scores"]["pds_cosine"]["difference"] == pytest.approx(0.2)
    assert math.isnan(v["scores"]["de_wilcoxon_lfc_nmae"]["value_b"])
    assert v["scores"]["avg_score"]["value_a"] == pytest.approx(0.4) and v["scores"]["avg_score"]["value_b"] == pytest.approx(0.4)
    assert any("not comparable" in n for n in res["notes"])  # equal averages of different metrics
    assert "| pds_cosine | 0.6 | 0.4 | 0.2 |" in markdown(res)


def test_a_zero_replicate_spread_is_not_called_unrecorded(tmp_path):
    """A ceiling whose splits all gave the same mean (discrimination 1 on each) has a spread of 0, recorded: the note says that."""
    import json as _json

    perts = [f"P{i}" for i in range(12)]
    a = evaluation_folder(tmp_path / "a", {p: {"discrimination_score_l1": 0.9} for p in perts}, {"discrimination_score_l1": True})
    b = evaluation_folder(tmp_path / "b", {p: {"discrimination_score_l1": 0.5 + 0.01 * i} for i, p in enumerate(perts)},
                {"discrimination_score_l1": True})
    for f in (a, b):
        doc = _json.loads((f / "summary.json").read_text())
        doc["metrics"]["discrimination_score_l1"]["ceiling_band"] = {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0, "n_splits": 5}
        (f / "summary.json").write_text(_json.dumps(doc))
    res = compare(a, b)
    assert res["metrics"]["discrimination_score_l1"]["better"] == "a"
    said = [n for n in res["notes"] if "only statistically significant" in n]
    assert len(said) == 1 and "spread is zero" in said[0] and "every ceiling split gave the same mean" in said[0]
    assert "no replicate spread was recorded" not in said[0] and "--profile" not in said[0]


def test_metrics_that_rank_a_perturbation_among_its_panel_get_no_verdict_when_the_panels_differ(tmp_path):
    # the SAME predictions of P2..P11, scored once with the truth's 12 perturbations and once with 10 of them: the
    # discrimination score of a row is its rank among the panel, so the two differed with nothing else changed, and compare
    # gave them a paired test (and could name a winner) as if one prediction were better
    truth = _population(0, range(12))
    pred = _population(1, range(12), noise=3.0)
    names = ["mse", "discrimination_score_l1", "pearson_edistance"]
    keep = lambda c: c.subset(np.flatnonzero(~np.isin(c.conditions, ["P0", "P1"])))  # noqa: E731
    score(pred, truth, metrics=names, ceiling=False).write(tmp_path / "all", make_plots=False)
    score(keep(pred), keep(truth), metrics=names, ceiling=False).write(tmp_path / "ten", make_plots=False)
    a = pd.read_csv(tmp_path / "all" / "metrics.csv").set_index("perturbation")
    b = pd.read_csv(tmp_path / "ten" / "metrics.csv").set_index("perturbation")
    assert (a.loc[b.index, "mse"] == b["mse"]).all()  # the rows are the same predictions
    assert (a.loc[b.index, "discrimination_score_l1"] != b["discrimination_score_l1"]).any()  # not vacuous: the panel moves it
    res = compare(tmp_path / "all", tmp_path / "ten")
    for name in ("discrimination_score_l1", "pearson_edistance"):
        assert res["metrics"][name]["verdict"] == "panels differ" and res["metrics"][name]["better"] is None
    assert res["metrics"]["mse"]["verdict"] == "negligible"  # per-perturbation metrics are still paired
    assert any("different perturbation panels" in n and "discrimination_score_l1" in n and "'mse'" not in n for n in res["notes"])
    # the same panel on both sides: compared as before
    same = compare(tmp_path / "all", tmp_path / "all")
    assert same["metrics"]["discrimination_score_l1"]["verdict"] != "panels differ"
    assert not any("panels" in n for n in same["notes"])


def test_labels_in_another_unicode_form_are_named_when_they_keep_rows_apart(tmp_path):
    """Evaluations of 'café' written NFC in one and NFD in the other: 'share no perturbation (A: ['café'], B: ['café'])',
    or rows left out with a count; now the pairs are named, escaped, with the form to write."""
    import unicodedata

    from distgen.evaluation.compare import MismatchedEvaluations

    perts = ["café", "Müller", "P2", "P3", "P4", "P5"]
    nfc = {unicodedata.normalize("NFC", p): {"mse": 1.0 + i} for i, p in enumerate(perts)}
    nfd = {unicodedata.normalize("NFD", p): {"mse": 2.0 + i} for i, p in enumerate(perts)}
    a = evaluation_folder(tmp_path / "a", nfc, {"mse": False})
    b = evaluation_folder(tmp_path / "b", nfd, {"mse": False})
    res = compare(a, b)  # P2..P5 shared: compared over them, the two others named
    note = next(n for n in res["notes"] if "only in A" in n)
    assert ascii("café") in note and ascii(unicodedata.normalize("NFD", "café")) in note and "normalize('NFD'" in note
    only_forms = {k: v for k, v in nfd.items() if not k.startswith("P")}
    with pytest.raises(MismatchedEvaluations, match="Unicode form"):
        compare(evaluation_folder(tmp_path / "a2", {k: v for k, v in nfc.items() if not k.startswith("P")}, {"mse": False}),
                evaluation_folder(tmp_path / "b2", only_forms, {"mse": False}))


def test_two_run_folders_are_compared_with_what_their_settings_differ_in(tmp_path):
    """distgen compare of two `distgen run` folders said nothing of their settings: a comparison of an OT coupling at seed 1
    with the preset at seed 0, or of 20 against 200 training steps, read as the effect of the one setting meant."""
    from distgen.config import save_yaml

    rows = {f"P{i}": {"mse": 1.0 + i / 10} for i in range(4)}
    base = {"model": {"name": "generator", "backbone": {"name": "pad_transformer", "d_model": 32}, "coupling": {"name": "independent"}},
            "train": {"seed": 0, "steps": 20}, "data": {"set_size": 16}}
    variants = {
        "a": base,
        "same": base,
        "ot1": {**base, "model": {**base["model"], "coupling": {"name": "exact_ot"}}, "train": {"seed": 1, "steps": 20}},
        "mlp": {**base, "model": {**base["model"], "backbone": {"name": "mlp", "hidden": 64}}, "data": {"set_size": 8}},
    }
    for name, doc in variants.items():
        evaluation_folder(tmp_path / name / "eval", rows, {"mse": False})
        save_yaml(doc, tmp_path / name / "experiment.yaml")
    evaluation_folder(tmp_path / "files", rows, {"mse": False})  # distgen evaluate of files: no settings to compare

    def said(a, b):
        return [n for n in compare(tmp_path / a, tmp_path / b)["notes"] if "setting" in n]

    (same,) = said("a", "same")
    assert same.startswith("A and B were run with the same settings")
    (ot,) = said("a", "ot1")
    assert "2 settings" in ot and "model.coupling.name ('independent' vs 'exact_ot')" in ot and "train.seed (0 vs 1)" in ot
    assert "not of one" in ot and "training noise is part of every difference" in ot
    (mlp,) = said("a", "mlp")  # a replaced backbone is one difference, not one per parameter of either backbone
    assert "model.backbone.name ('pad_transformer' vs 'mlp')" in mlp and "d_model" not in mlp and "hidden" not in mlp
    assert "data.set_size (16 vs 8)" in mlp and "data settings differ" in mlp and "train.seed" not in mlp
    assert said("a", "files") == []


def test_runs_differing_only_in_their_progress_bars_have_the_same_settings(tmp_path):
    """``train.progress`` changes no result (``distgen sweep --json`` and ``distgen run`` of a config record it false, a
    plain run true): two such runs were said to differ in 1 setting, their difference read as that setting's effect."""
    from distgen.config import save_yaml

    rows = {f"P{i}": {"mse": 1.0 + i / 10} for i in range(4)}
    base = {"model": {"name": "generator"}, "train": {"seed": 0, "steps": 20}}
    for name, progress in (("a", True), ("b", False)):
        evaluation_folder(tmp_path / name / "eval", rows, {"mse": False})
        save_yaml({**base, "train": {**base["train"], "progress": progress}}, tmp_path / name / "experiment.yaml")
    (note,) = [n for n in compare(tmp_path / "a", tmp_path / "b")["notes"] if "setting" in n]
    assert note.startswith("A and B were run with the same settings")
