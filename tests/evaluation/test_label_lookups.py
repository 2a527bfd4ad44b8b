"""The label steps of reading a pair for evaluation: each cell's group code and the labels ``Cells`` keeps.

``eval_data`` and ``io.grouped`` code each cell by one dictionary lookup (``io.label_codes``), and ``Cells`` copies an
object array of plain ``str`` labels instead of converting it through numpy's fixed-width strings; both must give what
the per-cell rules give.
"""

from __future__ import annotations

import enum

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


def test_cells_keep_trailing_nul_and_numpy_string_rules_on_arrays_of_one_kind() -> None:
    """Arrays of one kind only (no number beside them to send the array through numpy's conversion anyway): plain ``str``
    with a trailing NUL loses it, as numpy's fixed-width strings always dropped it; ``np.str_`` labels become plain ``str``."""
    cells = _cells(["A"] * 3)
    nul = Cells(cells.X, np.array(["A\x00", "ctrl", "B\x00\x00"], dtype=object), cells.genes, control="ctrl")
    assert nul.conditions.tolist() == ["A", "ctrl", "B"]
    inner = Cells(cells.X, np.array(["A\x00B", "ctrl", "\x00C"], dtype=object), cells.genes, control="ctrl")
    assert inner.conditions.tolist() == ["A\x00B", "ctrl", "\x00C"]
    np_str = Cells(cells.X, np.array([np.str_("A"), np.str_("ctrl"), np.str_("B")], dtype=object), cells.genes, control="ctrl")
    assert np_str.conditions.tolist() == ["A", "ctrl", "B"]
    assert [type(v) for v in np_str.conditions.tolist()] == [str, str, str]
    empty = Cells(torch.zeros(0, 2), np.array([], dtype=object), ["g0", "g1"], control="ctrl")
    assert empty.conditions.shape == (0,) and empty.conditions.dtype == object


class _Guide(str, enum.Enum):  # noqa: UP042  (the mixin, whose str() is the member name, is the case)
    KO_A = "g1"
    KO_B = "g2"
    CTRL = "nt"


def test_cells_give_str_subclass_labels_whole_from_an_object_array_as_from_a_list() -> None:
    """A ``str`` subclass whose ``str()`` is longer than its text (an Enum with a ``str`` mixin) was cut to the longest
    text's width by numpy's fixed-width conversion: ``Guide.KO_A``, ``Guide.KO_B`` and ``Guide.CTRL`` all became ``'Gu'``,
    one condition and no control cell. An object array (``pd.Series(...).to_numpy()``) now gives what a list gives."""
    members = [_Guide.KO_A, _Guide.KO_B, _Guide.CTRL, _Guide.KO_A]
    x = torch.zeros(4, 1)
    want = ["_Guide.KO_A", "_Guide.KO_B", "_Guide.CTRL", "_Guide.KO_A"]
    from_list = Cells(x, members, ["g"], control="_Guide.CTRL")
    from_array = Cells(x, np.array(members, dtype=object), ["g"], contexts=np.array(members, dtype=object),
                       control="_Guide.CTRL", names=np.array(members, dtype=object))
    assert from_list.conditions.tolist() == want
    assert from_array.conditions.tolist() == want
    assert from_array.contexts.tolist() == want and from_array.names is not None and from_array.names.tolist() == want
    assert from_array.is_control.tolist() == [False, False, True, False]
    assert all(type(v) is str for v in from_array.conditions.tolist())

    class Tagged(str):
        def __str__(self) -> str:
            return "tag:" + str.__str__(self)

    mixed = Cells(torch.zeros(3, 1), np.array([Tagged("a"), "ctrl", b"B"], dtype=object), ["g"], control="ctrl")
    assert mixed.conditions.tolist() == ["tag:a", "ctrl", "B"]  # bytes decoded as before


@pytest.mark.parametrize("kind", ["list", "object array", "bytes array"])
def test_bytes_labels_are_decoded_as_utf8_text_alike_from_lists_and_arrays(kind: str) -> None:
    """Bytes labels (h5py gives a file's strings as UTF-8 bytes; anndata decodes them) read as their UTF-8 text from a
    list, an object array and a numpy bytes array alike: a non-ASCII one failed in an array with numpy's ASCII
    ``UnicodeDecodeError`` and a list gave ``"b'...'"`` (``"b'B'"`` even for ASCII bytes, which an array decoded)."""
    raw = ["é-KO".encode(), b"ctrl", "Ⅱ".encode(), b"B"]
    want = ["é-KO", "ctrl", "Ⅱ", "B"]
    labels: object = {"list": raw, "object array": np.array(raw, dtype=object), "bytes array": np.array(raw)}[kind]
    c = Cells(torch.zeros(4, 1), labels, ["g"], contexts=labels, control="ctrl")
    assert c.conditions.tolist() == want and c.contexts.tolist() == want
    assert all(type(v) is str for v in c.conditions.tolist())
    assert c.is_control.tolist() == [False, True, False, False]
    if kind != "bytes array":  # str and bytes side by side: the same text
        mixed = raw[:2] + want[2:]
        m = Cells(torch.zeros(4, 1), mixed if kind == "list" else np.array(mixed, dtype=object), ["g"], control="ctrl")
        assert m.conditions.tolist() == want


@pytest.mark.parametrize("kind", ["list", "object array", "bytes array"])
def test_a_bytes_label_that_is_not_utf8_is_refused_naming_it(kind: str) -> None:
    from distgen.errors import InputDataError

    raw = [b"A", b"ctrl", "é".encode("latin-1")]
    labels: object = {"list": raw, "object array": np.array(raw, dtype=object), "bytes array": np.array(raw)}[kind]
    with pytest.raises(InputDataError, match=r"Cells\.conditions holds the label b'\\xe9', bytes that are not UTF-8 text"):
        Cells(torch.zeros(3, 1), labels, ["g"], control="ctrl")
