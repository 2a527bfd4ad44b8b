"""``_warn_if_empty_cells`` names every (condition, context) group whose cells are all empty, and only those (one pass over
the groups: data at several doses has a group per dose)."""

import warnings

import numpy as np
import pandas as pd

from distgen.data.dataset import _warn_if_empty_cells


def test_every_wholly_empty_group_is_named_in_order_and_a_partly_empty_one_is_not():
    conds = np.array(["b@10"] * 3 + ["a@1"] * 2 + ["a@1"] * 2 + ["c"] * 4, dtype=object)
    ctxs = np.array(["k1"] * 3 + ["k2"] * 2 + ["k1"] * 2 + ["k1"] * 4, dtype=object)
    x = np.ones((len(conds), 3), dtype=np.float32)
    x[:3] = 0  # b@10 @ k1: every cell
    x[3:5] = 0  # a@1 @ k2: every cell
    x[7] = 0  # one cell of c @ k1
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        _warn_if_empty_cells(x, pd.Index([f"c{i}" for i in range(len(conds))]), np.zeros(len(conds), bool), conds, ctxs, "X")
    message = str(said[-1].message)
    assert "6 of 11 cells have no expression" in message
    assert "Every cell of 2 (condition, context) groups is empty: 'a@1 @ k2 (2 cells)', 'b@10 @ k1 (3 cells)';" in message
