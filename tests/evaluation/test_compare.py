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
