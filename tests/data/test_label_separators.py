"""Labels joined with a separator: context columns with ``|``, per-context rows ``condition @ context``, count groups.

A value holding the separator it is joined with could make two different groups read as one; each join refuses it
(``LabelError``, exit 2) or keeps the parts apart, and a label is never split where one column's value holds it."""

import numpy as np
import pytest
import torch

from distgen.data import PerturbationData, PerturbationSchema, make_split
from distgen.errors import LabelError, UsageError
from distgen.evaluation import score
from distgen.types import Cells
from tests.data.conftest import make_adata

TWO_COLUMNS = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type", "donor"))


def _two_column_collision():
    """Cells of ("x|y", "z") and of ("x", "y|z"): joined with "|" both were context "x|y|z"."""
    adata = make_adata(contexts=("x|y", "x"), batches=("z",))
    adata.obs["donor"] = np.where(adata.obs["cell_type"] == "x", "y|z", "z")
    return adata


def test_a_context_column_value_holding_the_join_separator_is_refused_naming_column_value_and_fix():
    adata = _two_column_collision()
    with pytest.raises(LabelError, match=r"context column 'cell_type' holds the value 'x\|y'.*\.str\.replace\('\|', '/'\)") as err:
        PerturbationData.from_anndata(adata, TWO_COLUMNS)  # before: one context 'x|y|z' of two different cell populations
    assert isinstance(err.value, UsageError) and isinstance(err.value, ValueError)  # exit 2, and a ValueError as before
    adata.obs["cell_type"] = adata.obs["cell_type"].str.replace("|", "/")
    adata.obs["donor"] = adata.obs["donor"].str.replace("|", "/")
    data = PerturbationData.from_anndata(adata, TWO_COLUMNS)
    assert sorted(data.info.contexts) == ["x/y|z", "x|y/z"]  # the fix the message gives: two contexts


def test_the_streaming_reader_refuses_it_too(tmp_path):
    from distgen.data.disk import DiskCells

    path = tmp_path / "bars.h5ad"
    _two_column_collision().write_h5ad(path)
    with pytest.raises(LabelError, match="context column 'cell_type'"):
        DiskCells(path, TWO_COLUMNS)


def test_one_context_column_keeps_its_bar_and_a_held_out_context_is_not_split_at_it():
    schema = PerturbationSchema(perturbation_col="condition", control_labels=("control",), context_cols=("cell_type",))
    data = PerturbationData.from_anndata(make_adata(contexts=("HEK | 293", "K562")), schema)
    assert data.info.contexts == ("HEK | 293", "K562")  # never split: harmless
    for given in ("HEK | 293", " HEK | 293 "):  # before: taken as two parts, trimmed to 'HEK|293', a context the data lacks
        split = make_split(data, "held_out_context", test_contexts=[given])
        assert set(data.contexts[split.test.numpy()]) == {"HEK | 293"}


def test_held_out_contexts_of_several_columns_are_trimmed_part_by_part():
    data = PerturbationData.from_anndata(make_adata(), TWO_COLUMNS)
    split = make_split(data, "held_out_context", test_contexts=["ct2 | b1"])
    assert set(data.contexts[split.test.numpy()]) == {"ct2|b1"}


def test_count_dispersion_groups_keep_condition_and_context_apart():
    from distgen.pipeline.countspace import pair_groups

    cond = np.array(["A|B", "A", "A|B", "A", "A"], dtype=object)
    ctx = np.array(["x", "B|x", "x", "B|x", "x"], dtype=object)
    ids = pair_groups(cond, ctx).tolist()  # before: "A|B" + "|" + "x" == "A" + "|" + "B|x", one group
    assert ids[0] == ids[2] and ids[1] == ids[3] and len({ids[0], ids[1], ids[4]}) == 3


def _cells(pairs, seed=0):
    rng = np.random.default_rng(seed)
    conds, ctxs = [], []
    for cond, ctx in pairs:
        conds += [cond] * 20
        ctxs += [ctx] * 20
    x = torch.tensor(rng.normal(1.0, 0.2, (len(conds), 6)).clip(0), dtype=torch.float32)
    return Cells(x, conds, [f"g{i}" for i in range(6)], ctxs)


def test_a_context_holding_the_row_separator_is_refused_before_scoring_per_context():
    # rows "condition @ context": ("P @ A", "B") and ("P", "A @ B") were both the row "P @ A @ B"
    pairs = [("control", "B"), ("P @ A", "B"), ("control", "A @ B"), ("P", "A @ B")]
    truth, pred = _cells(pairs, 0), _cells(pairs, 1)
    with pytest.raises(LabelError, match=r"context 'A @ B' of the context labels holds ' @ '.*--pool-contexts"):
        score(pred, truth, metrics=["mse"], ceiling=False)
    pooled = score(pred, truth, metrics=["mse"], ceiling=False, by_context=False)  # the fix the message gives
    assert sorted(pooled.table.perts) == ["P", "P @ A"]
    ok = [("control", "B"), ("P @ A", "B"), ("control", "A / B"), ("P", "A / B")]
    rep = score(_cells(ok, 1), _cells(ok, 0), metrics=["mse"], ceiling=False)
    assert sorted(rep.table.perts) == ["P @ A / B", "P @ A @ B"] and sorted(rep.table.conditions()) == ["P", "P @ A"]
