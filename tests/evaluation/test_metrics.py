"""Metric definitions on hand-built inputs (expected values from the formulas, not the code)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics import PerturbationEval, metrics
from distgen.evaluation.suite import run_metrics


def _data(pred_means, real_means, ctrl_pred=0.0, ctrl_real=0.0, n=4, genes=None, perts=None):
    """Cells = mean +- 0.1 (two of each), so pseudobulk means are exact."""
    pred_means, real_means = torch.as_tensor(pred_means, dtype=torch.float64), torch.as_tensor(real_means, dtype=torch.float64)
    p, g = real_means.shape
    jitter = torch.tensor([0.1, -0.1] * (n // 2), dtype=torch.float64)[:, None]

    def pop(means, ctrl):
        x = torch.cat([m[None] + jitter for m in means])
        return Population(X=x, offsets=torch.arange(p + 1) * n, control=torch.full((6, g), float(ctrl), dtype=torch.float64) + torch.tensor([0.1, -0.1] * 3, dtype=torch.float64)[:, None])

    genes = genes or tuple(f"g{i}" for i in range(g))
    perts = perts or tuple(f"g{i}" for i in range(p))
    return EvalData(real=pop(real_means, ctrl_real), pred=pop(pred_means, ctrl_pred), perts=perts,
                    targets=tuple((q,) for q in perts), genes=genes)


def test_pseudobulk_errors_and_pearson_follow_their_formulas():
    real = [[1.0, 2.0, 0.0, 3.0], [0.5, 0.0, 1.0, 1.0]]
    pred = [[1.5, 1.0, 0.0, 2.0], [0.5, 0.5, 2.0, 1.0]]
    d = _data(pred, real, ctrl_pred=0.5, ctrl_real=0.0)
    val = lambda name, **kw: metrics.get(name)(**kw).compute(d).values.numpy()  # noqa: E731
    r, p = np.array(real), np.array(pred)
    np.testing.assert_allclose(val("mse"), ((p - r) ** 2).mean(1))
    np.testing.assert_allclose(val("mae"), np.abs(p - r).mean(1))
    np.testing.assert_allclose(val("mse_delta"), (((p - 0.5) - r) ** 2).mean(1))
    np.testing.assert_allclose(val("mae_delta", control="real"), np.abs(p - r).mean(1))
    np.testing.assert_allclose(val("pearson_delta"), [pearsonr(p[i] - 0.5, r[i]).statistic for i in range(2)])
    r2 = [1 - ((r[i] - p[i]) ** 2).sum() / ((r[i] - r[i].mean()) ** 2).sum() for i in range(2)]
    np.testing.assert_allclose(val("r2"), r2)


def test_delta_conventions_differ_when_the_predicted_controls_are_shifted():
    real = [[1.0, 2.0, 0.0, 3.0]]
    d = _data([[1.3, 2.3, 0.3, 3.3]], real, ctrl_pred=0.3)
    own = metrics.get("mse_delta")().compute(d).values.item()
    realctrl = metrics.get("mse_delta")(control="real").compute(d).values.item()
    assert own == pytest.approx(0.0, abs=1e-12) and realctrl == pytest.approx(0.09)


def test_discrimination_score_ranks_own_effect():
    real = torch.eye(4) * 3
    pred = real.clone()
    pred[2] = real[3]  # perturbation 2 predicted with 3's effect: rank 1 of 4 -> 0.75 at best
    d = _data(pred, real)
    for name in ("discrimination_score_l1", "discrimination_score_l2", "discrimination_score_cosine"):
        v = metrics.get(name)(exclude="none").compute(d).values
        assert v[0] == 1.0 and v[1] == 1.0 and v[3] == 1.0
        assert v[2] <= 0.75
    # excluding the target gene (here, the only informative gene) makes them indistinguishable
    v = metrics.get("discrimination_score_l1")().compute(d).values
    assert (v < 1.0).any()


def test_single_perturbation_call_and_contract_shape():
    g = torch.Generator().manual_seed(0)
    real, ctrl = torch.rand(10, 5, generator=g), torch.rand(12, 5, generator=g)
    ev = PerturbationEval(pred=real + 0.5, real=real, control_real=ctrl, control_pred=ctrl)
    assert metrics.get("mse")()(ev) == pytest.approx(0.25, rel=1e-6)
    assert math.isnan(metrics.get("discrimination_score_l1")()(ev))  # a rank among one condition says nothing


def test_distributional_metrics_are_near_zero_for_identical_cells_and_grow_with_shift():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(2, 30, 6, generator=g, dtype=torch.float64)
    d_same = _data(real.mean(1), real.mean(1))
    d_same.real.X = real.reshape(60, 6)
    d_same.pred.X = real.reshape(60, 6).clone()
    d_same.real.offsets = d_same.pred.offsets = torch.tensor([0, 30, 60])
    shifted = EvalData(real=d_same.real, pred=Population(d_same.pred.X + 1.0, d_same.pred.offsets, d_same.pred.control),
                       perts=d_same.perts, targets=d_same.targets, genes=d_same.genes)
    for name in ("mmd", "edistance", "edistance_sq", "w2", "sinkhorn"):
        same = metrics.get(name)().compute(d_same).values
        far = metrics.get(name)().compute(shifted).values
        assert (same.abs() < 1e-6).all() or name == "mmd", (name, same)
        assert (far > same + 1e-3).all(), name
    w2 = metrics.get("w2")().compute(shifted).values
    np.testing.assert_allclose(w2.numpy(), math.sqrt(6), rtol=1e-6)  # a pure translation by 1 in 6 dims


def test_suite_reports_nan_with_reason_for_invalid_perturbations():
    d = _data([[1.0, 2.0, 0.5], [0.0, 1.0, 2.0]], [[1.0, 2.5, 0.5], [0.0, 1.0, 2.5]])
    d.invalid[1] = "prediction contains NaN"
    t = run_metrics(d, ["mse", "pearson_delta", "mmd"])
    assert not math.isnan(t.values["mse"][0]) and math.isnan(t.values["mse"][1])
    assert t.reasons["mse"]["g1"] == "prediction contains NaN"
    rows = t.rows()
    assert rows[1]["nan_reasons"].startswith("mse: prediction contains NaN")


def test_mmd_is_undefined_with_a_reason_when_the_real_cells_are_identical():
    """The median-heuristic bandwidth of identical real cells is 0 (clamped to 1e-12): every prediction but an exact copy
    scored 2, the kernel's maximum, whether it missed by 0.1 or by 100. Now NaN with the reason; other perturbations keep
    their value."""
    d = _data([[1.0, 2.0, 0.5], [0.0, 1.0, 2.0]], [[1.0, 2.5, 0.5], [0.0, 1.0, 2.5]])
    real = d.real.X.clone()
    real[:4] = torch.tensor([1.0, 2.5, 0.5], dtype=torch.float64)  # perturbation g0: four identical real cells
    d.real.X = real
    result = metrics.get("mmd")().compute(d)
    assert math.isnan(float(result.values[0])) and "identical" in result.reasons[0]
    assert math.isfinite(float(result.values[1])) and 1 not in result.reasons
    for name in ("edistance", "w2"):  # distances without a bandwidth stay defined there
        assert math.isfinite(float(metrics.get(name)().compute(d).values[0]))
