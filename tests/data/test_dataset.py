"""PerturbationData.from_anndata: parsing, normalisation, scale detection and every bad input."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from distgen.data import PerturbationData, PerturbationSchema, make_split
from distgen.types import PAD

from .conftest import make_adata


def test_vocab_and_labels(tiny_adata, tiny_schema):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    assert data.info.perturbations == ("A", "B", "C", "D", "E")
    assert data.info.contexts == ("ct1", "ct2") and data.info.batches == ("b1", "b2")
    lab = data.table.labels
    assert lab.perturbation.shape == (data.n_cells, 2)
    ctrl = torch.from_numpy(data.is_control)
    assert (lab.perturbation[ctrl] == PAD).all()
    i = int(np.flatnonzero(data.conditions == "B+C")[0])
    assert sorted(data.info.perturbations[j] for j in lab.perturbation[i].tolist()) == ["B", "C"]
    assert data.table.X.dtype == torch.float32 and data.table.X.shape == (tiny_adata.n_obs, 15)


def test_counts_are_lognormalised_once_with_fixed_target(tiny_adata, tiny_schema):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    x = tiny_adata.X
    expected = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(data.table.X.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert data.scale == "counts"


def test_log_input_kept_as_is():
    a = make_adata(counts=False)
    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",)))
    assert data.scale == "log"
    np.testing.assert_allclose(data.table.X.numpy(), a.X)


def test_refuses_double_log():
    a = make_adata(counts=False)
    with pytest.raises(ValueError, match="refusing to log them a second time"):
        PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), scale="counts"))


def test_refuses_counts_declared_as_log(tiny_adata):
    tiny_adata.X[0, 0] = 500
    with pytest.raises(ValueError, match="raw counts"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",), scale="log"))


def test_refuses_normalised_unlogged(tiny_adata):
    tiny_adata.X = tiny_adata.X / tiny_adata.X.sum(1, keepdims=True) * 1e4
    with pytest.raises(ValueError, match="not log-transformed"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))


def test_warns_on_normalised_unlogged_values_below_the_log_range(tiny_adata):
    """normalize_total to a small total keeps every value < 20: read as log, but with a warning naming the cause."""
    tiny_adata.X = tiny_adata.X / tiny_adata.X.sum(1, keepdims=True) * 10.0
    assert tiny_adata.X.max() < 20
    with pytest.warns(UserWarning, match="normalised but not log-transformed: every cell sums to 10"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))


def test_log_normalised_values_raise_no_exponentiation_warning(tiny_adata):
    import warnings

    tiny_adata.X = np.log1p(tiny_adata.X / tiny_adata.X.sum(1, keepdims=True) * 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        data = PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))
    assert data.scale == "log"


def test_sparse_layer_and_obsm_sources(tiny_adata, tiny_schema):
    dense = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    b = tiny_adata.copy()
    b.layers["counts"] = sp.csr_matrix(b.X)
    b.X = np.zeros_like(b.X)
    from dataclasses import replace

    layered = PerturbationData.from_anndata(b, replace(tiny_schema, expression="layers/counts"))
    torch.testing.assert_close(layered.table.X, dense.table.X)
    b.obsm["X_pca"] = np.random.default_rng(0).normal(size=(b.n_obs, 4))
    emb = PerturbationData.from_anndata(b, replace(tiny_schema, expression="obsm/X_pca"))
    assert emb.info.genes == ("X_pca_0", "X_pca_1", "X_pca_2", "X_pca_3")


def test_gears_forms_parallel_columns_and_doses():
    a = make_adata(conditions=("ctrl", "A+ctrl", "A+B"), counts=False)
    data = PerturbationData.from_anndata(a, PerturbationSchema(control_labels=("ctrl",), context_cols=("cell_type",)))
    assert set(data.conditions) == {"control", "A", "A+B"}
    two = a.copy()
    parts = two.obs["condition"].str.split("+", expand=True)
    two.obs["p1"], two.obs["p2"] = parts[0], parts[1].fillna("ctrl")
    two.obs["dose"] = np.where(two.obs["condition"] == "A+B", "1+3", "2")
    d2 = PerturbationData.from_anndata(two, PerturbationSchema(perturbation_col=("p1", "p2"), control_labels=("ctrl",), dose_col="dose", context_cols=("cell_type",)))
    assert list(d2.conditions) == list(data.conditions)
    i = int(np.flatnonzero(d2.conditions == "A+B")[0])
    atoms = [d2.info.perturbations[j] for j in d2.table.labels.perturbation[i].tolist()]
    assert dict(zip(atoms, d2.table.labels.dose[i].tolist())) == {"A": 1.0, "B": 3.0}
    j = int(np.flatnonzero(d2.conditions == "A")[0])
    assert d2.table.labels.dose[j, 0] == 2.0


def test_combination_order_is_canonical():
    a = make_adata(conditions=("control", "A+B", "B+A"), counts=False, n_per_group=3)
    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",)))
    assert set(data.conditions) == {"control", "A+B"}


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("schema", "match"),
    [
        (PerturbationSchema(perturbation_col="perturbation"), "perturbation"),
        (PerturbationSchema(context_cols=("cell_line",)), "cell_line"),
        (PerturbationSchema(batch_col="plate"), "plate"),
    ],
)
def test_missing_columns(tiny_adata, schema, match):
    with pytest.raises(KeyError, match=match):
        PerturbationData.from_anndata(tiny_adata, schema)


def test_control_label_absent_names_candidates(tiny_adata):
    with pytest.raises(ValueError, match=r"'control'.*not in control_labels"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(control_labels=("non-targeting",), context_cols=("cell_type",)))
    tiny_adata.obs["condition"] = tiny_adata.obs["condition"].replace({"control": "NT"})
    with pytest.raises(ValueError, match=r"no control cells.*look like controls: \['NT'\]"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(control_labels=("non-targeting",), context_cols=("cell_type",)))


def test_context_without_controls(tiny_adata, tiny_schema):
    a = tiny_adata[~((tiny_adata.obs.condition == "control") & (tiny_adata.obs.cell_type == "ct2"))].copy()
    with pytest.raises(ValueError, match=r"\['ct2'\].*no control cells"):
        PerturbationData.from_anndata(a, tiny_schema)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_nan_inf_negative(tiny_adata, tiny_schema, bad):
    tiny_adata.X[3, 2] = bad
    with pytest.raises(ValueError, match="NaN/inf" if bad != -1.0 else "negative"):
        PerturbationData.from_anndata(tiny_adata, tiny_schema)


def test_duplicated_genes(tiny_adata, tiny_schema):
    tiny_adata.var_names = ["A", "A", *tiny_adata.var_names[2:]]
    with pytest.raises(ValueError, match="var_names_make_unique"):
        PerturbationData.from_anndata(tiny_adata, tiny_schema)


def test_condition_with_one_cell(tiny_adata, tiny_schema):
    keep = ~(tiny_adata.obs.condition == "C").to_numpy()
    keep[np.flatnonzero(~keep)[0]] = True
    with pytest.raises(ValueError, match=r"C @ ct1: 1"):
        PerturbationData.from_anndata(tiny_adata[keep].copy(), tiny_schema)


def test_delimiter_clash_with_gene_names():
    a = make_adata(conditions=("control", "HLA-A", "A-B"), counts=False, n_per_group=3)
    a.var_names = ["HLA-A", *a.var_names[1:]]
    with pytest.raises(ValueError, match="clashes with gene name 'HLA-A'"):
        PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), combo_delimiter="-"))


def test_gene_mismatch_and_unknown_perturbation_at_predict_time(tiny_adata, tiny_schema):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    with pytest.raises(ValueError, match="gene names differ"):
        data.check_genes(list(reversed(data.info.genes)))
    with pytest.raises(KeyError, match="unknown perturbation 'Z'"):
        data.labels_for(["A+Z"])
    new = make_adata(conditions=("control", "Z"), seed=1)
    with pytest.raises(KeyError, match="unknown perturbation 'Z'"):
        data.encode(new)
    wrong = make_adata(seed=1)
    wrong.var_names = [f"x{i}" for i in range(wrong.n_vars)]
    with pytest.raises(ValueError, match="gene names differ"):
        data.encode(wrong)


def test_encode_matches_load(tiny_adata, tiny_schema):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    table = data.encode(tiny_adata)
    torch.testing.assert_close(table.X, data.table.X)
    torch.testing.assert_close(table.labels.perturbation, data.table.labels.perturbation)


def test_empty_split_is_an_error(tiny_adata, tiny_schema):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    with pytest.raises(ValueError, match=r"\['A\+B'\] cannot be held out; eligible: \['D\+E'\]"):
        make_split(data, "combo_seen0", test_conditions=["A+B"])
    with pytest.raises(ValueError, match="exactly 1 constituent"):
        make_split(data, "combo_seen1")
    one_ctx = PerturbationData.from_anndata(tiny_adata, PerturbationSchema())
    with pytest.raises(ValueError, match=">= 2 contexts"):
        make_split(one_ctx, "held_out_context")


def test_input_not_modified(tiny_adata, tiny_schema):
    before = tiny_adata.X.copy()
    cols = list(tiny_adata.obs.columns)
    PerturbationData.from_anndata(tiny_adata, tiny_schema)
    np.testing.assert_array_equal(tiny_adata.X, before)
    assert list(tiny_adata.obs.columns) == cols


def test_empty_anndata():
    obs = pd.DataFrame({"condition": pd.Series([], dtype=str)}, index=pd.Index([], dtype=str))
    a = ad.AnnData(X=np.zeros((0, 3), dtype=np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(["x", "y", "z"])))
    with pytest.raises(ValueError, match="no cells"):
        PerturbationData.from_anndata(a, PerturbationSchema())
