"""Data with batches (donors): every held-out (condition, context, batch) group is generated from control cells of
its own context and batch and labelled with that batch; the baselines draw from the same pool; the files carry
each cell's batch; a model that embeds batches (contexts) is refused a batch (context) that no training set carries."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import distgen
from distgen.data import Dataset, layout
from distgen.models.preflight import PreflightError, PreflightWarning, check_split
from distgen.pipeline.predict import predict, write_cells
from distgen.pipeline.references import fit_references

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor",
          "perturbation_type": "chemical"}
TINY = {"name": "generator", "conditioner": {"name": "covariate", "part_dim": 4, "dim": 8},
        "backbone": {"name": "mlp", "hidden": 16, "depth": 1}, "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}}


def write_donors(path, batches=("b1", "b2", "b3"), drop=None, n=6):
    """Counts of control, A and B in cell types ct1, ct2 and ``batches`` (gene g0 tells the donors apart); ``drop``: a
    (cell type, donor) left without control cells."""
    rng = np.random.default_rng(0)
    rows = [(c, ct, b) for c in ("control", "A", "B") for ct in ("ct1", "ct2") for b in batches for _ in range(n)
            if (c, ct, b) != ("control", *(drop or ("", "")))]
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "donor"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(5.0, (len(rows), 8)).astype(np.float32)
    x[:, 0] += 20.0 * np.array([batches.index(b) for b in obs["donor"]])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(8)])).write_h5ad(path)
    return str(path)


def load(path, split, **data):
    return Dataset.load({"dataset": path, "schema": SCHEMA, "set_size": 4, "split": split, **data})


@pytest.fixture(scope="module")
def donors(tmp_path_factory):
    """Held-out condition B in every cell type and donor; donor b3 has no control cell in ct2."""
    path = write_donors(tmp_path_factory.mktemp("donors") / "d.h5ad", drop=("ct2", "b3"))
    return load(path, {"kind": "random_conditions", "test_conditions": ["B"], "seed": 0, "holdout_controls": 0.3})


class Spy:
    """Hands back the control cells it is given and records, per set, its (condition, context, batch) and cells."""

    def __init__(self, dataset):
        self.dataset, self.sets = dataset, []

    def predict(self, control, control_mask, labels):
        info = self.dataset.info
        for cells, mask, p, c, b in zip(control, control_mask, labels.perturbation.tolist(), labels.context.tolist(), labels.batch.tolist()):
            cond = "+".join(info.perturbations[a] for a in p if a >= 0)
            self.sets.append(((cond, info.contexts[c], info.batches[b]), cells[mask]))
        return control.clone()

    def can_predict(self, atoms):
        return [True] * len(atoms)


def _rows_within(rows, pool):
    return all(bool((pool == r).all(1).any()) for r in rows)


def test_each_group_is_generated_from_its_pool_with_its_batch_as_label(donors):
    spy = Spy(donors)
    pred = predict(spy, donors, seed=0)
    pools = {(g.condition, g.context, g.batch): donors.data.table.X[torch.from_numpy(g.controls)] for g in donors.groups()}
    assert {key for key, _ in spy.sets} == set(pools) and len(pools) == 6  # B in 2 cell types x 3 donors, each asked as itself
    for key, rows in spy.sets:
        assert _rows_within(rows, pools[key]), f"{key} was generated from control cells outside its pool"
    truth = donors.truth()
    for key, rows in truth.groups().items():  # a condition in a context: generated in the donor mix of its real cells
        assert sorted(pred.batches[pred.groups()[key]]) == sorted(truth.batches[rows])


def test_the_baselines_draw_each_group_from_the_same_pool_as_the_model(donors):
    truth = donors.truth()
    asked = []

    def labels(conditions, contexts, batches):
        asked.extend(zip(conditions, contexts, batches))
        return donors.labels(conditions, contexts, batches)

    refs, _ = fit_references(donors.train_table, truth, labels, ["control", "additive"])
    groups = {(g.condition, g.context, g.batch): g for g in donors.groups()}
    assert sorted(set(asked)) == sorted(groups)
    ref = refs["control"]  # the control baseline hands back the control cells it was given
    for i in np.flatnonzero(~ref.is_control):
        g = groups[(ref.conditions[i], ref.contexts[i], ref.batches[i])]
        assert _rows_within(ref.X[i][None], donors.data.table.X[torch.from_numpy(g.controls)])
    for ref in refs.values():
        for key, rows in truth.groups().items():
            assert sorted(ref.batches[ref.groups()[key]]) == sorted(truth.batches[rows])


def test_pred_and_real_files_carry_the_batch_of_every_cell(donors, tmp_path):
    pred = predict(Spy(donors), donors)
    write_cells(donors, pred, tmp_path / "pred.h5ad", "pred")
    write_cells(donors, donors.truth(), tmp_path / "real.h5ad", "real")
    files = [ad.read_h5ad(tmp_path / f) for f in ("pred.h5ad", "real.h5ad")]
    mixes = [f.obs.groupby([layout.PERT_COL, layout.CELLTYPE_COL, layout.BATCH_COL], observed=True).size().to_dict() for f in files]
    assert mixes[0] == mixes[1] and {k[2] for k in mixes[0]} == {"b1", "b2", "b3"}
    assert layout.read(tmp_path / "pred.h5ad").batches.tolist() == pred.batches.tolist()


def test_one_batch_writes_no_batch_column(tmp_path):
    ds = load(write_donors(tmp_path / "one.h5ad", batches=("b1",)), {"kind": "random_conditions", "test_conditions": ["B"], "seed": 0})
    spy = Spy(ds)
    write_cells(ds, predict(spy, ds), tmp_path / "pred.h5ad", "pred")
    assert layout.BATCH_COL not in ad.read_h5ad(tmp_path / "pred.h5ad").obs.columns
    assert {key for key, _ in spy.sets} == {("B", "ct1", "b1"), ("B", "ct2", "b1")}


@pytest.fixture(scope="module")
def held_out_donor(tmp_path_factory):
    return write_donors(tmp_path_factory.mktemp("held") / "d.h5ad")


@pytest.mark.parametrize(("control_sets", "use_batch", "refused"), [
    ("none", True, True),  # b3's controls never form a training set: its batch row is never trained
    ("auto", True, False),  # control -> control sets of b3's training controls train it
    ("none", False, False),  # the model ignores batches
])
def test_a_held_out_batch_that_no_training_set_carries_is_refused_when_the_model_embeds_batches(held_out_donor, control_sets, use_batch,
                                                                                               refused):
    ds = load(held_out_donor, {"kind": "held_out_batch", "test_batches": ["b3"], "seed": 0}, control_sets=control_sets)
    model = distgen.build({"model": TINY}, ds, [f"model.conditioner.use_batch={str(use_batch).lower()}"])
    if not refused:
        assert check_split(model, ds) == []
        return
    with pytest.raises(PreflightError, match=r"1 held-out batch\(es\) \(b3\) are in no training set.*use_batch=false.*control_sets=auto"):
        predict(model, ds)
    with pytest.warns(PreflightWarning, match=r"batch\(es\) b3 come from untrained batch embeddings"):
        pred = predict(model, ds, allow_unembedded=True)
    assert set(pred.batches[~pred.is_control]) == {"b3"}


@pytest.mark.parametrize(("control_sets", "use_context", "refused"), [
    ("none", True, True),  # ct2 has no perturbed training cell and its controls form no training set: its context row is never trained
    ("auto", True, False),  # control -> control sets of ct2's training controls train it
    ("none", False, False),  # the model ignores contexts (the cell_type_transfer recipe)
])
def test_a_held_out_context_that_no_training_set_carries_is_refused_when_the_model_embeds_contexts(held_out_donor, control_sets,
                                                                                                   use_context, refused):
    ds = load(held_out_donor, {"kind": "held_out_context", "test_contexts": ["ct2"], "seed": 0}, control_sets=control_sets)
    model = distgen.build({"model": TINY}, ds, [f"model.conditioner.use_context={str(use_context).lower()}"])
    if not refused:
        assert check_split(model, ds) == []
        return
    with pytest.raises(PreflightError, match=r"1 held-out context\(s\) \(ct2\) are in no training set.*use_context=false.*"
                                             r"control_sets=auto.*context_table"):
        predict(model, ds)
    with pytest.warns(PreflightWarning, match=r"context\(s\) ct2 come from untrained context embeddings"):
        pred = predict(model, ds, allow_unembedded=True)
    assert set(pred.contexts[~pred.is_control]) == {"ct2"}


def test_a_held_out_context_read_from_frozen_vectors_passes(held_out_donor):
    ds = load(held_out_donor, {"kind": "held_out_context", "test_contexts": ["ct2"], "seed": 0}, control_sets="none")
    model = distgen.build({"model": TINY}, ds, ["model.conditioner.context_table={ct1: [1.0, 0.0], ct2: [0.0, 1.0]}"])
    assert check_split(model, ds) == []


def test_the_run_command_refuses_a_held_out_context_with_exit_2(held_out_donor, tmp_path, capsys):
    from distgen.cli import main

    schema = "{" + ", ".join(f"{k}: {v if not isinstance(v, list) else '[' + ', '.join(v) + ']'}" for k, v in SCHEMA.items()) + "}"
    args = ["run", "perturbdiff-small", f"data.dataset={held_out_donor}", f"data.schema={schema}", "data.set_size=4",
            "data.split={kind: held_out_context, test_contexts: [ct2]}", "data.control_sets=none", "train.steps=1", "--out", str(tmp_path / "r")]
    assert main(args) == 2
    assert "held-out context(s) (ct2) are in no training set" in capsys.readouterr().err


def test_distgen_predict_says_which_batches_borrowed_controls(tmp_path, capsys):
    """ct2 held out, donor b3 without a control cell in ct2: ``distgen predict`` prints the note ``distgen run``'s report carries."""
    from distgen.cli import main
    from distgen.config import save_yaml

    data = {"dataset": write_donors(tmp_path / "d.h5ad", drop=("ct2", "b3")), "schema": SCHEMA, "set_size": 4,
            "split": {"kind": "held_out_context", "test_contexts": ["ct2"], "seed": 0}}
    cfg = save_yaml({"model": TINY, "data": data, "train": {"steps": 1, "sets_per_batch": 2, "progress": False}}, tmp_path / "t.yaml")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--out", str(tmp_path / "pred.h5ad")]) == 0
    err = capsys.readouterr().err
    assert "note: batch(es) without control cells of their context (b3 in ct2): their held-out cells were predicted from control " \
           "cells of the same context in other batches" in err
    assert "predict.max_cells_per_condition" not in err  # no group has more than 500 cells: the cap changed nothing, no note
