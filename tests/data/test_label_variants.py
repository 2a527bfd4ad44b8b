"""A user's file whose labels or values are written differently from what distgen expects: read right, or said so.

Each case was read without a word before: contexts or batches that differ by a trailing space were
two contexts, labels that differ in case two perturbations, ``A_B`` with ``combo_delimiter: "+"`` one
perturbation, ``A+A`` the single ``A``, log2 values read as log1p (1.44x too large), log1p of CPM
inverted to counts with a target of 1e4 (100x too many counts), a numeric control label never matched.
"""

import warnings

import numpy as np
import pytest

from distgen.data import PerturbationData, PerturbationSchema, make_split
from tests.data.conftest import make_adata

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")


def _load(adata, schema=SCHEMA):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = PerturbationData.from_anndata(adata, schema)
    return data, [str(w.message) for w in caught]


def _relabel(adata, col, old, new, every=2):
    values = adata.obs[col].astype(str).to_numpy().copy()
    rows = np.flatnonzero(values == old)[::every]
    values[rows] = new
    adata.obs[col] = values
    return rows


@pytest.mark.parametrize("col", ["cell_type", "donor"])
def test_context_and_batch_values_with_surrounding_spaces_are_one_label(col):
    adata = make_adata()
    old = "ct1" if col == "cell_type" else "b1"
    _relabel(adata, col, old, f" {old} ")
    data, messages = _load(adata)
    vocab = data.info.contexts if col == "cell_type" else data.info.batches
    assert old in vocab and len(vocab) == 2  # before: three, " ct1 " a context of its own
    assert any(col in m and "surrounding spaces" in m for m in messages)
    clean, _ = _load(make_adata())
    np.testing.assert_array_equal(data.contexts, clean.contexts)
    np.testing.assert_array_equal(data.batches, clean.batches)


def test_a_held_out_context_given_with_its_spaces_is_found():
    adata = make_adata()
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str) + " "  # every value written with a trailing space
    data, _ = _load(adata)
    assert data.info.contexts == ("ct1", "ct2")
    for given in ("ct2", "ct2 "):
        split = make_split(data, "held_out_context", test_contexts=[given])
        assert set(data.contexts[split.test.numpy()]) == {"ct2"}


def test_context_values_that_differ_in_case_are_kept_apart_with_a_warning():
    adata = make_adata(n_per_group=6)
    _relabel(adata, "cell_type", "ct1", "CT1")
    data, messages = _load(adata)
    assert set(data.info.contexts) == {"ct1", "CT1", "ct2"}
    assert any("'cell_type'" in m and "differ only in case" in m and "CT1" in m for m in messages)


def test_perturbations_that_differ_in_case_are_named():
    adata = make_adata()
    _relabel(adata, "condition", "A", "a")
    data, messages = _load(adata)
    assert {"A", "a"} <= set(data.info.perturbations)
    assert any("differ only in case" in m and "'a'" in m for m in messages)
    assert any("only up to case" in m and "a (gene A)" in m for m in messages)


def test_clean_labels_raise_no_warning():
    _, messages = _load(make_adata())
    assert messages == []


def test_a_label_that_repeats_its_perturbation_is_named():
    adata = make_adata()
    rows = _relabel(adata, "condition", "A", "A+A")
    data, messages = _load(adata)
    assert set(data.conditions[rows]) == {"A"}  # read as A, with A's other cells
    assert any("'A+A'" in m and "more than once" in m for m in messages)


def test_combinations_joined_by_another_separator_are_named():
    adata = make_adata(conditions=("control", "A", "B", "A_B"))
    data, messages = _load(adata)
    assert "A_B" in data.info.perturbations  # read as one perturbation, as configured ...
    assert any("'A_B'" in m and "combo_delimiter: '_'" in m for m in messages)  # ... and said so, with the fix
    fixed, messages = _load(adata, PerturbationSchema(**{**SCHEMA.to_dict(), "combo_delimiter": "_"}))
    assert "A_B" in set(fixed.conditions) and fixed.info.perturbations == ("A", "B")
    assert not any("combo_delimiter" in m for m in messages)


@pytest.mark.parametrize("base", [2.0, 10.0])
def test_log_values_in_another_base_are_refused_with_the_conversion(base):
    adata = make_adata()
    counts = adata.X.copy()
    adata.X = (np.log1p(counts / counts.sum(1, keepdims=True) * 1e4) / np.log(base)).astype(np.float32)
    with pytest.raises(ValueError, match=rf"log{base:g}\(1 \+ x\).*np\.log\({base:g}\)"):
        PerturbationData.from_anndata(adata, SCHEMA)
    adata.X = adata.X * np.log(base)  # the fix the message gives
    data, _ = _load(adata)
    np.testing.assert_allclose(data.table.X.numpy(), np.log1p(counts / counts.sum(1, keepdims=True) * 1e4), rtol=1e-4, atol=1e-5)


def test_log2_values_after_a_gene_selection_are_refused_too():
    adata = make_adata(n_genes=30)
    counts = adata.X.copy()
    adata.X = np.log2(1 + counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    with pytest.raises(ValueError, match="log2"):
        PerturbationData.from_anndata(adata[:, :20].copy(), SCHEMA)  # the sums no longer tell: the ratios still do


def test_log1p_of_another_total_than_target_sum_is_warned():
    adata = make_adata()
    counts = adata.X.copy()
    adata.X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e6).astype(np.float32)
    _, messages = _load(adata)
    assert any("normalised to 1e+06" in m and "target_sum: 1e+06" in m for m in messages)
    _, messages = _load(adata, PerturbationSchema(**{**SCHEMA.to_dict(), "target_sum": 1e6}))
    assert not any("target_sum" in m for m in messages)


def test_a_numeric_control_label_matches_a_numeric_column():
    adata = make_adata(conditions=("control", "A", "B"))
    adata.obs["guide"] = adata.obs["condition"].map({"control": 0, "A": 1, "B": 2}).astype(int)
    schema = PerturbationSchema(perturbation_col="guide", control_labels=[0], context_cols=("cell_type",), perturbation_type="chemical")
    data, _ = _load(adata, schema)
    np.testing.assert_array_equal(data.is_control, adata.obs["condition"].to_numpy() == "control")


def test_the_streaming_reader_trims_contexts_and_warns_too(tmp_path):
    from distgen.data.disk import DiskCells

    adata = make_adata()
    _relabel(adata, "cell_type", "ct1", "ct1 ")
    path = tmp_path / "spaces.h5ad"
    adata.write_h5ad(path)
    with pytest.warns(UserWarning, match="surrounding spaces"):
        disk = DiskCells(path, SCHEMA)
    assert disk.info.contexts == ("ct1", "ct2")


def test_what_loading_warned_reaches_the_manifest_and_the_report_notes(tmp_path):
    from distgen.data import Dataset

    adata = make_adata()
    _relabel(adata, "cell_type", "ct1", "ct1 ")
    adata.write_h5ad(tmp_path / "spaces.h5ad")
    section = {"dataset": str(tmp_path / "spaces.h5ad"), "schema": SCHEMA.to_dict(), "split": {"kind": "held_out_context", "test_contexts": ["ct2"]}}
    with pytest.warns(UserWarning, match="surrounding spaces"):  # still printed
        ds = Dataset.load(section)
    assert any("'cell_type'" in w and "surrounding spaces" in w for w in ds.load_warnings)
    assert ds.hashes()["warnings"] == list(ds.load_warnings)  # the training manifest's data section
    assert any(n.startswith("data: obs column 'cell_type'") for n in ds.notes())  # the report's notes
    make_adata().write_h5ad(tmp_path / "clean.h5ad")
    clean = Dataset.load({**section, "dataset": str(tmp_path / "clean.h5ad")})
    assert clean.load_warnings == () and "warnings" not in clean.hashes()


@pytest.mark.parametrize("counts", [True, False])
def test_cells_without_any_expression_are_named(counts):
    adata = make_adata(counts=counts)
    x = adata.X.copy()
    empty = [0, 1, 100]  # two controls and a perturbed cell
    x[empty] = 0
    adata.X = x
    data, messages = _load(adata)
    assert data.n_cells == adata.n_obs  # kept (as before), but said
    said = [m for m in messages if "no expression at all" in m]
    assert len(said) == 1 and "3 of " in said[0] and "2 of them controls" in said[0] and "'c0'" in said[0]
    assert not any("Some cells have zero counts" in m for m in messages)  # scanpy's unnamed version, replaced


@pytest.mark.parametrize("versioned", ["genes", "labels"])
def test_ensembl_ids_that_differ_by_a_version_suffix_are_named(versioned):
    adata = make_adata(conditions=("control", "A", "B"))
    ids = {g: f"ENSG{i:011d}" for i, g in enumerate(adata.var_names)}
    adata.var_names = [ids[g] + (".7" if versioned == "genes" else "") for g in adata.var_names]
    label = {k: v + (".7" if versioned == "labels" else "") for k, v in ids.items()}
    adata.obs["condition"] = [label.get(c, c) for c in adata.obs["condition"].astype(str)]
    _, messages = _load(adata)
    said = [m for m in messages if "is a gene name" in m]
    assert len(said) == 1 and "version suffix" in said[0]


def test_a_column_named_with_other_case_or_spaces_is_pointed_at():
    adata = make_adata()
    adata.obs = adata.obs.rename(columns={"condition": "condition ", "cell_type": "Cell_Type"})
    with pytest.raises(KeyError, match=r"'condition' is 'condition ', 'cell_type' is 'Cell_Type'"):
        PerturbationData.from_anndata(adata, SCHEMA)


def test_the_streaming_reader_refuses_log2_values_too(tmp_path):
    from distgen.data.disk import DiskCells

    adata = make_adata()
    adata.X = np.log2(1 + adata.X / adata.X.sum(1, keepdims=True) * 1e4).astype(np.float32)
    adata.write_h5ad(tmp_path / "log2.h5ad")
    with pytest.raises(ValueError, match=r"log2\(1 \+ x\)"):
        DiskCells(tmp_path / "log2.h5ad", SCHEMA)


def _spacing(messages):
    return [m for m in messages if "differ only in surrounding spaces and are read as one condition each" in m]


def test_parallel_perturbation_columns_whose_values_differ_only_by_spaces_warn_as_one_column_does():
    """Two perturbation columns (one atom each): 'A' in one and 'A ' in the other (or the same column) are one atom, and
    were read as one without a word; now the warning a single column gets, naming both spellings and the fix."""
    adata = make_adata(conditions=("control", "A", "B", "A+B"))
    parts = adata.obs["condition"].astype(str).str.split("+", expand=True)
    adata.obs["p1"], adata.obs["p2"] = parts[0].to_numpy(), parts[1].fillna("control").to_numpy()
    schema = PerturbationSchema(perturbation_col=("p1", "p2"), control_labels=("control",), context_cols=("cell_type",), batch_col="donor")
    clean, messages = _load(adata.copy(), schema)
    assert _spacing(messages) == []
    _relabel(adata, "p1", "A", "A ", every=3)
    data, messages = _load(adata, schema)
    (msg,) = _spacing(messages)
    assert "obs columns ['p1', 'p2']" in msg and "labels 'A' and 'A ' differ" in msg and "str.strip()" in msg and "each ('A');" in msg
    assert data.info.perturbations == clean.info.perturbations  # read as one atom, and said
    np.testing.assert_array_equal(data.conditions, clean.conditions)


def test_encoding_cells_whose_labels_differ_only_by_spaces_warns_as_loading_does():
    """``PerturbationData.encode`` read 'A ' as the training atom 'A' without a word (loading the same labels warns)."""
    data, _ = _load(make_adata())
    other = make_adata(seed=1)
    _relabel(other, "condition", "A", "A ")
    _relabel(other, "condition", "B+C", "B + C")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = data.encode(other)
    (msg,) = _spacing([str(w.message) for w in caught])
    assert msg.startswith("the cells to encode: obs column 'condition'")
    assert "'A' and 'A '; 'B + C' and 'B+C' differ" in msg and "str.strip()" in msg
    clean = make_adata(seed=1)
    assert table.labels.perturbation.tolist() == data.encode(clean).labels.perturbation.tolist()  # read as one, as at load


def test_a_control_label_with_spaces_in_a_parallel_column_is_a_control_as_in_one_column():
    """'control ' in one perturbation column is a control (its atoms are trimmed); in a parallel column it was the atom
    'control', refused as "'control' appears as a perturbation label but is not in control_labels=['control']"."""
    adata = make_adata(conditions=("control", "A", "B", "A+B"))
    parts = adata.obs["condition"].astype(str).str.split("+", expand=True)
    adata.obs["p1"], adata.obs["p2"] = parts[0].to_numpy(), parts[1].fillna("control").to_numpy()
    schema = PerturbationSchema(perturbation_col=("p1", "p2"), control_labels=("control",), context_cols=("cell_type",), batch_col="donor")
    clean, _ = _load(adata.copy(), schema)
    _relabel(adata, "p2", "control", "control ", every=3)
    data, messages = _load(adata, schema)
    np.testing.assert_array_equal(data.conditions, clean.conditions)
    (msg,) = _spacing(messages)
    assert "labels 'control' and 'control ' differ" in msg


def test_more_than_three_groups_of_spaced_labels_are_counted():
    import pandas as pd

    from distgen.data.conditions import spacing_warnings
    from distgen.data.schema import PerturbationSchema

    labels = [lab for i in range(5) for lab in (f"P{i}", f"P{i} ")]
    [msg] = spacing_warnings(pd.DataFrame({"condition": labels}), PerturbationSchema(perturbation_col="condition"))
    assert "labels 'P0' and 'P0 '; 'P1' and 'P1 '; 'P2' and 'P2 ' (and 2 more groups) differ only" in msg, msg
    assert "read as one condition each ('P0', 'P1', 'P2');" in msg and "[" not in msg.split("clean")[0]
