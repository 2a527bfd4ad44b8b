"""Systema's must-report baselines: ``noncontrol_mean`` (mean of all perturbed cells) and ``matching_mean`` (opt-in)."""

import numpy as np
import pytest
import torch

from distgen.models import models
from distgen.pipeline.references import BASELINE_ROLES, DEFAULT_BASELINES, cells_references
from distgen.types import Cells, vocabulary

GENES = [f"g{i}" for i in range(5)]


def _train(rng):
    """Control cells and singles A (30 cells), B (5 cells), C (12 cells) with distinct effects, one context."""
    groups = {"control": (60, 0.0), "A": (30, 1.0), "B": (5, -2.0), "C": (12, 0.5)}
    conds, rows = [], []
    for cond, (n, shift) in groups.items():
        base = np.arange(5, dtype=float) + shift * np.array([1.0, 0.0, 2.0, 0.0, -1.0])
        rows.append(base + rng.normal(0, 0.3, (n, 5)))
        conds += [cond] * n
    return Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, GENES)


def _fit(name, cells):
    info = vocabulary([cells, Cells(cells.X[:2], ["A+B", "D"], GENES)])  # the vocabulary knows the evaluated atoms
    return models.get(name)().fit(cells.to_table(info)), info


def _predict(model, info, cells, condition):
    ctrl = cells.controls().X[None]
    labels = Cells(ctrl[0], [condition] * ctrl.shape[1], GENES).labels(info)
    return model.predict(ctrl, torch.ones(1, ctrl.shape[1], dtype=torch.bool), labels)[0]


def test_noncontrol_mean_predicts_the_mean_of_all_perturbed_cells():
    train = _train(np.random.default_rng(0))
    model, info = _fit("noncontrol_mean", train)
    x = train.X.numpy().astype(np.float64)
    perturbed = x[~train.is_control].mean(0)  # every perturbed cell weighted equally
    for cond in ("A", "A+B", "D"):
        got = _predict(model, info, train, cond).double().mean(0).numpy()
        np.testing.assert_allclose(got, perturbed, atol=1e-5)
    per_perturbation = np.mean([x[train.conditions == c].mean(0) for c in "ABC"], axis=0)
    assert np.abs(perturbed - per_perturbation).max() > 0.2  # not the mean_perturbation baseline on these counts
    np.testing.assert_allclose(_predict(model, info, train, "control").numpy(), train.controls().X.numpy())


def test_matching_mean_averages_the_single_perturbations_of_a_combination():
    train = _train(np.random.default_rng(1))
    model, info = _fit("matching_mean", train)
    x = train.X.numpy().astype(np.float64)
    centroid = {c: x[train.conditions == c].mean(0) for c in "ABC"}
    got = _predict(model, info, train, "A+B").double().mean(0).numpy()
    np.testing.assert_allclose(got, (centroid["A"] + centroid["B"]) / 2, atol=1e-5)
    np.testing.assert_allclose(_predict(model, info, train, "C").double().mean(0).numpy(), centroid["C"], atol=1e-5)
    # an atom never seen alone falls back to the non-control mean, and is reported as not predictable
    np.testing.assert_allclose(_predict(model, info, train, "D").double().mean(0).numpy(), x[~train.is_control].mean(0), atol=1e-5)
    assert model.can_predict(["A", "D"]) == [True, False]


def test_noncontrol_mean_is_a_default_reference_and_matching_mean_opt_in():
    assert "noncontrol_mean" in DEFAULT_BASELINES and "matching_mean" not in DEFAULT_BASELINES
    assert BASELINE_ROLES["noncontrol_mean"] == BASELINE_ROLES["matching_mean"] == "negative"
    train = _train(np.random.default_rng(2))
    n = int(train.is_control.sum())  # as many truth cells as controls: the reference shifts every control cell once
    # the perturbed truth cells are not training cells (cells_references refuses those): the controls moved a little
    truth = Cells(torch.cat([train.controls().X + 1e-3, train.controls().X]), ["A+B"] * n + ["control"] * n, GENES)
    refs, _ = cells_references(train, truth, ["noncontrol_mean", "matching_mean"])
    assert set(refs) == {"noncontrol_mean", "matching_mean"}
    x = train.X.numpy().astype(np.float64)
    shift = refs["noncontrol_mean"].perturbed().X.double().mean(0) - truth.controls().X.double().mean(0)
    np.testing.assert_allclose(shift.numpy(), x[~train.is_control].mean(0) - x[train.is_control].mean(0), atol=1e-4)


def test_untrained_baselines_say_so():
    for name in ("noncontrol_mean", "matching_mean"):
        with pytest.raises(RuntimeError, match="fit"):
            models.get(name)().predict(torch.zeros(1, 2, 5), torch.ones(1, 2, dtype=torch.bool), None)
