"""A user's file stored another way than distgen writes its own: read the same, or refused with what to do.

Before: a backed AnnData whose ``X`` is sparse failed ``distgen.evaluate`` with numpy's "setting an array element with a
sequence"; a file without ``X`` with "Cells.X must be [N, G], got shape (1,)"; a ``.zarr`` store was "a folder"; a file
too wide for a dense table in memory went on until the allocation failed (or the OOM killer ended the process without a
word); a (condition, context) group with no expression at all was only counted among the empty cells; a matrix of zeros
loaded; the content hash copied the whole table once more.
"""

import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import distgen
import distgen.data.memory as memory
from distgen.config import ConfigError
from distgen.data import PerturbationData, PerturbationSchema, layout
from distgen.data.bundled import NORMAN_SCHEMA, norman_k562
from distgen.errors import InputFileError
from tests.data.conftest import make_adata

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")
SECTION = {"schema": {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor"},
           "split": {"kind": "random_conditions", "test_conditions": ["A"]}}


def _load(adata, schema=SCHEMA):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = PerturbationData.from_anndata(adata, schema)
    return data, [str(w.message) for w in caught]


# ---------------------------------------------------------------------------------------------- how X is stored
@pytest.fixture(scope="module")
def muscat(request):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "kang2018_muscat_example",
                        "kang2018_muscat_example_sce.h5ad")
    if not os.path.exists(path):
        pytest.skip("../shared/data is not present")
    return ad.read_h5ad(path)  # raw counts, float32 CSR, with layers['logcounts']


@pytest.fixture(scope="module")
def muscat_loaded(muscat):
    return PerturbationData.from_anndata(muscat, MUSCAT)


MUSCAT = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",),
                            perturbation_type="chemical")


def _stored(adata, how):
    a = adata.copy()
    if how == "csc":
        a.X = a.X.tocsc()
    elif how == "dense":
        a.X = a.X.toarray()
    elif how.startswith("dense_"):
        a.X = a.X.toarray().astype(how[6:])
    elif how.startswith("csr_"):
        a.X = a.X.astype(how[4:])
    elif how == "layer_only":
        a.layers["counts"], a.X = a.X, None
    elif how == "string_obs":
        a.obs["condition"] = a.obs["condition"].astype("string")
        a.obs["cell_type"] = a.obs["cell_type"].astype(object)
    elif how == "unused_categories":
        a.obs["condition"] = a.obs["condition"].cat.add_categories(["never"])
        a.obs["cell_type"] = a.obs["cell_type"].cat.add_categories(["nowhere"])
    return a


@pytest.mark.parametrize("how", ["csc", "dense", "csr_int32", "csr_int64", "csr_uint16", "csr_float64", "dense_float16",
                                 "dense_int64", "layer_only", "string_obs", "unused_categories"])
def test_counts_stored_another_way_load_the_same_table(muscat, muscat_loaded, how, tmp_path):
    want = muscat_loaded
    path = tmp_path / f"{how}.h5ad"
    _stored(muscat, how).write_h5ad(path)
    schema = PerturbationSchema.from_dict({**MUSCAT.to_dict(), "expression": "counts" if how == "layer_only" else "X"})
    got = PerturbationData.read_h5ad(str(path), schema)
    np.testing.assert_array_equal(got.table.X.numpy(), want.table.X.numpy())
    assert list(got.conditions) == list(want.conditions) and list(got.contexts) == list(want.contexts)
    assert got.info == want.info and got.scale == "counts"


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_compressed_files_load_the_same_table(muscat, muscat_loaded, compression, tmp_path):
    muscat.write_h5ad(tmp_path / "c.h5ad", compression=compression)
    got = PerturbationData.read_h5ad(str(tmp_path / "c.h5ad"), MUSCAT)
    np.testing.assert_array_equal(got.table.X.numpy(), muscat_loaded.table.X.numpy())


def test_no_X_names_the_layers_to_read():
    adata = make_adata()
    adata.layers["counts"], adata.X = adata.X, None
    with pytest.raises(ValueError, match=r"adata.X is None: .*data.schema.expression.*'counts'"):
        PerturbationData.from_anndata(adata, SCHEMA)


# ---------------------------------------------------------------------------------------------- zarr stores
def test_a_zarr_store_is_a_dataset_like_its_h5ad(tmp_path):
    adata = make_adata()
    adata.write_h5ad(tmp_path / "cells.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: "Writing zarr v2 data will no longer be the default"
        adata.write_zarr(tmp_path / "cells.zarr")
    h5ad = distgen.load_data(str(tmp_path / "cells.h5ad"), **SECTION)
    zarr = distgen.load_data(str(tmp_path / "cells.zarr"), **SECTION)  # was: "is a folder; give the path of an .h5ad file"
    assert zarr.data.hash == h5ad.data.hash and zarr.split.hash == h5ad.split.hash
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputFileError, match=r"is a folder \(and not a zarr store\)"):
        layout.as_anndata(str(tmp_path / "plain"), "real file")


def test_a_zarr_truth_is_evaluated_like_its_h5ad(tmp_path):
    real = make_adata(counts=False)
    real.obs = real.obs.rename(columns={"condition": "target", "cell_type": "celltype"})
    real.write_h5ad(tmp_path / "real.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real.write_zarr(tmp_path / "real.zarr")
    pred = real.copy()
    pred.X = pred.X * 0.9
    pred.write_h5ad(tmp_path / "pred.h5ad")
    light = {"metric_names": ["mse", "pearson_delta", "edistance"], "make_plots": False}  # the reading is under test, not the suite
    a = distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), str(tmp_path / "a"), **light)
    b = distgen.evaluate(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.zarr"), str(tmp_path / "b"), **light)
    for m in light["metric_names"]:
        assert a.metrics[m]["model"] == b.metrics[m]["model"]
    assert a.metrics["mse"]["model"] > 0


# ---------------------------------------------------------------------------------------------- backed and X-less files to evaluate
@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_a_backed_prediction_or_truth_is_read_like_the_file(fmt, tmp_path):
    real = make_adata(counts=False)
    real.obs = real.obs.rename(columns={"condition": "target"})
    real.X = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](real.X)
    real.write_h5ad(tmp_path / "real.h5ad")
    backed = ad.read_h5ad(tmp_path / "real.h5ad", backed="r")
    pred, truth, _, _ = layout.read_pair(backed, backed)  # was: ValueError: setting an array element with a sequence (sparse)
    np.testing.assert_array_equal(truth.X.numpy(), np.asarray(sp.csr_matrix(real.X).toarray()))
    np.testing.assert_array_equal(pred.X.numpy(), truth.X.numpy())
    assert backed.isbacked  # the caller's object is left backed


def test_a_file_without_X_to_evaluate_names_its_layers(tmp_path):
    real = make_adata(counts=False)
    real.obs = real.obs.rename(columns={"condition": "target"})
    real.layers["lognorm"], real.X = real.X, None
    with pytest.raises(ValueError, match=r"no expression matrix \(adata.X is None; layers: \['lognorm'\]\).*adata.X = adata.layers\['lognorm'\]"):
        layout.read(real)  # was: Cells.X must be [N, G], got shape (1,)


def test_load_data_given_a_backed_anndata_names_its_file(tmp_path):
    make_adata().write_h5ad(tmp_path / "cells.h5ad")
    backed = ad.read_h5ad(tmp_path / "cells.h5ad", backed="r")
    with pytest.raises(ConfigError, match=r"backed AnnData; give the path of its file instead.*cells\.h5ad"):
        distgen.load_data(backed)


# ---------------------------------------------------------------------------------------------- too wide for memory
def test_a_table_that_cannot_fit_in_memory_is_refused_before_it_is_built(monkeypatch):
    adata = make_adata()  # 336 cells x 15 genes: 20 KB dense
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(memory.TooLargeError, match=r"336 cells x 15 genes .* more than the .* GiB of memory available.*"
                       r"fewer genes in the file.*StreamBatches"):
        PerturbationData.from_anndata(adata, SCHEMA)
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000_000)
    data = PerturbationData.from_anndata(adata, SCHEMA)
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(memory.TooLargeError, match="the cells to encode"):
        data.encode(adata)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown (no /proc): nothing refused
    PerturbationData.from_anndata(adata, SCHEMA)


def test_available_memory_is_bounded_by_a_container_limit(monkeypatch, tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("1000000\n")
    (v2 / "memory.current").write_text("400000\n")
    monkeypatch.setattr(memory, "_CGROUP_V2", v2)
    monkeypatch.setattr(memory, "_CGROUP_V1", tmp_path / "none")
    assert memory.available_memory() == 600_000  # far below the machine's MemAvailable
    (v2 / "memory.max").write_text("max\n")  # no limit: the machine's
    free = memory.available_memory()
    assert free is None or free > 600_000


def test_the_content_hash_is_what_it_was():
    # runs record it (check_same_data compares it on predict and resume): the copy-free hash keeps its value (1d48e55)
    assert PerturbationData.from_anndata(norman_k562(), NORMAN_SCHEMA).hash == "dbf5e269e86a3f1d"


def test_the_content_hash_covers_the_values():
    data = PerturbationData.from_anndata(make_adata(), SCHEMA)
    before = data.hash
    genes = list(data.info.genes)
    assert data.subset_genes(genes[::-1]).subset_genes(genes).hash == before  # the table after two copies: same bytes
    data.table.X[3, 2] += 1.0
    assert data.hash != before


# ---------------------------------------------------------------------------------------------- empty cells and groups
def test_a_group_whose_every_cell_is_empty_is_named():
    adata = make_adata()
    x = adata.X.copy()
    group = np.flatnonzero((adata.obs["condition"] == "B").to_numpy() & (adata.obs["cell_type"] == "ct2").to_numpy())
    x[group] = 0
    x[0] = 0  # one more empty cell, a control: its group keeps other cells
    adata.X = sp.csr_matrix(x)
    data, messages = _load(adata)
    assert data.n_cells == adata.n_obs
    said = [m for m in messages if "no expression at all" in m]
    assert len(said) == 1 and f"{len(group) + 1} of " in said[0]
    assert f"Every cell of 1 (condition, context) group is empty: 'B @ ct2 ({len(group)} cells)';" in said[0]


def test_a_matrix_without_a_non_zero_value_is_refused():
    adata = make_adata()
    adata.X = sp.csr_matrix(adata.shape, dtype=np.float32)  # was loaded, as log values of 0, with a warning
    with pytest.raises(ValueError, match="holds no non-zero value"):
        PerturbationData.from_anndata(adata, SCHEMA)


def test_var_and_obs_names_stored_as_numbers_are_read_as_text(tmp_path):
    adata = make_adata()
    adata.var_names = pd.Index([str(i) for i in range(adata.n_vars)])
    adata.obs_names = pd.Index([str(i) for i in range(adata.n_obs)])
    adata.write_h5ad(tmp_path / "n.h5ad")
    data = PerturbationData.read_h5ad(str(tmp_path / "n.h5ad"), PerturbationSchema.from_dict({**SCHEMA.to_dict(),
                                                                                               "perturbation_type": "chemical"}))
    assert data.info.genes[:3] == ("0", "1", "2") and data.n_cells == adata.n_obs


# ---------------------------------------------------------------------------------------------- streamed from disk
def test_a_dense_float16_file_streams_like_its_float32_file(tmp_path):
    from distgen.data.disk import DiskCells

    adata = make_adata()  # counts up to a few dozen: float16 holds them exactly
    adata.write_h5ad(tmp_path / "f32.h5ad")
    adata.X = adata.X.astype(np.float16)
    adata.write_h5ad(tmp_path / "f16.h5ad")
    rows = np.arange(0, adata.n_obs, 5)
    want = DiskCells(tmp_path / "f32.h5ad", SCHEMA).read(rows).toarray()
    got = DiskCells(tmp_path / "f16.h5ad", SCHEMA).read(rows).toarray()  # was: scipy.sparse does not support dtype float16
    np.testing.assert_array_equal(got, want)


def test_a_streamed_file_without_X_or_with_duplicated_genes_is_named(tmp_path):
    from distgen.data.disk import DiskCells

    adata = make_adata()
    adata.layers["counts"], adata.X = adata.X, None
    adata.write_h5ad(tmp_path / "layers.h5ad")
    with pytest.raises(KeyError, match=r"has no X; stream a layer instead .*layers: \['counts'\]"):
        DiskCells(tmp_path / "layers.h5ad", SCHEMA)  # was: Unable to synchronously open object (object 'X' doesn't exist)
    streamed = DiskCells(tmp_path / "layers.h5ad", PerturbationSchema.from_dict({**SCHEMA.to_dict(), "expression": "layers/counts"}))
    assert streamed.n_cells == adata.n_obs
    adata = make_adata()
    adata.var_names = ["A", "A", *adata.var_names[2:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: "Variable names are not unique"
        adata.write_h5ad(tmp_path / "dup.h5ad")
    with pytest.raises(ValueError, match=r"duplicated gene names \['A'\]; make them unique first"):
        DiskCells(tmp_path / "dup.h5ad", SCHEMA)  # was: DataInfo.genes has duplicated entries: ['A']


def test_a_streamed_file_whose_x_is_a_null_element_has_no_x(tmp_path):
    """anndata 0.12.0 writes ``X = None`` as an empty element encoded ``null`` (later releases write no X): streaming
    read it as the matrix and failed in h5py ("Empty datasets cannot be sliced")."""
    import h5py

    from distgen.data.disk import DiskCells

    adata = make_adata()
    adata.layers["counts"], adata.X = adata.X, None
    adata.write_h5ad(tmp_path / "null_x.h5ad")
    with h5py.File(tmp_path / "null_x.h5ad", "r+") as f:
        if "X" in f:
            del f["X"]
        f.create_dataset("X", data=h5py.Empty("f"))
        f["X"].attrs.update({"encoding-type": "null", "encoding-version": "0.1.0"})
    with pytest.raises(KeyError, match=r"has no X; stream a layer instead .*layers: \['counts'\]"):
        DiskCells(tmp_path / "null_x.h5ad", SCHEMA)
    streamed = DiskCells(tmp_path / "null_x.h5ad", PerturbationSchema.from_dict({**SCHEMA.to_dict(), "expression": "layers/counts"}))
    assert streamed.n_cells == adata.n_obs


def _write_legacy(adata, path):
    """An .h5ad as anndata before 0.7 wrote it: obs and var as compound tables, categories in uns, X with h5sparse attrs."""
    import h5py

    x = sp.csr_matrix(adata.X)
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["h5sparse_format"], g.attrs["h5sparse_shape"] = "csr", np.array(x.shape)
        g["data"], g["indices"], g["indptr"] = x.data, x.indices, x.indptr
        cols = ["condition", "cell_type", "donor"]
        obs = np.zeros(adata.n_obs, dtype=[("index", "S16")] + [(c, "i1") for c in cols])
        obs["index"] = np.array(adata.obs_names, dtype="S16")
        for c in cols:
            cat = pd.Categorical(adata.obs[c])
            obs[c] = cat.codes
            f[f"uns/{c}_categories"] = np.array(cat.categories, dtype="S")
        f["obs"] = obs
        var = np.zeros(adata.n_vars, dtype=[("index", "S16")])
        var["index"] = np.array(adata.var_names, dtype="S16")
        f["var"] = var


def test_a_file_in_the_pre_0_7_encoding_loads_and_is_named_when_streamed(tmp_path):
    from distgen.data.disk import DiskCells

    adata = make_adata()
    _write_legacy(adata, tmp_path / "legacy.h5ad")
    got = PerturbationData.read_h5ad(str(tmp_path / "legacy.h5ad"), SCHEMA)  # anndata reads the old encoding
    want = PerturbationData.from_anndata(adata, SCHEMA)
    np.testing.assert_array_equal(got.table.X.numpy(), want.table.X.numpy())
    assert list(got.conditions) == list(want.conditions)
    with pytest.raises(ValueError, match=r"older anndata encoding .*anndata.read_h5ad\(path\).write_h5ad\(new_path\)"):
        DiskCells(tmp_path / "legacy.h5ad", SCHEMA)  # was: TypeError: Cannot compare structured or void to non-void arrays
