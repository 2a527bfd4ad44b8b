"""Population summaries and the reduced basis."""

from __future__ import annotations

import pytest
import torch

from distgen.types import ConditionLabels
from distgen_bayes.basis import fit_basis
from distgen_bayes.populations import atom_sets, summarise, within_variance


def _labels() -> tuple[torch.Tensor, ConditionLabels]:
    x = torch.arange(24, dtype=torch.float32).reshape(8, 3)
    labels = ConditionLabels.make([[], [], [1, 0], [0, 1], [0], [0], [0], [2]], batch=[0, 0, 0, 0, 0, 0, 1, 1])
    return x, labels


def test_atom_sets_sort_and_drop_padding() -> None:
    assert atom_sets(torch.tensor([[1, 0], [-1, -1], [2, -1], [3, 3]])) == [(0, 1), (), (2,), (3,)]


def test_summarise_groups_by_condition_and_batch() -> None:
    x, labels = _labels()
    pops = summarise(x, labels, min_cells=2)
    # groups with >= 2 cells: control@b0 (rows 0,1), pair (0,1)@b0 (rows 2,3; atom order ignored), (0,)@b0 (rows 4,5)
    assert pops.atoms == ((), (0,), (0, 1))
    assert pops.count.tolist() == [2.0, 2.0, 2.0]
    torch.testing.assert_close(pops.mean[2], x[2:4].double().mean(0))
    torch.testing.assert_close(pops.mean[1], x[4:6].double().mean(0))
    assert pops.cell_index.tolist() == [0, 0, 2, 2, 1, 1, -1, -1]  # singleton groups dropped


def test_summarise_rejects_when_nothing_is_large_enough() -> None:
    x, labels = _labels()
    with pytest.raises(ValueError, match="min_cells=5"):
        summarise(x, labels, min_cells=5)


def test_within_variance_shrinks_towards_pooled() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=g) * 0.1, torch.randn(3, 2, generator=g) * 10.0])
    labels = ConditionLabels.make([[0]] * 50 + [[1]] * 3)
    pops = summarise(x, labels)
    raw_small = x[50:].double().var(0)
    v = within_variance(x.double(), pops, prior_strength=10.0)
    v0 = within_variance(x.double(), pops, prior_strength=1e-9)
    torch.testing.assert_close(v0[1], raw_small)  # no shrinkage: the sample variance
    assert (v[1] < raw_small).all()  # pulled towards the pooled value
    assert (v[0] - x[:50].double().var(0)).abs().max() < 0.5 * (v[1] - raw_small).abs().max()


def test_pca_basis_orthonormal_and_exact_on_its_span() -> None:
    g = torch.Generator().manual_seed(1)
    means = torch.randn(6, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 8, generator=g, dtype=torch.float64)  # rank 2
    basis = fit_basis(means, torch.ones(6), "pca", n_components=2)
    comps = basis.components
    torch.testing.assert_close(comps.T @ comps, torch.eye(2, dtype=comps.dtype), atol=1e-10, rtol=0)
    torch.testing.assert_close(basis.decode(basis.encode(means)), means.double(), atol=1e-8, rtol=0)
    z = basis.encode(means)
    torch.testing.assert_close(z.pow(2).mean(0), torch.ones(2, dtype=z.dtype), atol=1e-8, rtol=0)  # unit spread


def test_pca_caps_components_and_genes_basis_is_identity() -> None:
    means = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    assert fit_basis(means, torch.ones(3), "pca", n_components=10).dim == 2  # Np - 1
    b = fit_basis(means, torch.ones(3), "genes", n_components=10)
    assert b.dim == 5
    torch.testing.assert_close(b.decode(b.encode(means)), means.double())
    with pytest.raises(ValueError, match="reduction='umap'"):
        fit_basis(means, torch.ones(3), "umap", 2)
