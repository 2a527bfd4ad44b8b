"""Issue 17 item 1: a cell without a perturbation, context or batch label is an error (never a control),
or, with ``missing_labels='drop'``, left out with a warning."""

import warnings

import numpy as np
import pandas as pd
import pytest

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.conditions import MissingLabelError, missing_mask
from tests.data.conftest import make_adata

SCHEMA = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",), batch_col="donor")
BLANKS = [np.nan, None, "", "  ", "nan", "NaN", "None", "NA", pd.NA]


def _with(adata, col, rows, value):
    obs = adata.obs.copy()
    obs[col] = obs[col].astype(object)
    for r in rows:
        obs.iloc[r, obs.columns.get_loc(col)] = value
    adata.obs = obs
    return adata


@pytest.mark.parametrize("blank", BLANKS, ids=repr)
def test_missing_perturbation_label_is_an_error_naming_count_and_column(blank):
    adata = _with(make_adata(), "condition", [100, 101, 102], blank)
    with pytest.raises(MissingLabelError) as info:
        PerturbationData.from_anndata(adata, SCHEMA)
    msg = str(info.value)
    assert "3 of" in msg and "'condition'" in msg and "'c100'" in msg
    assert "missing_labels" in msg  # says how to drop them instead


@pytest.mark.parametrize("word", ["nan", "None", "NA"])
def test_a_label_spelled_like_no_value_is_named_with_how_to_keep_it(word):
    """A context or condition literally called "NA" is refused like a missing one; the error says which text it read
    and how to rename it, instead of calling it "NaN, None or empty"."""
    adata = _with(make_adata(), "cell_type", [5, 6], word)
    with pytest.raises(MissingLabelError) as info:
        PerturbationData.from_anndata(adata, SCHEMA)
    msg = str(info.value)
    assert f"the text {word!r}" in msg and f"A label spelled {word!r} is read as no value" in msg
    assert f".replace({{{word!r}: {word + '_'!r}}})" in msg
    adata = _with(make_adata(), "cell_type", [5, 6], np.nan)  # a real NaN: no rename hint
    with pytest.raises(MissingLabelError) as info:
        PerturbationData.from_anndata(adata, SCHEMA)
    assert "the text" not in str(info.value) and "rename" not in str(info.value)


def test_before_the_fix_missing_labels_became_controls():
    """The behaviour this replaces: with dropping on, the unlabelled cells are *not* counted as controls."""
    adata = make_adata()
    n_ctrl = int((adata.obs["condition"] == "control").sum())
    adata = _with(adata, "condition", range(200, 210), np.nan)
    with pytest.warns(UserWarning, match="dropping 10 cells"):
        data = PerturbationData.from_anndata(adata, PerturbationSchema(**{**SCHEMA.to_dict(), "missing_labels": "drop",
                                                                              "control_labels": ("control",), "context_cols": ("cell_type",)}))
    assert int(data.is_control.sum()) == n_ctrl
    assert data.n_cells == adata.n_obs - 10
    assert not set(adata.obs_names[200:210]) & set(data.adata.obs_names)


@pytest.mark.parametrize("col", ["cell_type", "donor"])
def test_missing_context_or_batch_is_an_error(col):
    adata = _with(make_adata(), col, [5, 6], np.nan)
    with pytest.raises(MissingLabelError, match=f"2 of .* cells in obs column '{col}'"):
        PerturbationData.from_anndata(adata, SCHEMA)


def test_categorical_column_with_nan():
    adata = make_adata()
    cats = adata.obs["condition"].astype("category")
    codes = cats.cat.codes.to_numpy().copy()
    codes[:4] = -1  # NaN in a categorical
    adata.obs["condition"] = pd.Categorical.from_codes(codes, cats.cat.categories)
    with pytest.raises(MissingLabelError, match="4 of"):
        PerturbationData.from_anndata(adata, SCHEMA)


def test_parallel_columns_blank_slots_are_fine_but_all_blank_is_missing():
    adata = make_adata(conditions=("control", "A", "B", "A+B"), contexts=("ct1",), batches=("b1",))
    first = adata.obs["condition"].str.split("+").str[0]
    second = adata.obs["condition"].str.split("+").str[1]  # NaN for singles and controls: an unused slot
    adata.obs["p1"], adata.obs["p2"] = first.to_numpy(), second.to_numpy()
    schema = PerturbationSchema(perturbation_col=("p1", "p2"), control_labels=("control",))
    data = PerturbationData.from_anndata(adata, schema)
    assert set(data.conditions) == {"control", "A", "B", "A+B"}
    adata.obs.iloc[0, adata.obs.columns.get_loc("p1")] = None  # both slots empty now
    with pytest.raises(MissingLabelError, match=r"1 of .* 'p1\+p2'"):
        PerturbationData.from_anndata(adata, schema)


def test_encode_at_predict_time_checks_too():
    data = PerturbationData.from_anndata(make_adata(), SCHEMA)
    other = _with(make_adata(seed=1), "condition", [0], None)
    with pytest.raises(MissingLabelError, match="the cells to encode"):
        data.encode(other)


def test_drop_of_every_cell_is_an_error():
    adata = make_adata()
    adata.obs["condition"] = np.nan
    schema = PerturbationSchema(**{**SCHEMA.to_dict(), "missing_labels": "drop", "control_labels": ("control",), "context_cols": ("cell_type",)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no cell has a label"):
            PerturbationData.from_anndata(adata, schema)


def test_schema_option_is_validated():
    with pytest.raises(ValueError, match="missing_labels must be 'error' or 'drop'"):
        PerturbationSchema(missing_labels="ignore")


def test_missing_mask_keeps_real_labels():
    vals = np.array(["A", "control", "nan", None, np.nan, "", "NaNog", "None+A"], dtype=object)
    assert missing_mask(vals).tolist() == [False, False, True, True, True, True, False, False]


def test_streaming_reader_refuses_missing_labels(tmp_path):
    from distgen.data.disk import DiskCells

    adata = _with(make_adata(), "condition", [3], np.nan)
    adata.obs["condition"] = adata.obs["condition"].astype(str).replace("nan", "")
    path = tmp_path / "d.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(MissingLabelError, match=r"1 of .* 'condition'"):
        DiskCells(path, SCHEMA)


def test_missing_mask_under_copy_on_write():
    # pandas 3 (and 2.x with copy-on-write) hands out read-only arrays from Series.to_numpy()
    import numpy as np
    import pandas as pd

    with pd.option_context("mode.copy_on_write", True):
        mask = missing_mask(np.array(["A", None, "nan", " NA ", "B", float("nan")], dtype=object))
    assert mask.tolist() == [False, True, True, True, False, True]
