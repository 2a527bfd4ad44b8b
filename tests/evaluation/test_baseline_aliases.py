"""Baselines with the same predictions for every evaluated condition are scored and shown once, as aliases."""

import json

import numpy as np
import torch

from distgen.evaluation.aliases import distinct_references
from distgen.evaluation.score import score
from distgen.pipeline.references import cells_references
from distgen.types import Cells

GENES = tuple(f"g{i}" for i in range(8))
BASELINES = ("control", "mean_perturbation", "additive", "linear")


def _cells(effects: dict[str, int], seed: int, n: int = 24) -> Cells:
    """Controls plus one group per condition, whose effect raises gene ``effects[c]``."""
    g = torch.Generator().manual_seed(seed)
    rows, labels = [torch.rand(n, len(GENES), generator=g) + 1.0], ["control"] * n
    for c, gene in effects.items():
        shift = torch.zeros(len(GENES))
        shift[gene] = 1.5
        rows.append(torch.rand(n, len(GENES), generator=g) + 1.0 + shift)
        labels += [c] * n
    return Cells(torch.cat(rows), np.array(labels, dtype=object), GENES)


def test_drugs_without_target_genes_fold_linear_into_mean_perturbation(tmp_path):
    train = _cells({"drugA": 2, "drugB": 3, "drugC": 4}, 0)
    truth = _cells({"drugA": 2, "drugB": 3}, 1)
    refs, _ = cells_references(train, truth, BASELINES)
    distinct, aliases = distinct_references(refs)
    assert aliases == {"linear": {"same_as": "mean_perturbation", "reason": aliases["linear"]["reason"]}}
    assert "no target gene" in aliases["linear"]["reason"]
    assert list(distinct) == ["control", "mean_perturbation", "additive"]

    pred = _cells({"drugA": 2, "drugB": 3}, 2)
    report = score(pred, truth, refs, metrics=["mse", "pearson_delta"])
    assert set(report.references) == {"control", "mean_perturbation", "additive"}
    assert all(set(r["baselines"]) == {"control", "mean_perturbation", "additive"} for r in report.metrics.values())
    assert any(n.startswith("baseline linear = mean_perturbation") for n in report.summary["notes"])
    report.write(tmp_path, make_plots=False)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["baseline_aliases"]["linear"]["same_as"] == "mean_perturbation"
    assert "mean_perturbation (= linear)" in (tmp_path / "summary.md").read_text()


def test_unseen_gene_folds_additive_into_control():
    train = _cells({"g0": 0, "g2": 2, "g3": 3}, 0)
    truth = _cells({"g5": 5}, 1)  # a knock-out never seen in training
    refs, _ = cells_references(train, truth, BASELINES)
    distinct, aliases = distinct_references(refs)
    assert aliases["additive"]["same_as"] == "control" and "seen alone" in aliases["additive"]["reason"]
    assert "additive" not in distinct and "control" in distinct


def test_distinct_baselines_stay_separate():
    train = _cells({"g0": 0, "g2": 2, "g3": 3}, 0)
    truth = _cells({"g0": 0, "g2": 2}, 1)  # seen singles: additive = their own effects, linear = a ridge fit
    refs, _ = cells_references(train, truth, BASELINES)
    distinct, aliases = distinct_references(refs)
    assert aliases == {} and list(distinct) == list(BASELINES)
