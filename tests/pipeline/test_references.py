"""References: baselines fitted on the run's training cells with their contexts, predicting each held-out
group from control cells of its own context, the same pool the model generates from."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import distgen
from distgen.models import models
from distgen.pipeline.references import cells_references, dataset_references
from distgen.types import ALL, Cells, DataInfo


@pytest.fixture(scope="module")
def kang():
    """Kang PBMC with CD14+ monocytes held out (seen in training only through their control cells)."""
    return distgen.load_data("kang_pbmc", split={"kind": "held_out_context", "seed": 0, "test_contexts": ["CD14+Mono"]}, hvg=300)


def _context_blind(table):
    """The same training cells with every context merged into one (what evaluation fitted on before)."""
    info = DataInfo(table.info.genes, table.info.perturbations, (ALL,), table.info.batches, table.info.perturbation_type)
    return replace(table, labels=replace(table.labels, context=torch.zeros_like(table.labels.context)), info=info)


@pytest.mark.parametrize("name", ["additive", "mean_perturbation"])
def test_kang_held_out_context_baselines_see_contexts_and_differ_from_context_blind_ones(kang, name):
    train = kang.train_table
    aware, blind = models.get(name)().fit(train), models.get(name)().fit(_context_blind(train))
    # context-aware: the mean over cell types of (stimulated - control) within each type, by hand
    x, ctx = train.X.double(), train.labels.context
    stim = ~train.labels.is_control
    per_type = [x[stim & (ctx == c)].mean(0) - x[~stim & (ctx == c)].mean(0) for c in torch.unique(ctx[stim]).tolist()]
    want_aware = torch.stack(per_type).mean(0)
    want_blind = x[stim].mean(0) - x[~stim].mean(0)  # cell-type composition leaks into the "effect"
    ctrl = x[~stim][:4][None].float()
    labels = kang.labels(["stimulated"], ["CD14+Mono"])
    got_aware = aware.predict(ctrl, torch.ones(1, 4, dtype=torch.bool), labels)[0] - ctrl[0]
    got_blind = blind.predict(ctrl, torch.ones(1, 4, dtype=torch.bool), labels)[0] - ctrl[0]
    torch.testing.assert_close(got_aware[0].double(), want_aware, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_blind[0].double(), want_blind, atol=1e-5, rtol=1e-5)
    assert (want_aware - want_blind).abs().max() > 0.1  # contexts matter here: the two baselines differ


def test_references_predict_each_group_from_controls_of_its_own_context(kang):
    truth = kang.truth()
    refs, notes = dataset_references(kang, truth, ["control", "additive"])
    own = truth.controls("CD14+Mono").X
    for name, ref in refs.items():
        assert ref.genes == truth.genes and len(ref) == len(truth)
        assert ref.groups().keys() == truth.groups().keys()
        rows = ref.perturbed()
        assert set(rows.contexts) == {"CD14+Mono"}
        if name == "control":  # the control baseline hands back the cells it was given: CD14+ monocyte controls
            assert all(bool((own == r).all(1).any()) for r in rows.X)
    shift = refs["additive"].perturbed().X.double().mean(0) - truth.controls("CD14+Mono").X.double().mean(0)
    assert shift.abs().max() > 0.1  # the additive reference moved them
    assert notes == [] or all("cannot predict" in n for n in notes)


def test_references_from_files_fit_with_the_files_cell_types():
    """``distgen evaluate --train``: Cells read from files keep their cell types for the baselines."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(6)]
    counts = {("A", "control"): 40, ("A", "D"): 10, ("B", "control"): 10, ("B", "D"): 40}  # composition differs by condition
    level, shift = {"A": 0.0, "B": 4.0}, {"control": 0.0, "D": 1.0}
    conds, ctxs, rows = [], [], []
    for (ctx, cond), n in counts.items():
        rows.append(rng.normal(level[ctx] + shift[cond], 0.1, (n, 6)))
        conds += [cond] * n
        ctxs += [ctx] * n
    train = Cells(torch.tensor(np.concatenate(rows), dtype=torch.float32), conds, genes, ctxs)
    held = train.subset(np.flatnonzero(np.asarray(ctxs) == "B"))  # the same distribution as training, other cells: a truth
    truth = Cells(held.X + torch.from_numpy(rng.normal(0, 1e-3, tuple(held.X.shape))).float(), held.conditions, genes, held.contexts)
    aware, _ = cells_references(train, truth, ["additive"])
    blind, _ = cells_references(Cells(train.X, train.conditions, genes), Cells(truth.X, truth.conditions, genes), ["additive"])
    effect = aware["additive"].perturbed().X.mean(0) - truth.controls().X.mean(0)
    pooled = blind["additive"].perturbed().X.mean(0) - truth.controls().X.mean(0)
    torch.testing.assert_close(effect, torch.full((6,), 1.0), atol=0.1, rtol=0)  # the true within-type effect
    assert (pooled - 1.0).abs().min() > 1.0  # pooling the types confounds the effect with composition (~3.4)


@pytest.mark.parametrize("seed", [0, 3])
def test_a_model_and_a_baseline_read_the_same_controls_cell_for_cell(kang, seed):
    # the same closed-form model scored as "the model" and as a baseline must give the same cells: both start from
    # control_draw's controls (it lost to itself when the model drew with replacement and the baseline without)
    from distgen.pipeline.predict import predict

    capped = kang.capped(40)
    fitted = models.get("additive")().fit(capped.train_table)
    pred = predict(fitted, capped, "test", seed=seed, set_size=8)
    truth = capped.truth("test")
    refs, _ = dataset_references(capped, truth, ["additive", "control"])
    torch.testing.assert_close(pred.perturbed().X, refs["additive"].perturbed().X)
    pool = truth.controls("CD14+Mono").X
    used = refs["control"].perturbed().X
    assert len(used) == 40 and len({tuple(r.tolist()) for r in used}) == min(40, len(pool))  # distinct while the pool lasts
