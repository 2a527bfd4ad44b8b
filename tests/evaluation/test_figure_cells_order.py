"""The figures that show a sample of cells draw the same cells, in the same order, whatever the files' row order.

``embedding_overlay.png`` took evenly spaced rows (beyond 2,000 cells) and the report's embedding figure a seeded random
subset of positions (beyond 4,000 cells for its PCA, 600 per facet), each drawn in row order: the same truth saved with
its rows in another order drew other cells, another PCA and other population means (Norman K562's 3,375 cells: 58,397
of the overlay's 302,500 pixels changed). Now the cells are chosen and ordered by their values
(``distgen.seeds.content_subset``).
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.cli import main
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.report import pick_rows
from distgen.report import cells
from distgen.seeds import content_keys, content_subset

GENES = tuple(f"g{i}" for i in range(12))


def _table(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.rand(n, len(GENES), generator=gen) * 4, generator=gen).log1p()


def test_content_subset_takes_the_same_cells_in_the_same_order_whatever_the_row_order():
    x = _table(500)
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(1))
    one = x[content_subset(content_keys(x, GENES), 40)]
    other = x[perm][content_subset(content_keys(x[perm], GENES), 40)]
    assert torch.equal(one, other)
    shuffled_genes = torch.randperm(len(GENES), generator=torch.Generator().manual_seed(2))
    names = [GENES[i] for i in shuffled_genes]
    third = x[:, shuffled_genes][content_subset(content_keys(x[:, shuffled_genes], names), 40)]
    assert torch.equal(third[:, torch.argsort(shuffled_genes)], one)
    assert not torch.equal(x[content_subset(content_keys(x, GENES), 40, seed=1)], one)  # another seed, other cells
    assert len(content_subset(content_keys(x, GENES), 900)) == 500


def test_pick_rows_of_blocks_is_the_pick_of_the_stacked_table():
    blocks = [_table(300, 0), _table(200, 1)]
    rows = pick_rows(blocks, 50, GENES)
    stacked = torch.cat(blocks)
    assert torch.equal(rows, stacked[content_subset(content_keys(stacked, GENES), 50)])
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(3))
    assert torch.equal(pick_rows([stacked[perm][:250], stacked[perm][250:]], 50, GENES), rows)


def _evaldata(groups: list[torch.Tensor], ctrl: torch.Tensor) -> EvalData:
    offsets = torch.tensor([0, *np.cumsum([g.shape[0] for g in groups]).tolist()])
    real = Population(X=torch.cat(groups), offsets=offsets, control=ctrl)
    n = len(groups)
    return EvalData(real=real, pred=real, perts=tuple(f"p{i}" for i in range(n)), targets=((),) * n, genes=GENES)


def test_the_report_pca_and_facets_use_the_same_cells_whatever_the_row_order():
    groups, ctrl = [_table(250, 4), _table(150, 5)], _table(300, 6)
    gen = torch.Generator().manual_seed(7)
    one = _evaldata(groups, ctrl)
    other = _evaldata([g[torch.randperm(g.shape[0], generator=gen)] for g in groups], ctrl[torch.randperm(300, generator=gen)])
    a, b = cells.RealPCA([one], max_cells=120), cells.RealPCA([other], max_cells=120)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.axes, b.axes)
    for i in range(2):
        ra, rb = one.real.cells(i), other.real.cells(i)
        assert torch.equal(ra[cells._rows(ra, GENES, 30, 0)], rb[cells._rows(rb, GENES, 30, 0)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``a.h5ad``: 2,100 cells (over the overlay's 2,000) of 12 genes; ``rows.h5ad`` its rows permuted."""
    root = tmp_path_factory.mktemp("fig")
    x = _table(2100, 7).numpy()
    obs = pd.DataFrame({"target": np.array(["non-targeting", "A", "B"])[np.arange(2100) % 3]}, index=[f"c{i}" for i in range(2100)])
    a = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=list(GENES)))
    a.write_h5ad(root / "a.h5ad")
    a[np.random.default_rng(1).permutation(2100)].copy().write_h5ad(root / "rows.h5ad")
    return root


def test_the_overlay_figure_is_the_same_for_a_file_in_another_row_order(files):
    for name in ("a", "rows"):
        f = str(files / f"{name}.h5ad")
        assert main(["evaluate", "--pred", f, "--real", f, "--out", str(files / f"ev_{name}"), "--metrics", "mse", "--no-ceiling",
                     "--baselines", "", "--quiet"]) == 0
    assert (files / "ev_a" / "embedding_overlay.png").read_bytes() == (files / "ev_rows" / "embedding_overlay.png").read_bytes()
