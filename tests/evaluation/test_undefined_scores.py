"""Scores that are undefined say so: discrimination with one condition, normalised scores with their reason."""

import json
import math

import numpy as np
import torch

from distgen.evaluation.calibration import summarise
from distgen.evaluation.score import score
from distgen.evaluation.suite import MetricTable
from distgen.types import Cells

GENES = tuple(f"g{i}" for i in range(6))
RANKED = ("discrimination_score_l1", "discrimination_score_cosine", "pds_l1")


def _cells(conditions: list[str], shift: float, seed: int, n: int = 20) -> Cells:
    g = torch.Generator().manual_seed(seed)
    rows, labels = [torch.rand(n, len(GENES), generator=g) + 1.0], ["control"] * n
    for k, c in enumerate(conditions):
        effect = torch.zeros(len(GENES))
        effect[k % len(GENES)] = shift * (k + 1)
        rows.append(torch.rand(n, len(GENES), generator=g) + 1.0 + effect)
        labels += [c] * n
    return Cells(torch.cat(rows), np.array(labels, dtype=object), GENES)


def test_one_condition_gives_nan_discrimination_with_the_reason_everywhere(tmp_path):
    truth, pred = _cells(["A"], 2.0, 0), _cells(["A"], 1.5, 1)
    ref = _cells(["A"], 0.0, 2)  # a no-change baseline
    report = score(pred, truth, {"control": ref}, metrics=[*RANKED, "mse"])
    for name in RANKED:
        assert math.isnan(report.table.values[name][0])
        assert "fewer than 2 conditions" in report.table.reasons[name]["A"]
        assert math.isnan(report.references["control"].values[name][0])
        assert report.ceiling is not None and math.isnan(report.ceiling.values[name][0])
        row = report.metrics[name]
        assert math.isnan(row["normalised"]) and "fewer than 2 conditions" in row["normalised_note"]
    assert math.isfinite(report.table.values["mse"][0])  # per-condition metrics stay defined
    summary = report.write(tmp_path, make_plots=False)
    md = (tmp_path / "summary.md").read_text()
    assert "## Undefined scores" in md and "discrimination_score_l1: normalised score NaN: model score undefined (fewer than 2" in md
    # the ceiling's nan has its own reason too (the normalised note names only the model's)
    assert summary["metrics"]["discrimination_score_l1"]["ceiling_note"].startswith("fewer than 2 conditions")
    assert "- discrimination_score_l1, ceiling: fewer than 2 conditions" in md
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["metrics"]["pds_l1"]["normalised"] is None and "fewer than 2" in saved["metrics"]["pds_l1"]["normalised_note"]
    assert summary["metrics"]["mse"]["normalised_note"] == "" or "ceiling" in summary["metrics"]["mse"]["normalised_note"]


def test_two_conditions_rank_again():
    truth, pred = _cells(["A", "B"], 2.0, 0), _cells(["A", "B"], 2.0, 1)
    report = score(pred, truth, metrics=list(RANKED))
    for name in RANKED:
        assert all(math.isfinite(v) for v in report.table.values[name])


def test_normalised_score_reasons():
    def table(v: float, reason: str = "") -> MetricTable:
        return MetricTable(perts=("A",), values={"mse": [v]}, reasons={"mse": {"A": reason}} if reason else {"mse": {}})

    # strongest baseline already beyond the ceiling (mse: lower is better)
    row = summarise(table(0.5), {"mean": table(0.1), "control": table(0.9)}, table(0.2))["mse"]
    assert math.isnan(row["normalised"]) and row["strongest_baseline"] == "mean"
    assert "strongest baseline (mean: 0.1) is at or beyond the ceiling (0.2)" in row["normalised_note"]
    # ceiling undefined, with its own reason
    row = summarise(table(0.5), {"mean": table(0.9)}, table(math.nan, "the half-split has no cells"))["mse"]
    assert row["normalised_note"] == "ceiling undefined (the half-split has no cells)"
    assert summarise(table(0.5), {"mean": table(0.9)}, None)["mse"]["normalised_note"] == "ceiling undefined (not computed)"
    # defined: no note
    row = summarise(table(0.5), {"mean": table(0.9)}, table(0.1))["mse"]
    assert row["normalised"] == (0.5 - 0.9) / (0.1 - 0.9) and row["normalised_note"] == ""


def test_a_prediction_with_nan_or_inf_cells_is_warned_about_not_only_counted():
    """Such a perturbation's metrics are NaN and left out of the means (which can flatter a model that breaks on the hard
    ones); before, only the summary's NaN column and a note said it, nothing on stderr."""
    import pytest

    from distgen.errors import DistgenWarning

    truth, pred = _cells(["A", "B", "C"], 2.0, 0), _cells(["A", "B", "C"], 1.5, 1)
    x = pred.X.clone()
    x[int(np.flatnonzero(pred.conditions == "B")[0]), 2] = float("inf")
    x[int(np.flatnonzero(pred.conditions == "C")[1]), 0] = float("nan")
    broken = Cells(x, pred.conditions, GENES)
    with pytest.warns(DistgenWarning, match=r"prediction holds NaN or inf values in 2 perturbation\(s\) \(B, C\).*left out of every mean"):
        report = score(broken, truth, metrics=["mse"])
    values = dict(zip(report.table.perts, report.table.values["mse"]))
    assert math.isnan(values["B"]) and math.isnan(values["C"]) and math.isfinite(values["A"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)
        score(pred, truth, metrics=["mse"])  # a finite prediction: no warning
