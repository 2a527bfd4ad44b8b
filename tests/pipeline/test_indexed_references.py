"""A baseline that predicts each group as its own control cells is rows of the truth (``IndexedCells``), not a table.

The ``control`` baseline's reference held a table the size of the truth (control cells repeated once per perturbed cell).
It is now the truth's rows, gathered only while scored: these tests hold it to the very values, labels and scores of the
table it replaced (that table is still built for any baseline that changes a cell: forced here by ``same_bits``), and
check ``IndexedCells`` against the ``Cells`` it stands for.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch

from distgen.evaluation import score
from distgen.evaluation.aliases import distinct_references, same_predictions
from distgen.pipeline import references as R
from distgen.types import Cells, IndexedCells

METRICS = ["mse", "pearson_delta", "overlap_at_N", "discrimination_score_l1", "mmd"]


def _truth(seed: int = 0) -> Cells:
    """Two contexts, two batches (batch 'y' of context 'b' without controls: its groups draw from the context's), rows shuffled,
    some values -0.0."""
    rng = np.random.default_rng(seed)
    rows = []
    for ctx, bat, n_ctrl in (("a", "x", 9), ("a", "y", 7), ("b", "x", 8), ("b", "y", 0)):
        rows += [("control", ctx, bat)] * n_ctrl
        for cond in ("P", "Q", "P+Q"):
            rows += [(cond, ctx, bat)] * int(rng.integers(2, 12))
    order = rng.permutation(len(rows))
    conds, ctxs, bats = (np.array([rows[i][k] for i in order], dtype=object) for k in range(3))
    x = rng.gamma(1.0, 1.0, (len(rows), 11)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = 0.0
    x[rng.random(x.shape) < 0.05] = -0.0
    return Cells(torch.from_numpy(x), conds, [f"g{i}" for i in range(11)], ctxs, bats)


def _labels(conditions, contexts, batches):
    return list(conditions)  # what the toy models below read: the condition


class Partly:
    """The controls it is given for P, shifted for Q (a model that changes only some groups)."""

    def predict(self, control, mask, labels):
        return control.clone() if labels[0] != "Q" else control + 1.0


class Zeroed:
    """The controls plus 0.0: equal to them as numbers, but -0.0 becomes 0.0 (not the same bits)."""

    def predict(self, control, mask, labels):
        return control + 0.0


def _as_table(monkeypatch, model, truth):
    with monkeypatch.context() as m:
        m.setattr(R, "same_bits", lambda a, b: False)  # the table path, group by group, as before IndexedCells
        return R.reference_cells(model, truth, _labels)


def _same_cells(a: Cells, b: Cells) -> None:
    assert R.same_bits(a.X, b.X)
    for name in ("conditions", "contexts", "batches"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.genes == b.genes and a.control == b.control and len(a) == len(b)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_control_baseline_is_rows_of_the_truth_with_the_tables_values(monkeypatch, seed):
    truth = _truth(seed)
    model = R._baseline("control")
    ref = R.reference_cells(model, truth, _labels)
    assert isinstance(ref, IndexedCells) and ref.base is truth.X  # the truth's storage, no table of its size
    _same_cells(ref, _as_table(monkeypatch, model, truth))


@pytest.mark.parametrize("model", [Partly(), Zeroed()], ids=["some-groups-changed", "minus-zero"])
def test_a_baseline_that_changes_a_cell_is_the_table_it_was(monkeypatch, model):
    truth = _truth(2)
    ref = R.reference_cells(model, truth, _labels)
    assert not isinstance(ref, IndexedCells)
    _same_cells(ref, _as_table(monkeypatch, model, truth))


def test_same_bits_tells_minus_zero_and_dtypes_apart_and_a_nan_is_itself():
    a = torch.tensor([0.0, 1.0, float("nan")])
    assert R.same_bits(a, a.clone())
    assert not R.same_bits(a, torch.tensor([-0.0, 1.0, float("nan")]))
    assert not R.same_bits(a, a.double())
    assert not R.same_bits(a, a[:2])


def test_indexed_cells_do_what_the_gathered_cells_do():
    truth = _truth(3)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(truth), 40)
    ref = IndexedCells(truth.X, rows, truth.conditions[rows], truth.genes, truth.contexts[rows], truth.batches[rows], truth.control)
    plain = truth.subset(rows)
    _same_cells(ref, plain)
    assert ref.X is not ref.X  # gathered when read, held by no one
    for got, want in ((ref.of_context("a"), plain.of_context("a")), (ref.controls(), plain.controls()),
                      (ref.perturbed(), plain.perturbed()), (ref.block(5, 17), plain.block(5, 17)), (ref.subset(rows > 20), plain.subset(rows > 20))):
        assert isinstance(got, IndexedCells) and got.base is truth.X
        _same_cells(got, want)
    _same_cells(ref.with_genes(list(reversed(truth.genes))), plain.with_genes(list(reversed(truth.genes))))
    assert ref.groups().keys() == plain.groups().keys() and repr(ref) == repr(plain)
    assert same_predictions(ref, plain) and not same_predictions(ref, Cells(plain.X + 1, plain.conditions, plain.genes, plain.contexts))
    with pytest.raises(ValueError, match="rows must index"):
        IndexedCells(truth.X, [len(truth)], ["P"], truth.genes)


def test_indexed_cells_are_relabelled_as_rows_of_their_base():
    """``dataclasses.replace`` cannot rebuild an ``IndexedCells`` (its constructor takes the base and rows, not ``X``):
    ``relabelled`` keeps the rows, and the evaluation's relabelling of a file's context goes through it."""
    truth = _truth(3)
    rows = np.arange(0, len(truth), 2)
    ref = IndexedCells(truth.X, rows, truth.conditions[rows], truth.genes, truth.contexts[rows], truth.batches[rows], truth.control)
    with pytest.raises(TypeError):
        dataclasses.replace(ref, contexts=np.full(len(ref), "k562", dtype=object))
    got = ref.relabelled(contexts=np.full(len(ref), "k562", dtype=object))
    assert isinstance(got, IndexedCells) and got.base is truth.X and set(got.contexts.tolist()) == {"k562"}
    _same_cells(got.relabelled(contexts=ref.contexts), ref)
    plain = truth.subset(rows).relabelled(contexts=np.full(len(ref), "k562", dtype=object))
    assert torch.equal(plain.X, got.X) and plain.contexts.tolist() == got.contexts.tolist()
    with pytest.raises(TypeError, match="labels only"):
        ref.relabelled(X=truth.X)
    with pytest.raises(ValueError):  # checked as at construction
        ref.relabelled(conditions=["P"])


def test_same_predictions_by_blocks_is_the_whole_table_comparison(monkeypatch):
    from distgen.evaluation import aliases

    truth = _truth(4)
    other = Cells(truth.X.clone(), truth.conditions, truth.genes, truth.contexts)
    other.X[-1, -1] += 1.0  # one value off, in the last block
    monkeypatch.setattr(aliases, "COMPARE_BLOCK_VALUES", 3 * len(truth.genes))  # blocks of 3 rows
    assert same_predictions(truth, truth) and not same_predictions(truth, other)
    nan = Cells(truth.X.clone(), truth.conditions, truth.genes, truth.contexts)
    nan.X[4, 2] = float("nan")
    assert same_predictions(nan, Cells(nan.X.clone(), nan.conditions, nan.genes, nan.contexts)) and not same_predictions(nan, truth)


@pytest.mark.parametrize("by_context", [True, False])
def test_scores_of_the_control_baseline_are_those_of_its_table(monkeypatch, by_context):
    truth = _truth(5)
    gen = torch.Generator().manual_seed(0)
    pred = Cells(truth.X * 0.8 + torch.rand(truth.X.shape, generator=gen), truth.conditions, truth.genes, truth.contexts, truth.batches)
    model = R._baseline("control")
    indexed = {"control": R.reference_cells(model, truth, _labels), "partly": R.reference_cells(Partly(), truth, _labels)}
    table = {"control": _as_table(monkeypatch, model, truth), "partly": indexed["partly"]}
    assert isinstance(indexed["control"], IndexedCells) and not isinstance(table["control"], IndexedCells)
    assert distinct_references(indexed)[1] == distinct_references(table)[1] == {}
    got, want = (score(pred, truth, refs, by_context=by_context, metrics=METRICS, seed=1, ceiling_splits=2, progress=False)
                 for refs in (indexed, table))
    for name in ("control", "partly"):
        a, b = got.references[name], want.references[name]
        assert a.perts == b.perts
        for m in a.values:
            assert all((math.isnan(u) and math.isnan(v)) or u == v for u, v in zip(a.values[m], b.values[m], strict=True)), (name, m)
