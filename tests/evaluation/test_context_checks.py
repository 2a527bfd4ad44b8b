"""``--celltype-col`` (``load_contexts``): the refusals and notes that are per context, pinned before the whole-file
checks were made once: each context is its own pair, so a context on another scale, a context whose
prediction is all zeros and a generated prediction that diverges in one context are still said of that context."""

from __future__ import annotations

import numpy as np
import pytest

from distgen.errors import InputDataError
from distgen.pipeline.profile_eval import load_contexts

from .test_profile_eval import _two_contexts

CONTROL = "non-targeting"


def _with(a, context, change, generated=False):
    """``a`` with ``change(values)`` applied to the rows of ``context``."""
    a = a.copy()
    rows = (a.obs["cell_type"] == context).to_numpy()
    x = np.asarray(a.X).copy()
    x[rows] = change(x[rows])
    a.X = x
    if generated:
        a.uns["distgen"] = {"kind": "pred"}
    return a


def _load(pred, real, scale="lognorm"):
    return load_contexts(pred, real, "cell_type", "target", CONTROL, scale=scale)


@pytest.mark.parametrize("side", ["pred", "real"])
def test_one_context_of_whole_numbers_beside_log_values_is_refused_naming_that_context(side):
    real, pred = _two_contexts()
    context = "B/x" if side == "pred" else "T"
    if side == "pred":
        pred = _with(pred, context, np.rint)  # whole numbers up to 9: the file as a whole still reads as log values
    else:
        real = _with(real, context, np.rint)
    with pytest.raises(InputDataError, match=rf"^context '{context}' of 'cell_type': the pred cells are "
                                             + ("raw counts" if side == "pred" else "log-normalised")):
        _load(pred, real)


def test_one_context_whose_prediction_is_all_zeros_is_refused_naming_that_context():
    real, pred = _two_contexts()
    with pytest.raises(InputDataError, match=r"^context 'B/x' of 'cell_type': the pred file's X holds only zeros \(150 cells"):
        _load(_with(pred, "B/x", np.zeros_like), real)


def test_a_generated_prediction_that_diverges_in_one_context_is_scored_with_that_contexts_note():
    real, pred = _two_contexts()
    perturbed = (pred.obs["target"] != CONTROL).to_numpy() & (pred.obs["cell_type"] == "B/x").to_numpy()
    x = np.asarray(pred.X).copy()
    x[np.flatnonzero(perturbed)[:3]] += 40.0  # three generated cells far past any log value
    pred = pred.copy()
    pred.X, pred.uns["distgen"] = x, {"kind": "pred"}
    datas, info = _load(pred, real)
    assert sorted(datas) == ["B/x", "T"]
    reach = [n for n in info.notes if "predictions reach" in n]
    assert len(reach) == 1 and reach[0].startswith("B/x: the model's predictions reach 4"), reach


def test_a_generated_prediction_with_one_context_of_whole_numbers_is_scored_without_a_scale_comparison():
    real, pred = _two_contexts()
    datas, info = _load(_with(pred, "B/x", np.rint, generated=True), real)  # a model's output: its own range, no comparison
    assert sorted(datas) == ["B/x", "T"] and not [n for n in info.notes if "predictions reach" in n]


def test_one_context_of_fractions_in_small_counts_files_is_refused_as_the_files():
    real, pred = (np.rint(np.expm1(a.X)) for a in _two_contexts())
    real_a, pred_a = _two_contexts()
    real_a.X, pred_a.X = real, pred
    pred_a = _with(pred_a, "T", lambda v: v + 0.5 * (v > 3))  # fractions in T's cells only
    # a file of at most 2,000 rows is read whole by the file's own check: said of the file (no context can say more)
    with pytest.raises(InputDataError, match=r"^the pred cells hold fractional or negative values"):
        _load(pred_a, real_a, scale="counts")


def test_the_whole_files_are_checked_for_raw_counts_once(monkeypatch):
    """check_files' strict check of a file read for a log-scale evaluation refuses all that load_contexts' own whole-file
    check_scale refused (the same rows; align only reorders genes): it is not run a second time on either file.
    A model's predictions (generated), which check_files leaves to their own check, are still checked here."""
    import distgen.pipeline.profile_eval as pe

    seen: list[str] = []
    real_check = pe.check_scale
    monkeypatch.setattr(pe, "check_scale", lambda x, name, *a, **k: (seen.append(name), real_check(x, name, *a, **k))[1])
    real, pred = _two_contexts()
    _load(pred, real)
    assert seen == []
    _load(_with(pred, "T", lambda v: v, generated=True), real)
    assert seen == ["pred"]


def test_each_contexts_values_are_sampled_once_per_side(monkeypatch):
    """eval_data draws one sample of each side (io.ValueSample) for the pair's scale comparison and each side's raw-count
    check (not one of its own per check: two draws of a context's values, not four, decide the same)."""
    import distgen.evaluation.io as io

    draws: list[int] = []
    real_sampled = io._sampled
    monkeypatch.setattr(io, "_sampled", lambda x: (draws.append(0) if not isinstance(x, io.ValueSample) else None, real_sampled(x))[1])
    from distgen.pipeline.profile_eval import read_files

    real, pred = _two_contexts()
    pc, rc, _ = read_files(pred, real, "target", CONTROL, celltype_col="cell_type")
    draws.clear()
    assert io.eval_data(pc.of_context("T"), rc.of_context("T")).n_perts
    assert len(draws) == 2


def test_two_whole_files_of_small_raw_counts_are_still_refused_as_the_files():
    """load_contexts no longer runs its own whole-file check_scale at log scale, relying on
    check_files' strict one (integers above 1). Two files of raw counts all at most 30 agree in scale (no comparison
    refuses them) and pass the looser rule every context is checked by (integers above 30): check_files' strict check
    is all that refuses them, said of the file, not of a context."""
    real, pred = _two_contexts()
    small = lambda v: np.minimum(np.rint(np.expm1(v)), 30)  # noqa: E731  whole numbers 0..30 in every cell
    pred, real = (_with(_with(a, "T", small), "B/x", small) for a in (pred, real))
    with pytest.raises(InputDataError, match=r"^the pred cells look like raw counts \(integers up to 30\)"):
        _load(pred, real)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # check_holds_prediction's float(), as before
def test_a_prediction_that_requires_grad_is_checked_as_its_detached_values_at_log_scale():
    """eval_data's one ValueSample per side detaches a tensor, where check_scale's own draw called
    numpy() on it: a log-scale prediction with requires_grad (a model's output taken without torch.no_grad) raised
    RuntimeError; it is checked and scored as its detached values are, refusals included."""
    import torch

    from distgen.evaluation.io import eval_data
    from distgen.pipeline.profile_eval import read_files

    real, pred = _two_contexts()
    pc, rc, _ = read_files(pred, real, "target", CONTROL, celltype_col="cell_type")
    pc, rc = pc.of_context("T"), rc.of_context("T")
    graded = type(pc)(pc.X.clone().requires_grad_(True), pc.conditions, pc.genes, pc.contexts, pc.batches, pc.control, pc.names)
    assert torch.equal(eval_data(graded, rc).pred.X.detach(), eval_data(pc, rc).pred.X)
    counts = type(pc)(torch.round(torch.expm1(pc.X)).requires_grad_(True), pc.conditions, pc.genes, pc.contexts, pc.batches,
                      pc.control, pc.names)
    with pytest.raises(InputDataError, match=r"the pred cells are raw counts"):
        eval_data(counts, rc)
