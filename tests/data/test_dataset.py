"""PerturbationData.from_anndata: parsing, normalisation, scale detection and every bad input."""

import warnings

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


def test_small_counts_declared_as_log_are_warned_about(tiny_adata):
    """Whole numbers up to 20 declared log were read as log-normalised values without a word (a shallow panel's counts);
    log1p-normalised values are never all whole numbers. A 0/1 matrix (binarised) stays quiet; 'auto' reads counts."""
    import warnings

    x = np.minimum(np.asarray(tiny_adata.X), 12.0)  # counts of a shallow panel: whole numbers below the log range
    tiny_adata.X = x
    assert np.all(x == np.round(x)) and x.max() == 12
    with pytest.warns(UserWarning, match=r"scale='log' but expression 'X' holds only whole numbers \(up to \d+\).*scale='counts'"):
        data = PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",), scale="log"))
    assert data.scale == "log"  # as declared
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",))).scale == "counts"
        tiny_adata.X = (x > 0).astype(np.float32)
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

    tiny_adata.X = np.log1p(tiny_adata.X / tiny_adata.X.sum(1, keepdims=True) * 1e4)  # normalised to the schema's target_sum: nothing to warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        data = PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))
    assert data.scale == "log"


def test_log1p_of_counts_never_normalised_is_warned_about(tiny_adata):
    """sc.pp.log1p without sc.pp.normalize_total loaded as log-normalised without a word (hostile-input round, 2026-12-06):
    each cell's library size is then in every value."""
    tiny_adata.X = np.log1p(tiny_adata.X)
    assert np.allclose(np.expm1(tiny_adata.X), np.round(np.expm1(tiny_adata.X)), atol=1e-3)  # whole counts: the case at hand
    with pytest.warns(UserWarning, match=r"looks like log1p of raw counts that were never normalised per cell.*sc\.pp\.normalize_total before"):
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
    with pytest.raises(ValueError, match=r"'ct2'.*no control cells"):
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
    with pytest.raises(ValueError, match=r"'A\+B' cannot be held out; eligible: 'D\+E'"):
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


def test_integers_flagged_as_logged_are_counts_unless_all_zero(tiny_adata, tiny_schema):
    # scanpy's uns['log1p'] describes X; integer values cannot be log1p of anything but zero
    from dataclasses import replace

    plain = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    flagged = tiny_adata.copy()
    flagged.uns["log1p"] = {"base": None}
    with pytest.warns(UserWarning, match=r"uns\['log1p'\] says X was log-transformed, but X holds integers"):
        data = PerturbationData.from_anndata(flagged, tiny_schema)
    assert data.scale == "counts"
    torch.testing.assert_close(data.table.X, plain.table.X)
    # the usual scanpy workflow: counts kept in a layer, X normalised and logged, the flag set; the layer is counts
    layered = tiny_adata.copy()
    layered.layers["counts"] = layered.X.copy()
    layered.X = np.log1p(layered.X / layered.X.sum(1, keepdims=True) * 1e4)
    layered.uns["log1p"] = {"base": None}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        data = PerturbationData.from_anndata(layered, replace(tiny_schema, expression="counts"))
    assert data.scale == "counts"
    torch.testing.assert_close(data.table.X, plain.table.X)


def test_fractional_counts_load_when_declared(tiny_adata, tiny_schema):
    from dataclasses import replace

    tiny_adata.X = tiny_adata.X * 0.97  # ambient-corrected counts are fractional
    tiny_adata.X[0, 0] = 40.5  # and go beyond the log range
    with pytest.raises(ValueError, match="scale='counts'"):
        PerturbationData.from_anndata(tiny_adata, tiny_schema)
    data = PerturbationData.from_anndata(tiny_adata, replace(tiny_schema, scale="counts"))
    x = tiny_adata.X
    np.testing.assert_allclose(data.table.X.numpy(), np.log1p(x / x.sum(1, keepdims=True) * 1e4), rtol=1e-5, atol=1e-5)


def test_raw_is_an_expression_source_with_its_own_genes(tiny_adata, tiny_schema):
    # scanpy's tutorial object: .raw keeps the log values of every gene, X the scaled values of some
    from dataclasses import replace

    logged = tiny_adata.copy()
    logged.X = np.log1p(logged.X / logged.X.sum(1, keepdims=True) * 1e4)
    logged.raw = logged
    scaled = logged[:, :10].copy()
    scaled.X = (scaled.X - scaled.X.mean(0)) / scaled.X.std(0)
    with pytest.raises(ValueError, match="expression: raw"):
        PerturbationData.from_anndata(scaled, tiny_schema)
    data = PerturbationData.from_anndata(scaled, replace(tiny_schema, expression="raw"))
    assert data.info.genes == tuple(tiny_adata.var_names) and data.scale == "log"
    np.testing.assert_allclose(data.table.X.numpy(), logged.X, rtol=1e-6)
    with pytest.raises(KeyError, match=r"no \.raw"):
        PerturbationData.from_anndata(tiny_adata, replace(tiny_schema, expression="raw"))


def test_duplicated_cell_names_are_refused_up_front(tiny_adata, tiny_schema):
    names = list(tiny_adata.obs_names)
    names[5] = names[0]
    tiny_adata.obs_names = names
    with pytest.raises(ValueError, match=r"1 cell name occurs more than once: 'c0';.*obs_names_make_unique"):
        PerturbationData.from_anndata(tiny_adata, tiny_schema)


@pytest.mark.parametrize("variant", ["Control", "CONTROL", "CTRL", "Non_Targeting"])
def test_control_label_variants_read_as_perturbations_are_warned(tiny_adata, tiny_schema, variant):
    cond = tiny_adata.obs["condition"].astype(str).to_numpy().copy()
    cond[np.flatnonzero(cond == "A")] = variant
    tiny_adata.obs["condition"] = cond
    with pytest.warns(UserWarning, match="look like control labels"):
        data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    assert variant in data.info.perturbations  # still read as the user wrote it: a warning, not a guess


@pytest.mark.parametrize("text_dtype", [object, "string"])  # "string": pandas' string dtype, pandas 3's default for text
def test_genetic_perturbations_that_name_no_gene_are_warned_with_the_var_column_that_does(tiny_adata, tiny_schema, text_dtype):
    # Ensembl ids as var_names, symbols in a var column (the Zhao / 10x layout)
    tiny_adata.var["symbol"] = pd.Series(list(tiny_adata.var_names), index=tiny_adata.var_names, dtype=text_dtype)
    tiny_adata.var_names = [f"ENSG{i:011d}" for i in range(tiny_adata.n_vars)]
    with pytest.warns(UserWarning, match=r"is a gene name of the expression.*var column\(s\) \['symbol'\]"):
        PerturbationData.from_anndata(tiny_adata, tiny_schema)
    tiny_adata.var_names = tiny_adata.var["symbol"].astype(str)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        PerturbationData.from_anndata(tiny_adata, tiny_schema)


def test_encode_refuses_duplicated_gene_names(tiny_adata, tiny_schema):
    """A duplicated gene name in the cells to encode was a pandas InvalidIndexError ("Reindexing only valid with
    uniquely valued Index objects") raised while reordering the columns; which copy to read is ambiguous."""
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata's own "not unique" warning
        extra = ad.AnnData(np.concatenate([tiny_adata.X, tiny_adata.X[:, :2]], 1), obs=tiny_adata.obs.copy(),
                           var=pd.DataFrame(index=[*map(str, tiny_adata.var_names), data.info.genes[0], "extra"]))
    with pytest.raises(ValueError, match=rf"duplicated gene names \['{data.info.genes[0]}'\]"):
        data.encode(extra)


def test_encoding_counts_over_other_genes_than_the_training_file_warns(tiny_adata, tiny_schema):
    """normalize_total sums each cell over the genes it is given: counts with extra genes were encoded silently on
    another scale than the training cells (the extra genes were dropped only after normalising)."""
    from distgen.data import highly_variable_genes

    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    assert data.library_genes == tuple(map(str, tiny_adata.var_names))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # scanpy's own deprecation notices (pandas 3: Pandas4Warning from highly_variable_genes), which Python hides from users
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.testing.assert_close(data.encode(tiny_adata).X, data.table.X)  # the training file itself: same scale, no warning
        highly_variable_genes(data, 6).encode(tiny_adata)  # gene selection keeps what was normalised over
    rng = np.random.default_rng(0)
    extra = ad.AnnData(np.concatenate([tiny_adata.X, rng.poisson(50, (tiny_adata.n_obs, 3)).astype(np.float32)], 1),
                       obs=tiny_adata.obs.copy(), var=pd.DataFrame(index=[*map(str, tiny_adata.var_names), "x1", "x2", "x3"]))
    with pytest.warns(UserWarning, match=r"counts over 18 genes \(3 not in the training file, 0 of its 15 missing\).*scaled unlike"):
        shifted = data.encode(extra)
    assert float((shifted.X - data.table.X).abs().max()) > 0.1


@pytest.mark.parametrize("dose", ["inf", "-inf", "1e400", "2+inf"])
def test_a_dose_that_is_not_finite_is_refused_naming_it(dose):
    """'inf' (or a number too large for a float) was read as an infinite dose and reached the dose tensors (hostile-input
    round, 2026-12-06); NaN was already refused as a missing dose."""
    import re

    import pandas as pd

    from distgen.data.conditions import parse_doses
    from distgen.errors import InputDataError

    schema = PerturbationSchema(perturbation_col="p", control_labels=("ctrl",), dose_col="dose")
    obs = pd.DataFrame({"p": ["A+B", "A+B"], "dose": ["1+2", dose]})
    with pytest.raises(InputDataError, match=rf"dose_col 'dose': dose '{re.escape(dose)}' is not a finite number"):
        parse_doses(obs, schema, [("A", "B"), ("A", "B")])
    assert parse_doses(obs.iloc[:1], schema, [("A", "B")]) == [(1.0, 2.0)]


@pytest.mark.parametrize(("label", "shown"), [("DMSO_TF", "DMSO_TF"), ("Non_Targeting", "Non_Targeting"), ("non-targeting_2", "non-targeting_2")])
def test_control_labels_with_a_suffix_are_named_as_candidates(tiny_adata, label, shown):
    """Tahoe-100M writes its controls 'DMSO_TF': with the default control labels the message said 'no control cells' and
    listed the first values, without naming it (unseen-data round); a gene starting with NT (NTRK1) is not named."""
    tiny_adata.obs["condition"] = tiny_adata.obs["condition"].replace({"control": label, "A": "NTRK1"})
    with pytest.raises(ValueError, match=rf"no control cells.*look like controls: \['{shown}'\]"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))


def test_log2_values_over_size_factors_above_the_log_range_are_not_told_to_be_logged_again(tiny_adata):
    """Zhao 2021's scater logcounts (log2 of counts over size factors) reach 21.7 in the few cells with a tiny size factor:
    they were refused as "normalised but not log-transformed. Apply sc.pp.log1p yourself", which logs log values twice
    (and log1p of them loaded without a word). The refusal now says only a few values reach 20, and to give the counts."""
    x = np.asarray(tiny_adata.X, dtype=np.float64)
    sf = np.full(x.shape[0], 1.0)
    sf[0] = 1e-5  # one cell with a tiny size factor: its values pass 20
    x[0, 0] = max(x[0, 0], 20.0)
    tiny_adata.X = np.log2(1 + x / sf[:, None]).astype(np.float32)
    assert 0 < (tiny_adata.X >= 20).sum() < 0.01 * (tiny_adata.X != 0).sum()
    with pytest.raises(ValueError, match=r"Only \d+ of its \d+ non-zero values .* reach 20 .* do not apply sc.pp.log1p"):
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))


def test_normalised_values_mostly_above_the_log_range_get_no_log_hint(tiny_adata):
    tiny_adata.X = tiny_adata.X / tiny_adata.X.sum(1, keepdims=True) * 1e4
    with pytest.raises(ValueError, match="not log-transformed") as e:
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))
    assert "Only" not in str(e.value)


def test_shallow_counts_normalised_to_the_median_total_keep_the_log1p_advice(tiny_adata):
    """Review of the hint above: counts of shallow cells through scanpy's default ``sc.pp.normalize_total`` (to the median
    total), not logged, also have under 1% of their values past 20 (Papalexi 2021 so: 0.93%); the first pass added "do not
    apply sc.pp.log1p to them (that logs them twice)" to the refusal whose fix is exactly sc.pp.log1p. Counts scaled per cell
    (each cell's values whole multiples of one step) get no such hint."""
    rng = np.random.default_rng(3)
    x = rng.poisson(2.0, tiny_adata.shape).astype(np.float64)
    x[:, 1] = np.maximum(x[:, 1], 1)  # no empty cell
    x[:3] = 0
    x[:3, :2] = [40, 1]  # three cells of one deep gene: past 20 once scaled to the median total
    tiny_adata.X = (x / x.sum(1, keepdims=True) * np.median(x.sum(1))).astype(np.float32)
    assert 0 < (tiny_adata.X >= 20).sum() < 0.01 * (tiny_adata.X != 0).sum()
    with pytest.raises(ValueError, match=r"not log-transformed\. Apply sc\.pp\.log1p yourself") as e:
        PerturbationData.from_anndata(tiny_adata, PerturbationSchema(context_cols=("cell_type",)))
    assert "do not apply sc.pp.log1p" not in str(e.value), str(e.value)


def test_cell_names_repeated_are_counted_once_each(tiny_adata, tiny_schema):
    names = list(tiny_adata.obs_names)
    names[5] = names[6] = names[0]  # 'c0' three times, 'c1' twice: two names, three extra rows
    names[7] = names[1]
    tiny_adata.obs_names = names
    with pytest.raises(ValueError) as info:
        PerturbationData.from_anndata(tiny_adata, tiny_schema)
    assert f"2 cell names occur more than once: {names[0]!r}, {names[1]!r};" in str(info.value)
