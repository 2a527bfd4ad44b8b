"""``DiskCells(..., library_genes=)``: counts normalised over the genes a run normalised its training file over, then the kept
genes read. Before, a file read on a run's genes (``genes=``) was normalised over those genes only: with a gene selection
(``data.hvg``) each cell's library was the selected genes' share of it, another scale than the training cells'."""

import anndata as ad
import numpy as np
import pandas as pd

from distgen.data import PerturbationSchema
from distgen.data.disk import DiskCells

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",))
GENES = [f"g{i}" for i in range(20)]


def _write(path):
    rng = np.random.default_rng(0)
    conds = ["control"] * 12 + ["A"] * 12
    obs = pd.DataFrame({"condition": conds, "cell_type": "ct"}, index=[f"c{i}" for i in range(len(conds))])
    x = rng.poisson(rng.gamma(2.0, 3.0, len(GENES)), (len(conds), len(GENES))).astype(np.float32)
    x[:, 0] += 1  # no empty cell
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=GENES)).write_h5ad(path)
    return x


def test_counts_are_normalised_over_the_library_genes_then_the_kept_ones_read(tmp_path):
    x = _write(tmp_path / "c.h5ad")
    kept = ["g7", "g2", "g11", "g0"]
    cells = DiskCells(tmp_path / "c.h5ad", SCHEMA, genes=kept, library_genes=GENES)
    cols = [GENES.index(g) for g in kept]
    want = np.log1p(x / x.sum(1, keepdims=True) * 1e4)[:, cols]
    got = cells.read(np.arange(len(x))).toarray()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cells.library_sizes(np.array([3, 0, 3])), x.sum(1)[[3, 0, 3]])
    np.testing.assert_array_equal(cells.read(np.arange(3), log=False).toarray(), x[:3][:, cols])  # as stored
    alone = DiskCells(tmp_path / "c.h5ad", SCHEMA, genes=kept).read(np.arange(len(x))).toarray()  # over the kept genes only
    assert np.abs(alone - want).max() > 1.0


def test_library_genes_the_file_lacks_are_left_out_of_the_sum(tmp_path):
    x = _write(tmp_path / "c.h5ad")
    cells = DiskCells(tmp_path / "c.h5ad", SCHEMA, genes=["g3"], library_genes=["g3", "g4", "not_here"])
    np.testing.assert_allclose(cells.read(np.arange(4)).toarray()[:, 0], np.log1p(x[:4, 3] / x[:4, 3:5].sum(1) * 1e4), rtol=1e-5)
    np.testing.assert_array_equal(cells.library_sizes(np.arange(4)), x[:4, 3:5].sum(1))
