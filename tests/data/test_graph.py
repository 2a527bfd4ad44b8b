"""Gene graphs: top-k co-expression and edge lists."""

import numpy as np
import pytest
import torch

from distgen.data.graph import _CACHE, coexpression_graph, edge_list_graph


def _cells(seed=0, n=400):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g)
    noise = 0.1 * torch.randn(n, 6, generator=g)
    # genes 0,1,2 follow z0 (gene 2 negatively); genes 3,4 follow z1; gene 5 is constant
    x = torch.stack([z[:, 0], z[:, 0], -z[:, 0], z[:, 1], z[:, 1], torch.zeros(n)], 1) + noise
    x[:, 5] = 1.0
    return x


def test_topk_recovers_modules():
    adj = coexpression_graph(_cells(), k=2)
    assert adj.dtype == torch.bool and adj.shape == (6, 6)
    assert torch.equal(adj, adj.T) and adj.diagonal().all()
    assert adj[0, 1] and adj[0, 2] and adj[1, 2]  # |Pearson| links the negatively correlated gene too
    one = coexpression_graph(_cells(), k=1)
    assert one[3, 4]
    assert not one[:3, 3:5].any()  # no link across the two modules at k=1


def test_constant_gene_gets_no_coexpression_edges():
    adj = coexpression_graph(_cells(seed=2), k=3)  # k larger than any module: ties at |r| = 0 would otherwise be edges
    assert adj[5, 5] and adj[5].sum() == 1 and adj[:, 5].sum() == 1


def test_matches_numpy_pearson_definition():
    x = torch.rand(50, 8, generator=torch.Generator().manual_seed(1))
    corr = np.abs(np.corrcoef(x.numpy().T))
    np.fill_diagonal(corr, -1)
    expected = np.zeros((8, 8), bool)
    for i, row in enumerate(corr):
        expected[i, np.argsort(-row)[:3]] = True
    expected |= expected.T
    np.fill_diagonal(expected, True)
    assert np.array_equal(coexpression_graph(x, k=3).numpy(), expected)


def test_cached_by_content(tmp_path):
    x = _cells(seed=3)
    a = coexpression_graph(x, k=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("coexpr_*.pt"))) == 1
    _CACHE.clear()
    assert torch.equal(coexpression_graph(x.clone(), k=2, cache_dir=tmp_path), a)  # from disk
    x2 = x.clone()
    x2[0, 0] += 1.0
    coexpression_graph(x2, k=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("coexpr_*.pt"))) == 2


def test_edge_list(tmp_path):
    genes = ["A", "B", "C", "D"]
    f = tmp_path / "edges.tsv"
    f.write_text("source\ttarget\nA\tB\nC\tD\nA\tZZZ\n")
    with pytest.warns(UserWarning, match="dropped 1 of 3"):
        adj = edge_list_graph(f, genes)
    assert adj[0, 1] and adj[1, 0] and adj[2, 3] and adj.diagonal().all() and not adj[0, 2]
    directed = edge_list_graph([("A", "C")], genes, symmetric=False)
    assert directed[0, 2] and not directed[2, 0]


def test_bad_input():
    with pytest.raises(ValueError, match="N >= 2"):
        coexpression_graph(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="k must be"):
        coexpression_graph(torch.zeros(5, 4), k=0)


def test_gene_graph_records_its_cells_for_the_leakage_check(tiny_adata, tiny_schema):
    from distgen.data import LeakageError, PerturbationData, gene_graph, make_split

    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    split = make_split(data, "combo_seen2", seed=0)
    adj = gene_graph(data, split.train, k=3)
    assert torch.equal(adj, coexpression_graph(data.table.X[split.train], k=3))
    split.check_leakage(data)
    gene_graph(data, np.arange(data.n_cells), k=3)
    with pytest.raises(LeakageError, match="gene_graph"):
        split.check_leakage(data)
