"""A sweep carries its runs' spread scores (eval/summary.json "spread") over seeds, as it carries the other metrics.

Each run of a sweep on data with several batches per held-out group computes the spread scores; until 2026-12-07 the
sweep read none of them: summary.json, summary.md and report.html had no word of the model's between-batch spread, and
a reader had to open every run's own summary (spread round 2)."""

import csv
import json

import numpy as np
import pytest
import torch

from distgen.config import save_yaml
from distgen.evaluation.report import json_text
from distgen.evaluation.spread import distinguishable_counts, spread_over_seeds, spread_scores
from distgen.pipeline.sweep import METRICS_FILE, sweep
from distgen.types import Cells


def _cells(seed, shifts, n=25, genes=4):
    g = torch.Generator().manual_seed(seed)
    xs, conds, bats = [], [], []
    for i, shift in enumerate(shifts):
        xs += [torch.randn(n, genes, generator=g) + 2.0 + shift, torch.randn(n, genes, generator=g) + shift]
        conds += ["stim"] * n + ["control"] * n
        bats += [f"d{i}"] * (2 * n)
    return Cells(torch.cat(xs), np.asarray(conds, dtype=object), tuple(f"g{i}" for i in range(genes)), None,
                 np.asarray(bats, dtype=object), "control")


TRUTH = _cells(0, (-1.5, 0.0, 1.5))


class SpreadRunner:
    """metrics.csv of one perturbation, and an eval/summary.json with the spread scores of a prediction (variant ``flat``:
    one law for every donor, spread about 0; otherwise the donors' own laws), computed by spread_scores."""

    def __call__(self, config, run, run_dir):
        shifts = (0.0, 0.0, 0.0) if "flat" in run.variant else (-1.5, 0.0, 1.5)
        pred = _cells(10 + run.seed, shifts)
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        with (run_dir / METRICS_FILE).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["perturbation", "mse"])
            w.writerow(["stim", 1.0 + 0.01 * run.seed])
        (run_dir / "eval" / "summary.json").write_text(json_text({"metrics": {}, "spread": spread_scores(pred, TRUTH)}))
        return 0


@pytest.fixture
def base(tmp_path):
    return str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))


def test_a_sweep_carries_its_runs_spread_scores_over_seeds(tmp_path, base):
    from distgen.report.sweep import load_sweep_dir, render_sweep

    sweep(base, {"description": ["good", "flat"], "train.seed": [0, 1, 2]}, tmp_path / "sw", runner=SpreadRunner(),
          metrics=["mse"], progress=False)
    summary = json.loads((tmp_path / "sw" / "summary.json").read_text())
    spread = summary["spread"]
    assert set(spread) == {"description=good", "description=flat"}
    runs = {s: json.loads((tmp_path / "sw" / "runs" / f"description=good__seed{s}" / "eval" / "summary.json").read_text())
            for s in (0, 1, 2)}
    good, flat = spread["description=good"], spread["description=flat"]
    assert good["n_seeds"] == flat["n_seeds"] == 3
    ratios = [good["seeds"][s]["spread_ratio"] for s in ("0", "1", "2")]
    assert good["mean"]["spread_ratio"] == pytest.approx(np.mean(ratios)) and good["sd"]["spread_ratio"] == pytest.approx(np.std(ratios, ddof=1))
    assert 0.6 < good["mean"]["spread_ratio"] < 1.4 and flat["mean"]["spread_ratio"] < 0.3  # the collapse shows over seeds
    assert good["seeds"]["0"]["groups"] == 1 and good["seeds"]["0"]["distinguishable"] == 1
    assert ratios == [runs[s]["spread"]["means"]["model"]["spread_ratio"] for s in (0, 1, 2)]  # each seed: the run's own mean
    text = (tmp_path / "sw" / "summary.md").read_text()
    assert "## Spread across batches (over seeds)" in text and "| description=flat | 3 |" in text
    assert text.count("| 1/1, 1/1, 1/1 |") == 2  # each seed: its one group's real batches differ beyond noise
    page = (tmp_path / "sw" / "report.html").read_text()
    assert "Spread across batches (over seeds)" in page
    assert "Spread across batches (over seeds)" in render_sweep(load_sweep_dir(tmp_path / "sw"))  # rebuilt from the folder


def test_a_sweep_without_spread_scores_says_nothing_of_them(tmp_path, base):
    class Plain(SpreadRunner):
        def __call__(self, config, run, run_dir):
            out = super().__call__(config, run, run_dir)
            (run_dir / "eval" / "summary.json").write_text(json.dumps({"metrics": {}}))
            return out

    sweep(base, {"description": ["good", "flat"], "train.seed": [0, 1]}, tmp_path / "sw", runner=Plain(), metrics=["mse"],
          progress=False)
    assert json.loads((tmp_path / "sw" / "summary.json").read_text())["spread"] == {}
    assert "Spread across" not in (tmp_path / "sw" / "summary.md").read_text()
    assert "Spread across" not in (tmp_path / "sw" / "report.html").read_text()


def test_spread_over_seeds_leaves_out_runs_without_scores_and_nan_means():
    one = {"means": {"model": {"spread_ratio": 0.5, "population_mmd2": None, "replicate_coverage": 1.0}}, "rows": {"a": {}}}
    two = {"means": {"model": {"spread_ratio": 1.5, "population_mmd2": 0.2, "replicate_coverage": 0.0}}, "rows": {"a": {}},
           "batch_test": {"distinguishable": 0}}
    out = spread_over_seeds({"v": {0: one, 1: two, 2: None}, "w": {0: None}})
    assert list(out) == ["v"] and out["v"]["n_seeds"] == 2
    assert out["v"]["mean"]["spread_ratio"] == 1.0 and out["v"]["sd"]["spread_ratio"] == pytest.approx(np.sqrt(0.5))
    assert out["v"]["mean"]["population_mmd2"] == 0.2 and np.isnan(out["v"]["sd"]["population_mmd2"])  # one value: no sd
    assert out["v"]["seeds"]["0"]["distinguishable"] is None and out["v"]["seeds"]["1"]["distinguishable"] == 0
    assert distinguishable_counts(out["v"]) == "?/1, 0/1"  # a run scored before the permutation test: unknown, not 0


def test_a_variant_whose_runs_scored_spread_in_some_seeds_only_says_how_many():
    """A run without spread scores (evaluated before they existed, or skipped by spread auto) was left out of its variant's
    mean over seeds and the table said "2" seeds where the variant has 3, the missing seed unsaid. Now ``n_runs`` counts
    the variant's finished runs and the seeds column says "2 of 3"."""
    from distgen.pipeline.aggregate import spread_seed_lines
    from distgen.report.sweep import spread_seed_section

    one = {"means": {"model": {"spread_ratio": 0.5, "population_mmd2": 0.1, "replicate_coverage": 1.0}}, "rows": {"a": {}}}
    out = spread_over_seeds({"v": {0: one, 1: one, 2: None}, "w": {0: one}})
    assert out["v"]["n_seeds"] == 2 and out["v"]["n_runs"] == 3 and out["w"]["n_runs"] == 1
    lines = "\n".join(spread_seed_lines(out))
    assert "| v | 2 of 3 |" in lines and "| w | 1 |" in lines
    assert ">2 of 3<" in spread_seed_section(out).body
