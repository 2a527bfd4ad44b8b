"""A cell-type column that is neither a context nor the batch: its types are one context, said at load (unseen-data
round, 2026-12-06: a sci-Plex-layout file of three cell lines loaded without context_cols pooled them without a word)."""

import warnings

import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.disk import DiskCells

from .conftest import make_adata


def test_cell_types_pooled_into_one_context_are_named_with_the_fix(tmp_path):
    a = make_adata()
    a.obs["cell_line"] = a.obs["cell_type"].map({"ct1": "A549", "ct2": "MCF7"})
    a.obs = a.obs.drop(columns=["cell_type"])
    match = r"obs column 'cell_line' holds 2 values \(A549, MCF7\) but no context column is set.*context_cols: \[cell_line\]"
    with pytest.warns(UserWarning, match=match):
        data = PerturbationData.from_anndata(a, PerturbationSchema())
    assert data.info.contexts == ("all",)
    a.write_h5ad(tmp_path / "a.h5ad")
    with pytest.warns(UserWarning, match=match):
        DiskCells(str(tmp_path / "a.h5ad"), PerturbationSchema())


@pytest.mark.parametrize("schema", [PerturbationSchema(context_cols=("cell_type",)), PerturbationSchema(batch_col="cell_type"),
                                    PerturbationSchema(context_cols=("donor",))])
def test_a_named_column_or_a_chosen_context_stays_quiet(schema):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PerturbationData.from_anndata(make_adata(), schema)


def test_one_cell_type_stays_quiet():
    a = make_adata(contexts=("K562",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PerturbationData.from_anndata(a, PerturbationSchema())
