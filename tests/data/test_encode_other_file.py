"""PerturbationData.encode on cells of another file than the training one: aligned by name, or refused with the fix."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.data import PerturbationData, PerturbationSchema
from distgen.errors import InputDataError, InputKeyError

from .conftest import make_adata


@pytest.fixture
def data(tiny_adata, tiny_schema):
    return PerturbationData.from_anndata(tiny_adata, tiny_schema)


def _quiet_encode(data, adata):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return data.encode(adata)


def test_genes_in_another_order_or_with_extra_genes_are_aligned_by_name(data, tiny_adata):
    ref = data.encode(tiny_adata)
    perm = np.random.default_rng(0).permutation(tiny_adata.n_vars)
    shuffled = _quiet_encode(data, tiny_adata[:, perm].copy())
    assert torch.equal(shuffled.X, ref.X) and torch.equal(shuffled.labels.perturbation, ref.labels.perturbation)
    # log1p values with two extra genes: the training genes' columns, in training order, untouched
    logged = tiny_adata.copy()
    logged.X = np.asarray(data.table.X.numpy())
    log_ref = data.encode(logged)
    wider = ad.AnnData(np.concatenate([logged.X, logged.X[:, :2]], 1), obs=logged.obs.copy(),
                       var=pd.DataFrame(index=[*map(str, logged.var_names), "x1", "x2"]))
    assert torch.equal(_quiet_encode(data, wider[:, ::-1].copy()).X, log_ref.X)


def test_combination_atoms_in_another_order_are_the_same_condition(data, tiny_adata):
    swapped = tiny_adata.copy()
    swapped.obs["condition"] = ["+".join(reversed(c.split("+"))) for c in swapped.obs["condition"].astype(str)]
    assert torch.equal(data.encode(swapped).labels.perturbation, data.encode(tiny_adata).labels.perturbation)


def test_missing_training_genes_are_refused_with_the_count(data, tiny_adata):
    with pytest.raises(InputDataError, match=r"2 of the 15 training genes are missing \('A', 'B'\)\. A model reads every training gene") as e:
        data.encode(tiny_adata[:, 2:].copy())
    assert "unknown" not in str(e.value) and "not training genes" not in str(e.value)


@pytest.mark.parametrize("text_dtype", [object, "string"])  # "string": pandas' string dtype, pandas 3's default for text
def test_ensembl_ids_with_symbols_in_a_var_column_name_that_column(data, tiny_adata, text_dtype):
    ens = tiny_adata.copy()
    ens.var["symbol"] = pd.Series(list(map(str, ens.var_names)), index=ens.var_names, dtype=text_dtype)
    ens.var_names = [f"ENSG{i:011d}" for i in range(ens.n_vars)]
    with pytest.raises(InputDataError, match=r"training genes are in var column 'symbol'.*adata\.var\['symbol'\]"):
        data.encode(ens)


def test_gene_names_in_another_case_say_so(data, tiny_adata):
    low = tiny_adata.copy()
    low.var_names = [g.lower() for g in map(str, low.var_names)]
    with pytest.raises(InputDataError, match="differ only in case"):
        data.encode(low)


def test_labels_in_another_case_are_refused_naming_the_training_spelling(data, tiny_adata):
    low = tiny_adata.copy()
    low.obs["condition"] = low.obs["condition"].astype(str).str.replace("A", "a")
    with pytest.raises(InputKeyError, match=r"unknown perturbation 'a' \(not in the training file\).*'a' is 'A'") as e:
        data.encode(low)
    assert "cannot predict them" not in str(e.value)  # a spelling, not a perturbation the run never saw


def test_an_unseen_perturbation_is_refused_saying_the_run_cannot_predict_it(data):
    new = make_adata(conditions=("control", "Z"), seed=1)
    with pytest.raises(InputKeyError, match=r"unknown perturbation 'Z' \(not in the training file\): the run has no label id for them, so it cannot predict them"):
        data.encode(new)


def test_another_control_label_is_refused_naming_the_training_one(data, tiny_adata):
    other = tiny_adata.copy()
    other.obs["condition"] = other.obs["condition"].astype(str).replace({"control": "ctrl"})
    with pytest.raises(InputKeyError, match=r"unknown perturbation 'ctrl' \(not in the training file\); ctrl look\(s\) like control labels.*\['control'\].*replace\(\{'ctrl': 'control'\}\)"):
        data.encode(other)


def test_unseen_context_and_batch_are_refused(data, tiny_adata):
    new_ctx = tiny_adata.copy()
    new_ctx.obs["cell_type"] = "ct9"
    with pytest.raises(InputKeyError, match=r"unknown context 'ct9' \(not in the training file; known: ct1, ct2\)"):
        data.encode(new_ctx)
    case = tiny_adata.copy()
    case.obs["donor"] = case.obs["donor"].astype(str).str.upper()
    with pytest.raises(InputKeyError, match=r"unknown batches 'B1', 'B2'") as e:
        data.encode(case)
    assert "'B1' is 'b1'" in str(e.value)


def test_renamed_obs_columns_name_the_rename(data, tiny_adata):
    renamed = tiny_adata.copy()
    renamed.obs = renamed.obs.rename(columns={"condition": "perturbation", "cell_type": "celltype"})
    with pytest.raises(InputKeyError, match=r"rename\(columns=\{'perturbation': 'condition', 'celltype': 'cell_type'\}\)"):
        data.encode(renamed)


def test_a_missing_context_column_suggests_a_constant_one(data, tiny_adata):
    one = tiny_adata[tiny_adata.obs["cell_type"] == "ct2"].copy()
    del one.obs["cell_type"]
    with pytest.raises(InputKeyError, match=r"constant column, e\.g\. adata\.obs\['cell_type'\] = 'ct1' \(one of ct1, ct2\)"):
        data.encode(one)


def _log_data(normalised_to: float = 1e4):
    a = make_adata(counts=False)
    schema = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",),
                                batch_col="donor", scale="log")
    return a, schema


def test_log1p_normalised_to_another_total_warns():
    """Log1p values of counts normalised to another total than the training cells' were encoded silently: every value
    is shifted by log(ratio) where a gene is expressed, and the model reads them as the same expression."""
    a, schema = _log_data()
    data = PerturbationData.from_anndata(a, schema)
    _quiet_encode(data, a)  # the training file itself: no warning
    other = a.copy()
    other.X = np.log1p(np.expm1(a.X) * 100).astype(np.float32)  # CPM instead of 1e4
    with pytest.warns(UserWarning, match=r"another scale than the training cells.*differs by more than 4x in 2 contexts \(ct1: 1e\+06 vs 1e\+04"):
        data.encode(other)
    slightly = a.copy()
    slightly.X = np.log1p(np.expm1(a.X) * 2).astype(np.float32)  # within the factor: a perturbation can move totals this much
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.encode(slightly)
    assert not [w for w in caught if "another scale than the training cells" in str(w.message)]


def test_controls_are_compared_with_controls():
    """A context's new controls are compared with its training controls, not with every training cell."""
    a, schema = _log_data()
    data = PerturbationData.from_anndata(a, schema)
    ctrl = a[a.obs["condition"] == "control"].copy()
    _quiet_encode(data, ctrl)
    ctrl.X = np.log1p(np.expm1(ctrl.X) * 10).astype(np.float32)
    with pytest.warns(UserWarning, match="controls compared with controls"):
        data.encode(ctrl)


def test_log1p_cells_against_counts_training_compare_normalised_totals(tiny_adata, tiny_schema, data):
    """Training on counts: log1p cells normalised with the schema's target_sum are on its scale, CPM ones are not."""
    x = tiny_adata.X / tiny_adata.X.sum(1, keepdims=True)
    same, cpm = tiny_adata.copy(), tiny_adata.copy()
    same.X, cpm.X = np.log1p(x * 1e4).astype(np.float32), np.log1p(x * 1e6).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(data.encode(same).X, data.table.X)
    with pytest.warns(UserWarning, match="another scale than the training cells"):
        data.encode(cpm)


def test_labels_for_names_the_training_spelling_too(data):
    """labels_for (the labels of a direct model.predict) gave a bare KeyError without the case or control hints of encode."""
    with pytest.raises(InputKeyError, match=r"labels_for: .*unknown perturbation 'b'.*'b' is 'B'"):
        data.labels_for(["A+b"])
    with pytest.raises(InputKeyError, match=r"unknown context 'CT1'.*'CT1' is 'ct1'"):
        data.labels_for(["A"], contexts=["CT1"])
    assert data.labels_for(["B+A"]).perturbation.tolist() == data.labels_for(["A+B"]).perturbation.tolist()


def test_duplicated_names_outside_the_training_genes_are_read(data, tiny_adata):
    """A file with every gene of the assay repeats some symbols (10x features): encode refused it even when no training
    gene was repeated. Counts are normalised over every column given, the repeated ones included."""
    x = np.concatenate([tiny_adata.X, tiny_adata.X[:, :2]], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's own "not unique" warning
        wide = ad.AnnData(x, obs=tiny_adata.obs.copy(), var=pd.DataFrame(index=[*map(str, tiny_adata.var_names), "dup", "dup"]))
    with pytest.warns(UserWarning, match="counts over 17 genes"):  # another library than the training file's: said as before
        table = data.encode(wide)
    expected = np.log1p(x / x.sum(1, keepdims=True) * 1e4)[:, :15]
    np.testing.assert_allclose(table.X.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_empty_cells_to_encode_are_told_as_at_load_and_an_all_zero_matrix_is_refused(data, tiny_adata):
    """An all-zero matrix was encoded into all-zero cells with only scanpy's 'Some cells have zero counts'; the load refuses
    it and warns of empty cells, naming how many are controls."""
    zero = tiny_adata.copy()
    zero.X = np.zeros_like(np.asarray(zero.X))
    with pytest.raises(InputDataError, match="holds no non-zero value"):
        data.encode(zero)
    some = tiny_adata.copy()
    x = np.asarray(some.X).copy()
    x[:2] = 0
    some.X = x
    with pytest.warns(UserWarning, match=r"2 of .* have no expression at all") as got:
        data.encode(some)
    assert not any("Some cells have zero counts" in str(w.message) for w in got)
    assert data.encode(tiny_adata[:0].copy()).X.shape[0] == 0  # no cells: nothing to say
