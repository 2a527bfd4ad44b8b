"""``data.hvg`` chooses genes on the stored (sparse) matrix before the dense table is built.

Before: every gene of the file was made dense first and the highly variable genes were chosen on that table, so a wide
file (30,000 genes) whose chosen panel fits in memory was refused by the memory pre-flight (or killed). Now only the
chosen genes are made dense; the genes, their order, the table, the data hash and the split hash are what the old path
(every gene dense, then ``highly_variable_genes``) gives, which is what existing runs recorded.
"""

import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import distgen.data.memory as memory
from distgen.data import PerturbationData, PerturbationSchema, highly_variable_genes, make_split
from distgen.data.prepared import Dataset
from distgen.data.section import data_section
from tests.data.conftest import make_adata

CT = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"]}
SHARED = [  # (file, schema, split, hvg): log and counts files, genetic perturbations whose genes are forced in
    ("kang2018_scgen_valid/kang2018_scgen_valid_pbmc.h5ad", CT, {"kind": "held_out_context"}, 1000),
    ("kang2018_muscat_example/kang2018_muscat_example_sce.h5ad", CT, {"kind": "held_out_context"}, 300),
    ("papalexi2021_eccite_thp1/papalexi2021_eccite_sceptre_lowmoi.h5ad",
     {"perturbation_col": "perturbation", "control_labels": ["control"], "context_cols": []}, {"kind": "random_conditions"}, 50),
    ("norman2019_mcfaline2023_perturbench_devel/perturbench_devel.h5ad", CT, {"kind": "random_conditions", "seed": 3}, 120),
    ("haber2017_hpoly_scgen_valid/haber2017_hpoly_scgen_valid.h5ad",
     {"perturbation_col": "condition", "control_labels": ["Control"], "context_cols": ["cell_label"]}, {"kind": "held_out_context"}, 800),
]


def _old_way(path, schema, split, hvg):
    """What ``Dataset.load`` did before: every gene dense, the split, then ``highly_variable_genes`` on the table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = PerturbationData.from_anndata(ad.read_h5ad(path), PerturbationSchema.from_dict(schema), copy=False)
    s = make_split(data, **split)
    return highly_variable_genes(data, hvg, fit_on=s.train), s


def _assert_same(new, old_data, old_split, n_file_genes):
    data = new.data
    assert data.info.genes == old_data.info.genes and data.info.n_genes < n_file_genes
    assert torch.equal(data.table.X, old_data.table.X)
    assert data.hash == old_data.hash and new.split.hash == old_split.hash
    assert list(data.adata.var_names) == list(old_data.adata.var_names)
    old_x, new_x = old_data.adata.X, data.adata.X
    assert sp.issparse(old_x) == sp.issparse(new_x)
    assert np.array_equal(new_x.toarray() if sp.issparse(new_x) else new_x, old_x.toarray() if sp.issparse(old_x) else old_x)
    assert data.fitted.keys() == old_data.fitted.keys() and np.array_equal(data.fitted["hvg"], old_data.fitted["hvg"])
    assert data.table.meta == old_data.table.meta and data.library_genes == old_data.library_genes
    assert new.provenance() == Dataset(old_data, old_split, new.section, load_warnings=new.load_warnings).provenance()


@pytest.mark.parametrize("name,schema,split,hvg", SHARED, ids=[s[0].split("/")[0] for s in SHARED])
def test_shared_files_select_the_same_genes_table_and_hashes(shared_data, name, schema, split, hvg):
    path = os.path.join(shared_data, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = Dataset.load(data_section({"dataset": path, "schema": schema, "split": split, "hvg": hvg}))
    old, old_split = _old_way(path, schema, split, hvg)
    n_genes = ad.read_h5ad(path, backed="r").n_vars
    _assert_same(new, old, old_split, n_genes)
    forced = [g for g in new.data.info.perturbations if g in set(ad.read_h5ad(path, backed="r").var_names)]
    assert set(forced) <= set(new.data.info.genes)


@pytest.mark.parametrize("counts", [True, False])
@pytest.mark.parametrize("storage", ["csr", "csc", "dense"])
def test_synthetic_files_counts_and_log_any_storage(tmp_path, counts, storage):
    adata = make_adata(n_genes=40, counts=counts, seed=4)
    adata.X = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[storage](adata.X)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    schema = {**CT, "batch_col": "donor"}
    split = {"kind": "random_conditions", "seed": 1}
    new = Dataset.load(data_section({"dataset": str(path), "schema": schema, "split": split, "hvg": 8}))
    old, old_split = _old_way(path, schema, split, 8)
    _assert_same(new, old, old_split, 40)
    assert {"A", "B", "C", "D", "E"} <= set(new.data.info.genes)  # every perturbed gene forced in: 8 + those not chosen


def test_a_split_file_is_used_for_the_selection(tmp_path):
    adata = make_adata(n_genes=40, seed=2)
    adata.X = sp.csr_matrix(adata.X)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    section = {"dataset": str(tmp_path / "cells.h5ad"), "schema": {**CT, "batch_col": "donor"}, "hvg": 10}
    first = Dataset.load(data_section({**section, "split": {"kind": "random_conditions", "seed": 5}}))
    saved = first.split.save(tmp_path / "split.json.gz")
    again = Dataset.load(data_section(section), split_file=saved)  # what predict and resume do
    assert again.data.hash == first.data.hash and again.split.hash == first.split.hash
    assert np.array_equal(again.data.fitted["hvg"], first.split.train.numpy())


def _wide(tmp_path, n_genes=2000):
    rng = np.random.default_rng(0)
    adata = make_adata(n_genes=15, seed=1)
    extra = sp.random(adata.n_obs, n_genes - 15, density=0.03, random_state=rng, format="csr",
                      data_rvs=lambda k: rng.integers(1, 20, k)).astype(np.float32)
    wide = ad.AnnData(X=sp.hstack([sp.csr_matrix(adata.X), extra]).tocsr(), obs=adata.obs,
                      var=pd.DataFrame(index=pd.Index(list(adata.var_names) + [f"w{i}" for i in range(n_genes - 15)])))
    wide.write_h5ad(tmp_path / "wide.h5ad")
    return {"dataset": str(tmp_path / "wide.h5ad"), "schema": {**CT, "batch_col": "donor"}, "hvg": 50}


def test_a_file_too_wide_to_be_dense_loads_when_its_selected_genes_fit(tmp_path, monkeypatch):
    section = _wide(tmp_path)  # 336 cells x 2000 genes: 2.7 MB dense; 50 (+5 perturbed) genes: 74 KB
    n_cells = 336
    room = memory.dense_bytes(n_cells, 200, n_cells * 200)  # room for a 200-gene panel and its working copies, not for 2000 genes
    assert memory.dense_bytes(n_cells, 2000, None) > room
    monkeypatch.setattr(memory, "available_memory", lambda: room)
    loaded = Dataset.load(data_section(section))  # was: TooLargeError naming 336 cells x 2000 genes
    assert 50 <= loaded.info.n_genes <= 55 and loaded.data.table.X.shape == (n_cells, loaded.info.n_genes)
    with pytest.raises(memory.TooLargeError, match="336 cells x 2000 genes"):  # without data.hvg: every gene, refused
        Dataset.load(data_section({**section, "hvg": None}))


def test_a_selected_panel_that_still_does_not_fit_is_refused_with_its_size(tmp_path, monkeypatch):
    section = _wide(tmp_path)
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(memory.TooLargeError, match=r"336 cells x 5[0-5] genes \(selected of the file's 2000 before the table is "
                       r"built\).*more than the 0\.0 GiB.*smaller data\.hvg"):
        Dataset.load(data_section(section))


def test_cells_to_encode_are_made_dense_on_the_training_genes_only(tmp_path, monkeypatch):
    import scanpy as sc

    section = _wide(tmp_path)
    loaded = Dataset.load(data_section(section))
    wide = ad.read_h5ad(section["dataset"])  # counts over 2000 genes; the training panel is ~55 of them
    expected = ad.AnnData(X=wide.X.astype(np.float32))
    sc.pp.normalize_total(expected, target_sum=loaded.data.schema.target_sum)  # over every gene given, as at load time
    sc.pp.log1p(expected)
    cols = wide.var_names.get_indexer(list(loaded.info.genes))
    room = memory.dense_bytes(wide.n_obs, 200, wide.X.nnz)  # the panel and the sparse copies fit; 2000 genes dense do not
    assert memory.dense_bytes(wide.n_obs, 2000, wide.X.nnz) > room
    monkeypatch.setattr(memory, "available_memory", lambda: room)
    table = loaded.data.encode(wide)  # was: TooLargeError naming 336 cells x 2000 genes
    assert np.array_equal(table.X.numpy(), expected.X.toarray()[:, cols])
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(memory.TooLargeError, match=rf"the cells to encode: 336 cells x {loaded.info.n_genes} genes"):
        loaded.data.encode(wide)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_hvg_on_cells_where_no_gene_varies_is_refused_by_name(tmp_path, sparse):
    """``data.hvg`` on a file whose every gene holds one value in all the training cells: scanpy ended in
    ``IndexError: index -1 is out of bounds`` (an internal error). There is nothing to rank: refused, naming the
    genes, the cells and the way out."""
    from distgen.cli import classify
    from distgen.data import bundled
    from distgen.errors import InputDataError

    adata = bundled.norman_k562()
    x = np.ones(adata.shape, dtype=np.float32)
    adata.X = sp.csr_matrix(x) if sparse else x
    adata.write_h5ad(tmp_path / "flat.h5ad")
    section = {"dataset": str(tmp_path / "flat.h5ad"), "hvg": 3, "schema": bundled.NORMAN_SCHEMA.to_dict()}
    with pytest.raises(InputDataError) as e:
        Dataset.load(section)
    code, message = classify(e.value, "run")
    assert code == 2 and message is not None, message
    assert f"none of the {adata.n_vars} genes varies" in message and "data.hvg" in message, message
