"""Leakage audit: no value of a held-out (validation or test) cell reaches training, a fitted statistic or a baseline.

The check is behavioural, not a reading of the code: the genes of every held-out cell are shuffled within the cell
(its library size, and so every format check and per-cell normalisation, stays the same), and everything a run fits
must come out bit-identical. A second check maps every cell of every training batch back to its dataset row.
"""

import json

import numpy as np
import pytest
import torch

import distgen
from distgen.data import layout
from distgen.data.prepared import cells_of
from distgen.data.split import LeakageError
from distgen.pipeline.countspace import dataset_sizes, fit_run_dispersion
from distgen.pipeline.references import DEFAULT_BASELINES, cells_references, fit_references

from .conftest import make_adata, write_with_held_out_shuffled

SCHEMA = {"perturbation_col": "condition", "context_cols": ["cell_type"], "batch_col": "donor"}
#: Every split kind, with held-out controls where they change who sees what.
KINDS = [
    {"kind": "random_conditions", "seed": 0},
    {"kind": "unseen_single", "seed": 0, "test_conditions": ["A"]},
    {"kind": "combo_seen0", "seed": 0},
    {"kind": "combo_seen2", "seed": 1, "holdout_controls": 0.3},
    {"kind": "held_out_context", "seed": 0, "test_contexts": ["ct2"]},
    {"kind": "held_out_context_perturbation", "seed": 0},
    {"kind": "held_out_batch", "seed": 0, "test_batches": ["b2"], "holdout_controls": 0.3},
]
TINY_PAD = {"name": "generator", "anchor": "additive",
            "backbone": {"name": "pad_transformer", "d_model": 16, "heads": 2, "layers": 1, "dropout": 0.0, "graph_k": 4},
            "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}}


def _write_pair(tmp_path, split):
    """The same cells twice: as made, and with every held-out cell's genes shuffled; returns both paths."""
    adata = make_adata(n_per_group=10, n_genes=40)
    adata.write_h5ad(tmp_path / "orig.h5ad")
    held = _held(distgen.load_data(str(tmp_path / "orig.h5ad"), split=split, schema=SCHEMA, hvg=20))
    return write_with_held_out_shuffled(adata, held, tmp_path)


def _held(ds):
    return np.concatenate([ds.split.val.numpy(), ds.split.test.numpy()])


def _load(path, split):
    return distgen.load_data(str(path), split=split, schema=SCHEMA, hvg=20, set_size=6)


@pytest.mark.parametrize("split", KINDS, ids=[k["kind"] + ("+controls" if "holdout_controls" in k else "") for k in KINDS])
def test_held_out_values_change_nothing_that_is_fitted(tmp_path, split):
    orig, perm = _write_pair(tmp_path, split)
    a, b = _load(orig, split), _load(perm, split)
    assert a.split.hash == b.split.hash
    assert a.info.genes == b.info.genes  # highly variable genes: fitted on training cells only
    assert a.info.n_genes < 40  # the selection ran (20 genes, perturbed genes forced in on top)
    assert torch.equal(a.train_table.X, b.train_table.X)
    sa, va = a.sources(3, 2, 0)
    sb, vb = b.sources(3, 2, 0)
    for step in range(2 * sa.steps_per_epoch):  # two epochs of training batches
        x, y = sa.batch(step), sb.batch(step)
        assert torch.equal(x.target, y.target) and torch.equal(x.control, y.control)
    if va is not None:  # validation sets are matched to training controls: they change only with the validation cells
        assert torch.equal(va.batch(0).control, vb.batch(0).control)
    truth = a.truth("test")
    ra, _ = fit_references(a.train_table, truth, a.labels, (*DEFAULT_BASELINES, "matching_mean"))
    rb, _ = fit_references(b.train_table, truth, a.labels, (*DEFAULT_BASELINES, "matching_mean"))
    assert {k: torch.equal(ra[k].X, rb[k].X) for k in ra} == dict.fromkeys(ra, True)
    sizes_a, _ = dataset_sizes(a)
    sizes_b, _ = dataset_sizes(b)
    assert np.array_equal(fit_run_dispersion(a, truth, sizes_a), fit_run_dispersion(b, truth, sizes_b))


@pytest.mark.filterwarnings("ignore:anchor .additive.")
@pytest.mark.parametrize("split", [KINDS[3], KINDS[4]], ids=["combo_seen2+controls", "held_out_context"])
def test_held_out_values_leave_trained_weights_bit_identical(tmp_path, split):
    """A gene-token model with its co-expression graph and additive anchor (both fitted in ``prepare``), trained with
    validation: its weights do not depend on any held-out value."""
    orig, perm = _write_pair(tmp_path, split)
    weights = []
    for path in (orig, perm):
        ds = _load(path, split)
        doc = {"model": TINY_PAD, "train": {"steps": 3, "sets_per_batch": 2, "val_every": 2, "progress": False}}
        model = distgen.build(doc, ds)
        distgen.fit(model, ds, config=doc, allow_unembedded=True)
        assert model.backbone.genes.has_graph and bool(model.anchor.fitted.any())  # both fitted in prepare
        weights.append(model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _row_index(x: torch.Tensor) -> dict[bytes, int]:
    keys = [r.tobytes() for r in x.numpy()]
    assert len(set(keys)) == len(keys), "the fixture's cells must be distinct for this check"
    return {k: i for i, k in enumerate(keys)}


@pytest.mark.parametrize("split", KINDS, ids=[k["kind"] + ("+controls" if "holdout_controls" in k else "") for k in KINDS])
def test_every_cell_of_every_training_batch_is_a_training_cell(tmp_path, split):
    adata = make_adata(n_per_group=10, n_genes=40)
    adata.write_h5ad(tmp_path / "d.h5ad")
    ds = _load(tmp_path / "d.h5ad", split)
    index = _row_index(ds.data.table.X)
    train = set(ds.split.train.tolist())
    held_groups = set(ds.split.test_groups)
    source, _ = ds.sources(3, 2, 0)
    reached = set()
    for step in range(source.steps_per_epoch):
        b = source.batch(step)
        for s in range(b.target.shape[0]):
            rows = [index[r.numpy().tobytes()] for r in b.target[s][b.target_mask[s]]]
            rows += [index[r.numpy().tobytes()] for r in b.control[s]]
            reached.update(rows)
    assert reached and reached <= train
    d = ds.data
    pert = [i for i in reached if not d.is_control[i]]
    test_pert = [i for i in ds.split.test.tolist() if not d.is_control[i]]
    # the held-out unit: (condition, context, batch) for held_out_batch (the pair stays in training in other batches)
    unit = (lambda i: (d.conditions[i], d.contexts[i], d.batches[i])) if split["kind"] == "held_out_batch" else \
        (lambda i: (d.conditions[i], d.contexts[i]))
    assert {unit(i) for i in test_pert} and not {unit(i) for i in pert} & {unit(i) for i in test_pert}
    if split["kind"] != "held_out_batch":
        assert {(str(d.conditions[i]), str(d.contexts[i])) for i in test_pert} == held_groups
    held_controls = set(_held(ds).tolist()) & set(np.flatnonzero(ds.data.is_control).tolist())
    assert not reached & held_controls
    if "holdout_controls" in split:
        assert held_controls  # the split did hold some out


def test_provenance_names_what_each_statistic_was_fitted_on(tmp_path):
    adata = make_adata(n_per_group=10, n_genes=40)
    adata.write_h5ad(tmp_path / "d.h5ad")
    ds = _load(tmp_path / "d.h5ad", KINDS[3])
    prov = ds.hashes()["provenance"]  # the training manifest's data section
    assert prov["fitted_on"]["hvg"] == f"train ({len(ds.split.train)} cells)"
    assert prov["fitted_on"]["baselines"] == "train"
    n_test_ctrl = int(ds.data.is_control[ds.split.test.numpy()].sum())
    assert f"held {n_test_ctrl} control cells out for test" in prov["controls"]
    assert "log1p(normalize_total(target_sum=10000))" in prov["normalisation"]
    json.dumps(prov)  # goes into JSON files as it is
    plain = distgen.load_data(str(tmp_path / "d.h5ad"), split={"kind": "random_conditions", "seed": 0}, schema=SCHEMA)
    assert plain.provenance()["fitted_on"]["hvg"].startswith("none")
    assert "every control cell is a training cell" in plain.provenance()["controls"]


def test_evaluate_refuses_training_cells_that_hold_the_scored_cells(tmp_path):
    """``distgen evaluate --train`` given the whole dataset would fit the baselines on the cells they are scored on."""
    adata = make_adata(n_per_group=10, n_genes=40)
    adata.write_h5ad(tmp_path / "d.h5ad")
    ds = _load(tmp_path / "d.h5ad", KINDS[0])
    truth = ds.truth("test")
    everything = cells_of(ds.data, np.arange(ds.data.n_cells))
    with pytest.raises(LeakageError, match="perturbed cells are also in the training cells"):
        cells_references(everything, truth, ("control", "mean_perturbation"))
    refs, _ = cells_references(ds.train_cells(), truth, ("control", "mean_perturbation"))  # the training cells: fine
    assert set(refs) == {"control", "mean_perturbation"}
    # another cell with the same values (two cells can agree on a small gene panel) is not the scored cell: its name differs
    train = ds.train_cells()
    pert_row = int(np.flatnonzero(~train.is_control)[0])
    x = train.X.clone()
    x[pert_row] = truth.X[int(np.flatnonzero(~truth.is_control)[0])]
    twin = type(train)(x, train.conditions, train.genes, train.contexts, train.batches, train.control, train.names)
    cells_references(twin, truth, ("control",))
    unnamed = type(train)(x, train.conditions, train.genes, train.contexts, train.batches, train.control)
    with pytest.raises(LeakageError, match="1 of the truth"):  # without names, the values are all there is to go by
        cells_references(unnamed, truth, ("control",))
    layout.write(truth, tmp_path / "real.h5ad", kind="real")
    layout.write(truth, tmp_path / "pred.h5ad", kind="pred")
    layout.write(everything, tmp_path / "all.h5ad", kind="real")
    from distgen.cli import main

    code = main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--train",
                 str(tmp_path / "all.h5ad"), "--out", str(tmp_path / "ev"), "--metrics", "mse", "--no-plots", "--quiet"])
    assert code == 2
