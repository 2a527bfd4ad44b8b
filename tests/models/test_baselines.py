"""Closed-form baselines on a table with a known additive ground truth, and the half-split ceiling."""

import math

import pytest
import torch

from distgen.evaluation.ceiling import half_split, spearman_brown
from distgen.models import models
from distgen.testing.fixtures import tiny_table
from distgen.types import PAD, CellTable, ConditionLabels, DataInfo


def _means(table):
    x, pert = table.X.double(), table.labels.perturbation
    keys = [tuple(int(a) for a in r if a >= 0) for r in pert]
    out = {}
    for k in set(keys):
        out[k] = x[[i for i, kk in enumerate(keys) if kk == k]].mean(0)
    return out


def _predict(model, table, conds):
    ctrl = table.X[table.is_control][None].expand(len(conds), -1, -1)
    mask = torch.ones(ctrl.shape[:2], dtype=torch.bool)
    out = model.predict(ctrl, mask, ConditionLabels.make(conds))
    return out.double().mean(1), ctrl.double().mean(1)


def test_control_mean_and_additive_follow_their_definitions():
    table = tiny_table(n_per_condition=8)
    m = _means(table)
    d = {k: v - m[()] for k, v in m.items() if k}
    add = models.get("additive")().fit(table)
    pred, ctrl = _predict(add, table, [[0, 1], [2], [PAD]])
    torch.testing.assert_close(pred[0] - ctrl[0], d[(0,)] + d[(1,)])
    torch.testing.assert_close(pred[1] - ctrl[1], d[(2,)])
    torch.testing.assert_close(pred[2], ctrl[2])
    assert add.can_predict(["G0", "G3"]) == [True, False]  # G3 never seen alone

    mean = models.get("mean_perturbation")().fit(table)
    pred, ctrl = _predict(mean, table, [[3], [PAD]])
    torch.testing.assert_close(pred[0] - ctrl[0], torch.stack(list(d.values())).mean(0))
    torch.testing.assert_close(pred[1], ctrl[1])


def test_additive_recovers_an_additive_truth():
    table = tiny_table(n_per_condition=200)
    add = models.get("additive")().fit(table)
    pred, _ = _predict(add, table, [[0, 1]])
    truth = _means(table)[(0, 1)]
    unclipped = truth > 1.0  # the fixture clamps expression at 0, which breaks additivity there
    assert unclipped.sum() >= 6
    assert (pred[0] - truth)[unclipped].abs().max() < 0.15  # sampling noise only


def _single_table(n=30, g=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    info = DataInfo(genes=tuple(f"G{i}" for i in range(g)), perturbations=("G0", "G1", "G2", "G3", "G4"))
    effects = torch.randn(4, g, generator=gen)
    xs, perts = [], []
    for c in [-1, 0, 1, 2, 3]:
        xs.append(torch.rand(n, g, generator=gen) + 2 + (effects[c] if c >= 0 else 0))
        perts += [[c]] * n
    pert = torch.tensor(perts)
    labels = ConditionLabels(pert, (pert >= 0).float(), torch.zeros(len(pert), dtype=torch.long), torch.zeros(len(pert), dtype=torch.long))
    return CellTable(torch.cat(xs), labels, info)


def test_linear_reproduces_training_effects_without_ridge_and_predicts_unseen_genes():
    table = _single_table()
    m = _means(table)
    lin = models.get("linear")(n_components=4, ridge=0.0).fit(table)
    pred, ctrl = _predict(lin, table, [[0], [1], [2], [3], [4]])
    for c in range(4):
        torch.testing.assert_close(pred[c] - ctrl[c], m[(c,)] - m[()], atol=1e-6, rtol=1e-6)
    assert torch.isfinite(pred[4]).all()  # G4 unseen as a perturbation, but a measured gene
    assert lin.can_predict(["G4", "NOT_A_GENE"]) == [True, False]


def test_linear_with_ridge_shrinks_towards_the_mean_effect():
    table = _single_table()
    m = _means(table)
    b = torch.stack([m[(c,)] - m[()] for c in range(4)]).mean(0)
    heavy = models.get("linear")(n_components=4, ridge=1e6).fit(table)
    pred, ctrl = _predict(heavy, table, [[0]])
    torch.testing.assert_close(pred[0] - ctrl[0], b, atol=1e-3, rtol=1e-3)


def test_half_split_is_disjoint_and_balanced():
    codes = torch.tensor([0] * 7 + [1] * 4 + [2] * 1)
    a, b = half_split(codes, 0)
    assert set(a.tolist()).isdisjoint(b.tolist())
    for g, h in ((0, 3), (1, 2), (2, 0)):
        assert (codes[a] == g).sum() == h and (codes[b] == g).sum() == h
    assert spearman_brown(0.5) == pytest.approx(2 / 3) and math.isnan(spearman_brown(-0.2))


def test_every_fitted_baseline_refuses_to_predict_before_fit():
    """An unfitted additive baseline returned the controls as every prediction (no effects learnt) without a word."""
    table = tiny_table()
    control = table.X[table.is_control][:4][None]
    mask = torch.ones(1, 4, dtype=torch.bool)
    labels = table.labels.index(torch.tensor([int(torch.nonzero(~table.is_control)[0])]))
    for name in ("additive", "linear", "mean_perturbation", "noncontrol_mean", "matching_mean"):
        with pytest.raises(RuntimeError, match=rf"{name}: call fit\(train\) before predict"):
            models.get(name)().predict(control, mask, labels)


@pytest.mark.parametrize("name", ["additive", "linear", "matching_mean", "mean_perturbation", "noncontrol_mean"])
def test_integer_control_cells_get_the_whole_shift(name):
    """Integer controls (counts) are shifted in float32: the shift was cast to the controls' dtype and truncated."""
    table = tiny_table(n_per_condition=8)
    model = models.get(name)().fit(table)
    ctrl = table.X[table.is_control][None].expand(2, -1, -1)
    mask = torch.ones(ctrl.shape[:2], dtype=torch.bool)
    labels = ConditionLabels.make([[0], [PAD]])
    as_int = ctrl.round().to(torch.int64)
    want = model.predict(as_int.float(), mask, labels)
    got = model.predict(as_int, mask, labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
    assert not torch.equal(got[0], got[0].round())  # a fractional shift, kept
