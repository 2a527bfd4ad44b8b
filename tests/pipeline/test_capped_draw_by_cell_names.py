"""Which cells ``max_cells`` (``--max-cells``, ``predict.max_cells_per_condition``) keeps of a capped group depends on
what identifies the cells (their names, the group's labels), not on how their values are stored: the same
cells stored as raw counts and as log1p of normalised counts kept other cells (the draw was ordered by the values'
hash), in memory and streaming; a shuffled file still keeps the same cells."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import Dataset, PerturbationSchema
from distgen.data.disk import DiskCells
from distgen.data.disk_predict import disk_groups

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor"}
SPLIT = {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.0, "seed": 0}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(4)
    rows = []
    for cond in ("control", "A", "B", "A+B"):
        for ct in ("ct1", "ct2"):
            for b in ("b1", "b2"):
                rows += [(cond, ct, b)] * int(rng.integers(12, 20))
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "donor"], index=[f"c{i}" for i in range(len(rows))])
    counts = rng.poisson(4.0, (len(rows), 9)).astype(np.float32)
    counts[:, 0] += 1 + np.arange(len(rows))  # every cell distinct, none empty
    logn = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    root = tmp_path_factory.mktemp("capped_draw")
    var = pd.DataFrame(index=[f"g{i}" for i in range(9)])
    paths = {}
    for name, x in (("counts", counts), ("log", logn)):
        paths[name] = str(root / f"{name}.h5ad")
        ad.AnnData(X=x, obs=obs, var=var).write_h5ad(paths[name])
    shuffled = ad.AnnData(X=logn, obs=obs, var=var)[rng.permutation(len(rows))].copy()
    paths["shuffled"] = str(root / "shuffled.h5ad")
    shuffled.write_h5ad(paths["shuffled"])
    return paths


def _streamed_groups(path):
    cells = DiskCells(path, PerturbationSchema(**SCHEMA, scale="auto"))
    names = np.asarray(ad.read_h5ad(path, backed="r").obs_names)
    pool = np.flatnonzero(cells.is_control)
    return {(g.condition, g.context, g.batch): sorted(names[g.cells].tolist()) for g in disk_groups(cells, pool, max_cells=5)}


def _memory_truth(path):
    ds = Dataset.load({"dataset": path, "schema": {**SCHEMA, "scale": "auto"}, "split": SPLIT}).capped(5)
    truth = ds.truth()
    return sorted((c, x, n) for c, x, n in zip(truth.conditions.tolist(), truth.contexts.tolist(), truth.names.tolist(), strict=True)
                  if c != "control")


def test_a_capped_groups_cells_do_not_depend_on_how_their_values_are_stored(files):
    streamed = {name: _streamed_groups(path) for name, path in files.items()}
    assert streamed["counts"] == streamed["log"] == streamed["shuffled"]
    assert sum(len(v) for v in streamed["log"].values()) == 6 * 5  # A, B, A+B in ct1 and ct2, 5 kept of each
    memory = {name: _memory_truth(path) for name, path in files.items()}
    assert memory["counts"] == memory["log"] == memory["shuffled"]
    assert len(memory["log"]) == 4 * 5
