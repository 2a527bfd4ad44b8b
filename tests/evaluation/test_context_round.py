"""The contexts round (docs/reliability.md, "Contexts round"): a prediction scored per context (a cell-type column) or
with its contexts pooled, against a truth of two cell types whose responses differ."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen
from distgen.errors import DistgenWarning, InputDataError

GENES = [f"G{i}" for i in range(30)]
FAST = {"metric_names": ["mse", "pearson_delta"], "ceiling": False, "baselines": ["control"], "make_plots": False, "progress": False}


def _truth(sizes=None, seed=0):
    """log1p values, cell types B and C (their own profiles), each with its own response to P1 (other genes lifted)."""
    sizes = sizes or {"B": 30, "C": 30}
    rng = np.random.default_rng(seed)
    rows, labels, types = [], [], []
    for k, ct in enumerate(("B", "C")):
        base = rng.gamma(2.0, 1.0, len(GENES)) + 0.05
        for lab in ["non-targeting"] * 40 + ["P1"] * sizes[ct]:
            rate = base.copy()
            if lab == "P1":
                rate[3 * k: 3 * k + 3] *= 6.0
            counts = rng.poisson(rate / rate.sum() * 2000)
            rows.append(np.log1p(counts / counts.sum() * 1e4))
            labels.append(lab)
            types.append(ct)
    obs = pd.DataFrame({"target": labels, "celltype": types}, index=[f"c{i}" for i in range(len(labels))])
    return ad.AnnData(X=np.asarray(rows, dtype=np.float32), obs=obs, var=pd.DataFrame(index=GENES))


def _resampled(truth, n_pert=30, seed=1):
    """A near-perfect prediction: each context's P1 cells drawn from its own real cells, its controls the truth's."""
    rng = np.random.default_rng(seed)
    parts = []
    for ct in ("B", "C"):
        n = n_pert[ct] if isinstance(n_pert, dict) else n_pert
        ctrl = truth[(truth.obs["celltype"] == ct) & (truth.obs["target"] == "non-targeting")]
        pert = truth[(truth.obs["celltype"] == ct) & (truth.obs["target"] == "P1")]
        drawn = pert[np.sort(rng.choice(pert.n_obs, n))].copy()
        drawn.obs_names = [f"p{ct}{i}" for i in range(n)]
        parts += [ctrl.copy(), drawn]
    return ad.concat(parts)


def test_a_prediction_whose_contexts_are_each_others_is_refused():
    """The prediction's cell-type labels swapped (B written C and C written B, controls included, as a categorical
    written against another category order): scored per context without a word (mse 1.3-2.3 against 0.5-0.9)."""
    truth = _truth()
    pred = _resampled(truth)
    pred.obs["celltype"] = pred.obs["celltype"].map({"B": "C", "C": "B"}).astype(str)
    with pytest.raises(InputDataError, match=r"control cells of context 'B' are the truth's control cells of context 'C'"):
        distgen.evaluate(pred, truth, celltype_col="celltype", **FAST)
    right = distgen.evaluate(_resampled(truth), truth, celltype_col="celltype", **FAST)
    assert np.nanmin(right.table.values["pearson_delta"]) > 0.9


def test_contexts_pooled_in_other_proportions_than_the_truth_are_warned_about():
    """--pool-contexts with the truth's P1 cells 94% B / 6% C and the prediction's 50/50: a prediction right in each
    context (pearson_delta 0.99 per context) scored 0.01 pooled without a word."""
    truth = _truth({"B": 100, "C": 6})
    pred = _resampled(truth, n_pert=20)
    per_context = distgen.evaluate(pred, truth, celltype_col="celltype", **FAST)
    assert np.nanmin(per_context.table.values["pearson_delta"]) > 0.9
    with pytest.warns(DistgenWarning, match=r"P1.*94% B.*50% B"):
        distgen.evaluate(pred, truth, celltype_col="celltype", by_context=False, **FAST)
    same = _resampled(truth, n_pert={"B": 100, "C": 6})  # the truth's own proportions: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)
        distgen.evaluate(same, truth, celltype_col="celltype", by_context=False, **FAST)


def test_a_context_written_as_a_float_names_the_truth_spelling():
    """Contexts ``1.0`` / ``2.0`` (a float column) against the truth's ``1`` / ``2``: the refusal listed the groups only."""
    truth = _truth()
    truth.obs["celltype"] = truth.obs["celltype"].map({"B": "1", "C": "2"}).astype(str)
    pred = _resampled(_truth())
    pred.obs["celltype"] = pred.obs["celltype"].map({"B": 1.0, "C": 2.0}).astype(float)
    with pytest.raises(InputDataError, match=r"'1\.0' for '1'"):
        distgen.evaluate(pred, truth, celltype_col="celltype", **FAST)


def test_contexts_pooled_because_the_training_file_lacks_the_column_say_so():
    """``--train`` without the ``celltype`` column that the prediction and the truth have: every file was read with its
    contexts pooled and the warning said only "the truth has cell-type column 'celltype' ... not used", without why."""
    truth = _truth()
    train = _truth(seed=3)
    del train.obs["celltype"]
    with pytest.warns(DistgenWarning, match=r"training file.*no 'celltype' column"):
        distgen.evaluate(_resampled(truth), truth, train=train, **{**FAST, "baselines": ["mean_perturbation"]})


def _own_controls(truth, zero_in_truth: int, seed=5):
    """A truth whose context B holds ``zero_in_truth`` all-zero control cells (a low-depth cell after HVG selection), and
    a right prediction from another tool that writes control cells of its own, one of context C all zero."""
    x = truth.X.copy()
    x[np.flatnonzero((truth.obs["celltype"] == "B") & (truth.obs["target"] == "non-targeting"))[:zero_in_truth]] = 0
    truth.X = x
    pred = _resampled(truth)
    ctrl = (pred.obs["target"] == "non-targeting").to_numpy()
    p = pred.X.copy()
    p[ctrl] += np.abs(np.random.default_rng(seed).normal(0, 0.01, p[ctrl].shape)).astype(np.float32)
    p[np.flatnonzero(ctrl & (pred.obs["celltype"] == "C").to_numpy())[:1]] = 0
    pred.X = p
    return pred, truth


@pytest.mark.parametrize("zero_in_truth", [1, 2])
def test_a_prediction_with_controls_of_its_own_that_share_an_all_zero_cell_is_scored(zero_in_truth):
    """Review of the swapped-label check: one all-zero control cell of the prediction's C, equal to the truth's all-zero
    control(s) of B (common in sparse data), refused a right prediction ("control cells of context 'C' are the truth's
    control cells of context 'B' (1 of the 40 looked up ...)")."""
    pred, truth = _own_controls(_truth(), zero_in_truth)
    right = distgen.evaluate(pred, truth, celltype_col="celltype", **FAST)
    assert np.nanmin(right.table.values["pearson_delta"]) > 0.9


def test_swapped_context_labels_are_refused_with_all_zero_cells_in_the_truth():
    """The check still refuses swapped labels when the truth's controls hold all-zero cells in both contexts."""
    truth = _truth()
    x = truth.X.copy()
    ctrl = (truth.obs["target"] == "non-targeting").to_numpy()
    for ct in ("B", "C"):
        x[np.flatnonzero(ctrl & (truth.obs["celltype"] == ct).to_numpy())[:3]] = 0
    truth.X = x
    pred = _resampled(truth)
    pred.obs["celltype"] = pred.obs["celltype"].map({"B": "C", "C": "B"}).astype(str)
    with pytest.raises(InputDataError, match=r"control cells of context 'B' are the truth's control cells of context 'C'"):
        distgen.evaluate(pred, truth, celltype_col="celltype", **FAST)


def test_contexts_pooled_under_other_names_are_not_said_to_differ_in_proportions():
    """Review: a prediction whose cell types are named its own way (``b_cells`` for ``B``), pooled because of that, in the
    truth's own proportions (50/50) was warned about as "50% B, 50% C of the truth's cells and 50% b_cells, 50% c_cells of
    the prediction's": the proportions of labels the truth lacks cannot be compared."""
    truth = _truth()
    pred = _resampled(truth)
    pred.obs["celltype"] = pred.obs["celltype"].map({"B": "b_cells", "C": "c_cells"}).astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)
        pooled = distgen.evaluate(pred, truth, celltype_col="celltype", by_context=False, **FAST)
    assert not any("proportions" in n for n in pooled.summary["notes"])


def test_counts_of_rows_scored_per_context_are_called_rows_not_perturbations():
    """One perturbation in two contexts is 2 (condition, context) rows: summary.md and the page called them "2
    perturbations" ("A paired test over 2 perturbation(s)"); with one context the wording stays "perturbation"."""
    from distgen.evaluation.report import markdown
    from distgen.report.page import _few_conditions_note

    truth = _truth()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = distgen.evaluate(_resampled(truth), truth, celltype_col="celltype", **FAST).summary
    text = markdown(summary)
    assert "2 (condition, context) rows of 1 perturbation," in text
    assert "A paired test over 2 (condition, context) row(s)" in text and "Some intervals rest on 2 (condition, context) row(s)" in text
    assert "2 perturbation" not in text
    assert "rest on 2 (condition, context) rows" in _few_conditions_note(2, (), "(condition, context) row")
    assert "rest on 2 conditions" in _few_conditions_note(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = distgen.evaluate(_resampled(truth), truth, by_context=False, **FAST).summary
    assert "1 perturbation," in markdown(pooled) and "(condition, context)" not in markdown(pooled)
