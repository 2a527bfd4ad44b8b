"""A split's random picks (``val_frac``, ``holdout_controls``) choose the same cells whatever the row order of the file.

Before, each group's cells were shuffled in row order, so the same .h5ad with its rows shuffled (``adata[perm]``) held
other cells out for validation and for test, hence trained on other cells. Now a group's cells are taken in the order
of their names (``distgen.data.groups.draw_order``) before the seeded shuffle: the split holds the same cells (at other
row indices), in memory and on disk; a file whose rows are in name order keeps the picks of its row order.
"""

import numpy as np
import pytest

import distgen
import distgen.data.splitters
from distgen.data import PerturbationSchema, make_split
from distgen.data.disk_split import DiskLabels, disk_split
from distgen.data.streaming import DiskCells

from .conftest import make_adata

SCHEMA = {"perturbation_col": "condition", "context_cols": ["cell_type"], "batch_col": "donor"}
SPLIT = {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.3, "holdout_controls": 0.4}


def _write(adata, path):
    adata.write_h5ad(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same cells (names given in no particular order) as made, with their rows shuffled, and sorted by name."""
    root = tmp_path_factory.mktemp("split_order")
    adata = make_adata(n_per_group=9, n_genes=12)
    rng = np.random.default_rng(5)
    adata.obs_names = [f"cell{i:04d}" for i in rng.permutation(adata.n_obs)]  # rows are not in name order
    return {"orig": _write(adata, root / "orig.h5ad"),
            "shuffled": _write(adata[rng.permutation(adata.n_obs)].copy(), root / "shuffled.h5ad"),
            "by_name": _write(adata[np.argsort(adata.obs_names.to_numpy())].copy(), root / "by_name.h5ad")}


def _named(split, names):
    return {part: frozenset(names[getattr(split, part).numpy()]) for part in ("train", "val", "test")}


def _in_memory(path, seed=0):
    ds = distgen.load_data(path, split={**SPLIT, "seed": seed}, schema=SCHEMA)
    return _named(ds.split, ds.data.cell_names), frozenset(ds.data.cell_names[ds.data.is_control])


def test_a_shuffled_file_holds_out_the_same_cells_in_memory_and_on_disk(files):
    want, controls = _in_memory(files["orig"])
    assert want["val"] - controls and (want["val"] | want["test"]) & controls  # validation cells and held-out controls
    for name in ("shuffled", "by_name"):
        assert _in_memory(files[name])[0] == want, name
        cells = DiskCells(files[name], PerturbationSchema(**SCHEMA))
        assert _named(disk_split(cells, **SPLIT, seed=0), DiskLabels(cells).cell_names) == want, name


def test_the_seed_still_changes_the_picks(files):
    a, b = _in_memory(files["orig"], seed=0)[0], _in_memory(files["orig"], seed=1)[0]
    assert a["val"] != b["val"] and a["test"] != b["test"]  # other validation cells, other held-out controls
    assert _in_memory(files["shuffled"], seed=1)[0] == b


def test_rows_in_name_order_keep_the_picks_of_the_row_order(files, monkeypatch):
    """The rule is a reordering only: on a file whose rows are in name order it picks what the row order picked."""
    data = {name: distgen.load_data(files[name], split={**SPLIT, "seed": 0}, schema=SCHEMA).data for name in ("orig", "by_name")}
    ordered = {name: make_split(d, **SPLIT, seed=3) for name, d in data.items()}
    monkeypatch.setattr(distgen.data.splitters, "draw_order", lambda keys: np.arange(len(keys)))  # the former row-order rule
    by_row = {name: make_split(d, **SPLIT, seed=3) for name, d in data.items()}
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(ordered["by_name"], part).numpy(), getattr(by_row["by_name"], part).numpy()), part
    assert not np.array_equal(ordered["orig"].val.numpy(), by_row["orig"].val.numpy())  # elsewhere the picks moved
