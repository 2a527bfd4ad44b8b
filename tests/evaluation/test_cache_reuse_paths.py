"""Every path that scores another prediction next to a model's ``EvalData`` scores it afresh (no stale cached result).

The model's ``EvalData`` caches its DE tables, the ten overlap rankings (``de/top_rank/...``), the E-distances and
cell-eval2's prepared DE (``ce2/de/...``, both sides in one key) and profiles. A baseline (``reference_data``), each of the
ceiling's splits (``ceiling_data``), each interpolated duplicate (``interpolated_duplicate_data``) and each context is
another prediction: its values must be those of the same cells in an ``EvalData`` with an empty cache, and differ from
the model's (else a stale reuse would not show).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.calibration import (
    ceiling_data,
    extrapolated_table,
    interpolated_duplicate_data,
    reference_data,
    shared_control_data,
)
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.io import eval_data
from distgen.evaluation.suite import run_metrics
from distgen.evaluation.uncertainty import ceiling_tables, split_seed
from distgen.types import Cells

#: one metric of each cache: the DE tables and their rankings, the E-distance from the control, cell-eval2's
#: prepared DE (both sides under one key) and its profiles, a plain pseudobulk metric
METRICS = ["overlap_at_50", "precision_at_N", "pearson_edistance", "de_wilcoxon_sig_recall",
           "de_wilcoxon_overlap_top50", "delta_pearson", "mse"]
GENES = 40


def cells(seed: int, shift: float, context: str | None = None) -> Cells:
    """Log1p counts: 80 controls and four perturbations of 40 cells with graded effects on half the genes."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 1.5, GENES)
    rows, conds = [rng.poisson(base, (80, GENES))], ["control"] * 80
    for p in range(4):
        lam = base.copy()
        lam[: GENES // 2] *= np.linspace(1.0, shift * (p + 1), GENES // 2)  # many significant genes, of several sizes
        rows.append(rng.poisson(lam, (40, GENES)))
        conds += [f"P{p}"] * 40
    x = torch.tensor(np.log1p(np.concatenate(rows)), dtype=torch.float32)
    kw = {} if context is None else {"contexts": [context] * len(conds)}
    return Cells(x, conds, [f"g{i}" for i in range(GENES)], **kw)


def fresh(d: EvalData) -> EvalData:
    """The same cells in a new ``EvalData`` with an empty cache (copies: nothing shared with ``d``)."""
    def copy(pop: Population) -> Population:
        return Population(X=pop.X.clone(), offsets=pop.offsets.clone(), control=pop.control.clone())

    return EvalData(real=copy(d.real), pred=copy(d.pred), perts=d.perts, targets=d.targets, genes=d.genes,
                    invalid=dict(d.invalid), cache={"log1p": d.cache.get("log1p", True)})


def values(table) -> dict[str, list[float]]:
    return {m: table.values[m] for m in METRICS}


def assert_same(got, want, what: str) -> None:
    for m in METRICS:
        np.testing.assert_array_equal(np.array(got[m]), np.array(want[m]), err_msg=f"{what}: {m}")


def assert_differs(a, b, what: str) -> None:
    """Every metric reads the replaced prediction: some perturbation's value moves (else a stale reuse would not show)."""
    for m in METRICS:
        x, y = np.array(a[m]), np.array(b[m])
        assert np.isfinite(x).any() and np.isfinite(y).any(), f"{what}: {m} all NaN"
        assert not np.array_equal(x, y, equal_nan=True), f"{what}: {m} did not change with the prediction"


@pytest.fixture(scope="module")
def model():
    """The model's EvalData after scoring every metric (its cache full, as ``score`` leaves it before the references)."""
    data = eval_data(cells(1, 1.6), cells(0, 2.0))
    return data, values(run_metrics(data, METRICS))


def test_each_baseline_scored_after_the_model_is_scored_afresh(model):
    data, model_values = model
    truth = cells(0, 2.0)
    seen = []
    for seed, shift in ((2, 1.2), (3, 1.9)):  # two baselines in one run, one after the other on the same model data
        ref = reference_data(data, cells(seed, shift), truth)
        got = values(run_metrics(ref, METRICS))
        assert_same(got, values(run_metrics(fresh(ref), METRICS)), f"baseline {seed}")
        assert_differs(got, model_values, f"baseline {seed} against the model")
        seen.append(got)
    assert_differs(seen[0], seen[1], "the second baseline against the first")


def test_each_ceiling_split_is_scored_afresh(model):
    data, model_values = model
    tables = [values(t) for t in ceiling_tables(data, METRICS, seed=0, n_splits=5)]
    for i, got in enumerate(tables):
        assert_same(got, values(run_metrics(fresh(ceiling_data(data, split_seed(0, i))), METRICS)), f"split {i}")
        assert_differs(got, model_values, f"split {i} against the model")
    assert_differs(tables[0], tables[1], "split 1 against split 0")


def test_each_extrapolated_replicate_split_is_scored_afresh(model):
    """``replicate="extrapolated"``: halves and quarters with all the real controls on both sides (``shared_control_data``)."""
    data, model_values = model
    tables = [values(t) for t in ceiling_tables(data, METRICS, seed=0, n_splits=5, replicate="extrapolated")]
    n_cells = data.real.counts.tolist()
    for i, got in enumerate(tables):
        half, quarter = (run_metrics(fresh(shared_control_data(data, split_seed(0, i), k)), METRICS) for k in (2, 4))
        assert_same(got, values(extrapolated_table(half, quarter, n_cells)), f"extrapolated split {i}")
        assert_differs(got, model_values, f"extrapolated split {i} against the model")
    assert_differs(tables[0], tables[1], "extrapolated split 1 against split 0")


def test_each_interpolated_duplicate_is_scored_afresh_and_not_as_its_split(model):
    data, model_values = model
    for i in range(5):
        half = ceiling_data(data, split_seed(0, i))
        half_values = values(run_metrics(half, METRICS))
        interp = interpolated_duplicate_data(data, split_seed(0, i))
        got = values(run_metrics(interp, METRICS))
        assert_same(got, values(run_metrics(fresh(interp), METRICS)), f"interpolated duplicate {i}")
        assert_differs(got, half_values, f"interpolated duplicate {i} against its split")
        assert_differs(got, model_values, f"interpolated duplicate {i} against the model")


def test_a_replaced_prediction_drops_every_cached_result_of_its_evaldata(monkeypatch):
    """``interpolated_duplicate_data`` replaces the prediction of a half-split ``EvalData``: were that half scored first,
    cell-eval2's prepared DE (``ce2/de/...``) and profiles (``ce2/profiles/...``), which hold the prediction under keys
    that do not end in ``/pred``, outlived the "/pred" keys it dropped (the duplicate's ``de_wilcoxon_*`` were its
    split's). Not reachable from ``score`` (its halves come fresh); a guard for the rule, ``real_side_cache``."""
    from distgen.evaluation import calibration

    data = eval_data(cells(1, 1.6), cells(0, 2.0))
    before = values(run_metrics(ceiling_data(data, 0), METRICS))
    plain = calibration.ceiling_data

    def scored_half(d: EvalData, seed: int = 0) -> EvalData:  # the half as a caller that scored it first would hand it over
        h = plain(d, seed)
        run_metrics(h, METRICS)
        return h

    monkeypatch.setattr(calibration, "ceiling_data", scored_half)
    interp = interpolated_duplicate_data(data, 0)
    got = values(run_metrics(interp, METRICS))
    assert_same(got, values(run_metrics(fresh(interp), METRICS)), "the replaced prediction")
    assert_differs(got, before, "the replaced prediction against the half it replaced")


def test_each_context_is_scored_on_its_own_cells():
    metrics = [m for m in METRICS if m != "mse"]
    a_pred, b_pred, a_truth, b_truth = cells(1, 1.6, "A"), cells(5, 1.3, "B"), cells(0, 2.0, "A"), cells(4, 2.2, "B")
    both = score(Cells.concat([a_pred, b_pred]), Cells.concat([a_truth, b_truth]), metrics=metrics, ceiling=False,
                 spread="off")
    table = both.table
    for ctx, pred, truth in (("A", a_pred, a_truth), ("B", b_pred, b_truth)):
        alone = run_metrics(eval_data(pred, truth), metrics)
        rows = [i for i, p in enumerate(table.perts) if str(p).endswith(f"@ {ctx}")]
        assert len(rows) == 4
        for m in metrics:
            got = [table.values[m][i] for i in rows]
            np.testing.assert_array_equal(np.array(got), np.array(alone.values[m]), err_msg=f"context {ctx}: {m}")
    for m in metrics:  # the two contexts' predictions differ: so do their values
        a = [v for p, v in zip(table.perts, table.values[m], strict=True) if str(p).endswith("@ A")]
        b = [v for p, v in zip(table.perts, table.values[m], strict=True) if str(p).endswith("@ B")]
        assert not all(math.isclose(x, y) for x, y in zip(a, b, strict=True)), m
