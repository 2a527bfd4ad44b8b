"""Effect terms: what training data informs, and what a query condition is made of."""

from __future__ import annotations

import torch

from distgen_bayes.design import Design
from distgen_bayes.populations import Populations


def _pops(atoms: list[tuple[int, ...]], contexts: list[int], batches: list[int]) -> Populations:
    n = len(atoms)
    return Populations(tuple(atoms), torch.tensor(contexts), torch.tensor(batches), torch.zeros(n, 2, dtype=torch.float64),
                       torch.ones(n, dtype=torch.float64), torch.arange(n))


def test_terms_seen_and_unseen() -> None:
    d = Design.from_populations(_pops([(), (0,), (1,), (0, 1), (2,)], [0] * 5, [0, 0, 1, 1, 1]))
    assert d.atoms == (0, 1, 2) and d.pairs == ((0, 1),) and d.atom_contexts == () and d.batches == (0, 1)
    t = d.terms((0, 1), 0)
    assert t.atoms == [0, 1] and t.pairs == [0] and not t.new_pairs
    t = d.terms((1, 2, 5), 0)
    assert t.atoms == [1, 2] and t.new_atoms == [5]
    assert t.new_pairs == [(1, 2), (1, 5), (2, 5)]


def test_context_interactions_only_across_contexts() -> None:
    one = Design.from_populations(_pops([(0,), (1,)], [0, 0], [0, 0]))
    assert not one.has_context_interactions
    two = Design.from_populations(_pops([(0,), (0,), (1,)], [0, 1, 0], [0, 0, 0]))
    assert two.atom_contexts == ((0, 0), (0, 1), (1, 0))
    t = two.terms((1,), 1)
    assert t.atom_contexts == [] and t.new_atom_contexts == [(1, 1)]
    off = Design.from_populations(_pops([(0,), (0,)], [0, 1], [0, 0]), context_interactions=False)
    assert not off.has_context_interactions


def test_interactions_off_adds_no_pair_terms() -> None:
    d = Design.from_populations(_pops([(0,), (1,), (0, 1)], [0] * 3, [0] * 3), interactions=False)
    t = d.terms((0, 1), 0)
    assert d.pairs == () and t.pairs == [] and t.new_pairs == []


def test_matrices_indicators_and_batch_members() -> None:
    d = Design.from_populations(_pops([(), (0,), (0, 1), (1,)], [0] * 4, [3, 3, 7, 3]))
    m = d.matrices(_pops([(), (0,), (0, 1), (1,)], [0] * 4, [3, 3, 7, 3]))
    assert m["x_atom"].tolist() == [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert m["x_pair"][:, 0].tolist() == [0, 0, 1, 0]
    assert m["batch"].tolist() == [0, 0, 1, 0]
    assert m["members"].tolist() == [[0, 1, 3], [2, 0, 0]]
    assert m["member_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
