"""A sweep whose variants were scored on other real data (other genes, other held-out cells) names no side.

A grid over ``data.hvg`` or ``data.split`` gives each variant another truth: its ``mse`` is over other genes or other
cells. ``distgen compare`` refuses such a pair; the sweep paired the rows by label and named a winner without a word
(comparison round, 2026-12-06)."""

import csv
import json

import numpy as np
import pytest

from distgen.config import save_yaml
from distgen.pipeline.aggregate import TRUTHS_DIFFER, truth_mismatch, truth_record
from distgen.pipeline.sweep import METRICS_FILE, sweep

PERTS = [f"P{i}" for i in range(10)]


class TruthRunner:
    """Writes metrics.csv (variant ``bad`` worse by 0.5 on mse everywhere) and an eval/summary.json recording what the run
    was scored on: ``n_genes`` and per-condition digests of the real cells, from ``truth(run)``."""

    def __init__(self, truth):
        self.truth = truth

    def __call__(self, config, run, run_dir):
        rng = np.random.default_rng(run.seed)
        shift = 0.5 if "bad" in run.variant else 0.0
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "mse"])
            for p in PERTS:
                w.writerow([p, 1.0 + shift + rng.normal(0, 0.01)])
        n_genes, tag = self.truth(run)
        (run_dir / "eval" / "summary.json").write_text(json.dumps(
            {"n_genes": n_genes, "truth_digests": {p: f"{p}-{tag}" for p in PERTS}, "metrics": {}}))
        return 0


@pytest.fixture
def base(tmp_path):
    return str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))


GRID = {"description": ["good", "bad"], "train.seed": [0, 1, 2]}


@pytest.mark.parametrize("truth, said", [
    (lambda run: (48 if "bad" in run.variant else 32, "x"), "scored on 48 genes, the reference on 32 (run seed 0)"),
    (lambda run: (32, run.variant), "10 of 10 shared condition(s) scored on other real cells"),
])
def test_a_variant_scored_on_another_truth_gets_no_side(tmp_path, base, capsys, truth, said):
    res = sweep(base, GRID, tmp_path / "sw", runner=TruthRunner(truth), metrics=["mse"], progress=False)
    (c,) = res.comparisons
    assert c.p_value < 0.05 and c.better == "reference"  # the test is as before: the rows differ by 0.5
    assert c.verdict == c.verdict_alone == TRUTHS_DIFFER  # was "reference": a winner over rows of other truths
    summary = json.loads((tmp_path / "sw" / "summary.json").read_text())
    assert said in summary["truths_differ"]["description=bad"]
    assert summary["comparisons"][0]["verdict"] == TRUTHS_DIFFER
    text = (tmp_path / "sw" / "summary.md").read_text()
    assert "## Variants scored on other real data" in text and said in text
    assert "Variants scored on other real data" in (tmp_path / "sw" / "report.html").read_text()
    assert said in capsys.readouterr().err


def test_variants_scored_on_one_truth_are_compared_as_before(tmp_path, base):
    res = sweep(base, GRID, tmp_path / "sw", runner=TruthRunner(lambda run: (32, "same")), metrics=["mse"], progress=False)
    (c,) = res.comparisons
    assert c.verdict == "reference"
    assert json.loads((tmp_path / "sw" / "summary.json").read_text())["truths_differ"] == {}
    assert "other real data" not in (tmp_path / "sw" / "summary.md").read_text()


def test_truth_mismatch_reads_what_each_run_recorded():
    one = truth_record({"n_genes": 33, "truth_digests": {"A": "1", "B": "2"}})
    assert truth_mismatch({"v": {0: one}, "r": {0: one}}, "v", "r") is None
    assert truth_mismatch({"v": {0: one}, "r": {0: truth_record(None)}}, "v", "r") is None  # nothing recorded: nothing said
    old = truth_record({"n_genes": 33})  # an evaluation from before truth digests: the genes are still compared
    assert truth_mismatch({"v": {0: old}, "r": {0: one}}, "v", "r") is None
    other = truth_record({"n_genes": 33, "truth_digests": {"A": "1", "B": "3", "C": "4"}})
    assert "1 of 2 shared condition(s)" in truth_mismatch({"v": {0: other}, "r": {0: one}}, "v", "r")
    profile = truth_record({"n_genes": 33, "profile": "celleval2"})
    assert "profile 'celleval2'" in truth_mismatch({"v": {0: profile}, "r": {0: one}}, "v", "r")


@pytest.mark.parametrize("sa, sb", [
    ({"n_genes": 32}, {"n_genes": 48}),
    ({"n_genes": 32, "profile": "celleval2"}, {"n_genes": 32}),
    ({"n_genes": 32, "no_target_genes": True}, {"n_genes": 32, "no_target_genes": False}),
    ({"n_genes": 32, "truth_digests": {"A": "1"}}, {"n_genes": 32, "truth_digests": {"A": "2"}}),
    ({"n_genes": 32, "truth_digests": {"A": "1"}}, {"n_genes": 32, "truth_digests": {"A": "1"}}),
    ({"n_genes": 32}, {"n_genes": None, "no_target_genes": None}),
])
def test_the_sweep_and_compare_refuse_the_same_pairs(sa, sb):
    """One place (``compare.scored_apart``, ``other_truth_cells``) owns what makes two evaluations' rows other observations:
    the sweep's ``truth_mismatch`` said it in its own copy of ``check_pairable``'s checks, which could drift."""
    from distgen.evaluation.compare import MismatchedEvaluations, check_pairable

    rows = {"row_cells_real": {}, "row_contexts": {}}
    try:
        check_pairable("A", "B", {**sa, **rows}, {**sb, **rows}, ["A"])
        refused = False
    except MismatchedEvaluations:
        refused = True
    said = truth_mismatch({"v": {0: truth_record(sa)}, "r": {0: truth_record(sb)}}, "v", "r")
    assert (said is not None) == refused
