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


def test_compare_command_writes_json_and_markdown(evals, tmp_path, capsys):
    assert main(["compare", str(evals / "a"), str(evals / "b"), "--out", str(tmp_path)]) == 0
    assert "| mse | lower |" in capsys.readouterr().out
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["n_shared"] == 10 and "Wilcoxon" in (tmp_path / "compare.md").read_text()


def test_compare_refuses_a_folder_without_an_evaluation(evals, tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluation"):
        compare(evals / "a", tmp_path)


# ---------------------------------------------------------------------------------------------- hand-written folders
def _folder(path, rows, metrics_meta):
    """An evaluation folder with ``rows`` ({perturbation: {metric: value}}) as distgen evaluate writes it."""
    path.mkdir(parents=True)
    names = list(metrics_meta)
    lines = ["perturbation,context,n_cells_real,n_cells_pred," + ",".join(names)]
    for p, vals in rows.items():
        lines.append(f"{p},,10,10," + ",".join(repr(float(vals[n])) for n in names))
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    (path / "summary.json").write_text(json.dumps({"metrics": {n: {"higher_is_better": h} for n, h in metrics_meta.items()}}))
    return path


def test_one_value_metrics_are_compared_once_without_interval_or_test(tmp_path):
    perts = [f"P{i}" for i in range(7)]
    # pearson_edistance is one number for the evaluation, written on every row (A: 0.5, B: 0.2)
    a = _folder(tmp_path / "a", {p: {"mse": 1.0 + i, "pearson_edistance": 0.5} for i, p in enumerate(perts)},
                {"mse": False, "pearson_edistance": True})
    b = _folder(tmp_path / "b", {p: {"mse": 1.0 + i, "pearson_edistance": 0.2} for i, p in enumerate(perts)},
                {"mse": False, "pearson_edistance": True})
    r = compare(a, b)["metrics"]["pearson_edistance"]
    assert r["per_perturbation"] is False and r["n"] == 1
    assert r["value_a"] == 0.5 and r["value_b"] == 0.2 and r["mean_difference"] == pytest.approx(0.3)
    assert all(math.isnan(v) for v in r["ci"]) and math.isnan(r["wilcoxon_p"])  # was a zero-width CI and p = 0.0156
    assert r["better"] is None and r["verdict"] == "one value"
    from distgen.evaluation.compare import markdown

    md = markdown(compare(a, b))
    assert "| pearson_edistance | higher | 0.5 | 0.2 | 0.3 | - | - | one value* | - |" in md and "not paired observations" in md


def test_a_winner_needs_a_significant_paired_test(tmp_path):
    perts = [f"P{i}" for i in range(7)]
    base = {p: 0.1 + 0.01 * i for i, p in enumerate(perts)}
    a = _folder(tmp_path / "a", {p: {"mse": v + 2e-9} for p, v in base.items()}, {"mse": False})  # a rounding difference
    b = _folder(tmp_path / "b", {p: {"mse": v} for p, v in base.items()}, {"mse": False})
    r = compare(a, b)["metrics"]["mse"]
    assert r["mean_difference"] > 0 and r["wilcoxon_p"] < 0.05  # every pair differs the same way: significant
    assert r["better"] == "b" and r["verdict"] == "b"
    mixed = {p: v + (1e-3 if i % 2 else -1e-3) for i, (p, v) in enumerate(base.items())}
    mixed["P0"] += 1e-4  # mean difference slightly positive, the test far from rejecting
    c = _folder(tmp_path / "c", {p: {"mse": v} for p, v in mixed.items()}, {"mse": False})
    r = compare(c, b)["metrics"]["mse"]
    assert r["mean_difference"] != 0 and r["wilcoxon_p"] > 0.5
    assert r["better"] is None and r["verdict"] == "no difference"
    assert "no difference" in __import__("distgen.evaluation.compare", fromlist=["markdown"]).markdown(compare(c, b))


def test_means_are_taken_over_the_rows_of_the_difference(tmp_path):
    perts = [f"P{i}" for i in range(6)]
    va = {p: float(i) for i, p in enumerate(perts)}
    vb = {p: float(i) + 1.0 for i, p in enumerate(perts)}
    va["P5"] = math.nan  # A failed on P5, where B has a large value
    vb["P5"] = 100.0
    a = _folder(tmp_path / "a", {p: {"mse": v} for p, v in va.items()}, {"mse": False})
    b = _folder(tmp_path / "b", {p: {"mse": v} for p, v in vb.items()}, {"mse": False})
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
