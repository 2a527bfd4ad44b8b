"""Cells: a labelled population (X with condition, context and batch of every cell), and its conversions."""

import numpy as np
import pytest
import torch

from distgen.testing.fixtures import tiny_table
from distgen.types import ALL, Cells, atoms_of, canonical, vocabulary


def _cells():
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    return Cells(x, ["A", "control", "A+B", "A", "control", "B"], ["g0", "g1"], ["x", "x", "y", "y", "y", "x"],
                 names=[f"c{i}" for i in range(6)])


def test_canonical_conditions_and_atoms():
    assert canonical(["B", "A", "B"]) == "A+B" and canonical([]) == "control" and canonical([], "ctrl") == "ctrl"
    assert atoms_of("A+B") == ("A", "B") and atoms_of("control") == () and atoms_of("NT", "NT") == ()


def test_groups_by_context_or_pooled():
    c = _cells()
    assert {k: v.tolist() for k, v in c.groups().items()} == {("A", "x"): [0], ("A", "y"): [3], ("A+B", "y"): [2], ("B", "x"): [5]}
    assert {k: v.tolist() for k, v in c.groups(by_context=False).items()} == {("A", ALL): [0, 3], ("A+B", ALL): [2], ("B", ALL): [5]}
    assert ("control", "y") in c.groups(include_control=True)


def test_subset_controls_concat_and_gene_order():
    c = _cells()
    y = c.controls("y")
    assert y.names.tolist() == ["c4"] and torch.equal(y.X, c.X[4:5])
    assert c.of_context("x").conditions.tolist() == ["A", "control", "B"]
    assert c.perturbed().is_control.sum() == 0 and len(c.perturbed()) == 4
    both = Cells.concat([c.subset([0, 1]), c.subset(np.array([False, False, True, False, False, False]))])
    assert both.conditions.tolist() == ["A", "control", "A+B"] and both.names.tolist() == ["c0", "c1", "c2"]
    flipped = c.with_genes(["g1", "g0"])
    assert torch.equal(flipped.X, c.X[:, [1, 0]])
    with pytest.raises(ValueError, match="different genes"):
        Cells.concat([c, flipped])
    with pytest.raises(KeyError, match="g9"):
        c.with_genes(["g9"])
    assert c.relabel_control("NT").conditions.tolist()[1] == "NT" and c.relabel_control("NT").is_control.sum() == 2


def test_bad_shapes_and_labels_are_named():
    with pytest.raises(ValueError, match=r"one label per cell \(2\)"):
        Cells(torch.zeros(2, 1), ["A"], ["g"])
    with pytest.raises(ValueError, match="2 gene columns but 1 gene names"):
        Cells(torch.zeros(2, 2), ["A", "B"], ["g"])
    with pytest.raises(ValueError, match="duplicated"):
        Cells(torch.zeros(1, 2), ["A"], ["g", "g"])


def test_table_round_trip_keeps_every_label():
    table = tiny_table()
    cells = Cells.from_table(table)
    back = cells.to_table(table.info)
    assert torch.equal(back.X, table.X)
    for name in ("perturbation", "context", "batch"):
        assert torch.equal(getattr(back.labels, name), getattr(table.labels, name)), name
    info = vocabulary([cells])
    assert set(info.perturbations) == {a for c in set(cells.conditions) for a in cells.atoms(c)}
    assert info.contexts == tuple(sorted(set(cells.contexts)))
    with pytest.raises(KeyError, match="unknown perturbation 'Z'"):
        Cells(torch.zeros(1, table.info.n_genes), ["Z"], table.info.genes).to_table(table.info)
