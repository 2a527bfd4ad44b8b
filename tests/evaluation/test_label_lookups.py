"""The label steps of reading a pair for evaluation: each cell's group code and the labels ``Cells`` keeps.

``eval_data`` and ``io.grouped`` code each cell by one dictionary lookup (``io.label_codes``), and ``Cells`` copies an
object array of plain ``str`` labels instead of converting it through numpy's fixed-width strings; both must give what
the per-cell rules give.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distgen.evaluation.io import eval_data, grouped, label_codes
from distgen.types import Cells


def _cells(conditions: list[str], contexts: list[str] | None = None, seed: int = 0) -> Cells:
    g = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.full((len(conditions), 6), 2.0), generator=g)
    return Cells(x, np.array(conditions, dtype=object), [f"g{i}" for i in range(6)], contexts=contexts, control="ctrl")


def test_label_codes_give_each_cell_its_label_s_code_and_refuse_an_unknown_label() -> None:
    labels = np.array(["b", "ctrl", "a", "b", "ctrl", "a"], dtype=object)
    codes = label_codes(labels, {"a": 0, "b": 1, "ctrl": -1})
    assert codes.dtype == np.int64
    assert codes.tolist() == [1, -1, 0, 1, -1, 0]
    assert label_codes(["x", "y", "x"], {"x": 3, "y": 4}).tolist() == [3, 4, 3]
    assert label_codes(np.array([], dtype=object), {"a": 0}).shape == (0,)
    with pytest.raises(KeyError, match="c"):
        label_codes(np.array(["a", "c"], dtype=object), {"a": 0})


def test_eval_data_groups_each_perturbation_s_cells_in_their_order_and_keeps_the_controls_apart() -> None:
    conds = ["B", "ctrl", "A", "B", "ctrl", "A", "A", "ctrl"]
    truth = _cells(conds, seed=1)
    pred = _cells(["A", "ctrl", "B", "ctrl", "A", "B"], seed=2)
    data = eval_data(pred, truth, scale="counts", check_pred_scale=False)
    assert data.perts == ("A", "B")
    assert data.real.offsets.tolist() == [0, 3, 5]
    rows = {"A": [2, 5, 6], "B": [0, 3], "ctrl": [1, 4, 7]}
    assert torch.equal(data.real.X, truth.X[rows["A"] + rows["B"]])
    assert torch.equal(data.real.control, truth.X[rows["ctrl"]])
    assert torch.equal(data.pred.X, pred.X[[0, 4, 2, 5]])
    assert torch.equal(data.pred.control, pred.X[[1, 3]])


def test_grouped_orders_by_context_then_perturbation_then_controls() -> None:
    cells = _cells(["B", "ctrl", "A", "ctrl", "A", "B"], contexts=["k2", "k1", "k2", "k2", "k1", "k1"])
    out = grouped(cells)
    # k1: A (row 4), B (row 5), ctrl (row 1); k2: A (row 2), B (row 0), ctrl (row 3)
    order = [4, 5, 1, 2, 0, 3]
    assert out.conditions.tolist() == [cells.conditions[i] for i in order]
    assert out.contexts.tolist() == ["k1", "k1", "k1", "k2", "k2", "k2"]
    assert torch.equal(out.X, cells.X[order])
    assert grouped(out) is out  # already grouped: the same cells


def test_cells_keep_plain_string_labels_and_convert_others_as_before() -> None:
    labels = np.array(["A", "ctrl", "A\x00b", "é", ""], dtype=object)
    cells = _cells(["A"] * 5)
    c = Cells(cells.X, labels, cells.genes, control="ctrl")
    assert c.conditions.tolist() == ["A", "ctrl", "A\x00b", "é", ""]
    assert c.conditions is not labels and c.conditions.dtype == object
    labels[0] = "changed"  # the cells hold their own copy
    assert c.conditions[0] == "A"
    # what numpy's string conversion does is kept for the labels the copy does not take: a trailing NUL is dropped,
    # numbers and numpy strings become str
    odd = np.array(["A\x00", 7, np.str_("ctrl"), 1.5, "B"], dtype=object)
    c2 = Cells(cells.X, odd, cells.genes, control="ctrl")
    assert c2.conditions.tolist() == ["A", "7", "ctrl", "1.5", "B"]
    assert all(type(v) is str for v in c2.conditions.tolist())
    with pytest.raises(ValueError, match="one label per cell"):
        Cells(cells.X, np.array(["A", "B"], dtype=object), cells.genes, control="ctrl")
