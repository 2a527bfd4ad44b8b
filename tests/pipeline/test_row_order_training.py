"""The same file with its rows shuffled trains as the file does under the same seed.

The split picks cells by name, so it held out the same cells; the training batches, though, were drawn from the training
cells in row order (each group's cells, the control pool), so a shuffled file trained as another seed would (other
losses from the first step). Now the training and validation cells are taken in the order of their names
(``Dataset.by_name``): the same batches, losses and weights.
"""

import csv

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import distgen
from distgen.cli import main
from distgen.config import save_yaml
from distgen.data import Dataset

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "perturbation_type": "chemical"}
MODEL = {"name": "generator", "conditioner": {"name": "covariate", "part_dim": 4, "dim": 8},
         "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
         "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}}
SPLIT = {"kind": "combo_seen2", "test_conditions": ["A+B"], "val_frac": 0.2, "holdout_controls": 0.2}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``a.h5ad`` (counts of five conditions in two cell types) and ``shuffled.h5ad``: its rows permuted."""
    root = tmp_path_factory.mktemp("rows")
    rng = np.random.default_rng(0)
    rows = [(c, ct) for ct in ("ct1", "ct2") for c in ("control", "A", "B", "A+B", "C") for _ in range(12)]
    obs = pd.DataFrame(rows, columns=["condition", "cell_type"], index=[f"cell{i}" for i in range(len(rows))])
    a = ad.AnnData(rng.poisson(rng.gamma(2.0, 2.0, (len(rows), 16))).astype(np.float32), obs=obs,
                   var=pd.DataFrame(index=[f"g{i}" for i in range(16)]))
    a.write_h5ad(root / "a.h5ad")
    perm = np.random.default_rng(1).permutation(a.n_obs)
    assert not np.array_equal(perm, np.arange(a.n_obs))
    a[perm].copy().write_h5ad(root / "shuffled.h5ad")
    return root


def _column(run, name, column):
    with (run / name).open() as fh:
        return [float(r[column]) for r in csv.DictReader(fh) if r.get(column) not in (None, "")]


@pytest.mark.parametrize("sampling", ["condition", "partition"])
def test_a_row_shuffled_file_trains_with_the_same_losses_and_weights(files, sampling):
    runs = {}
    for name in ("a", "shuffled"):
        doc = {"model": MODEL, "data": {"dataset": str(files / f"{name}.h5ad"), "schema": SCHEMA, "set_size": 4, "split": SPLIT,
                                        "sampling": sampling},
               "train": {"steps": 6, "sets_per_batch": 2, "progress": False, "log_every": 1, "val_every": 3}}
        runs[name] = files / f"run_{name}_{sampling}"
        assert main(["train", str(save_yaml(doc, files / f"{name}_{sampling}.yaml")), "--out", str(runs[name])]) == 0
    losses = [_column(runs[n], "metrics.csv", "loss") for n in ("a", "shuffled")]
    assert len(losses[0]) == 6 and losses[0] == losses[1]
    val = [_column(runs[n], "metrics.csv", "val_loss") for n in ("a", "shuffled")]
    assert val[0] and val[0] == val[1]
    weights = [distgen.load_run(str(runs[n])).model.state_dict() for n in ("a", "shuffled")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_batches_hold_the_same_cells_whatever_the_row_order(files):
    """What the losses rest on: batch k of the two files holds the same values, labels and controls."""
    sources = []
    for name in ("a", "shuffled"):
        ds = Dataset.load({"dataset": str(files / f"{name}.h5ad"), "schema": SCHEMA, "set_size": 4, "split": SPLIT})
        assert sorted(ds.data.cell_names[ds.split.train.numpy()]) == sorted(ds.data.cell_names[ds.by_name("train").numpy()])
        sources.append(ds.sources(sets_per_batch=2, val_sets=2, seed=3)[0])
    for step in range(8):
        one, other = (s.batch(step) for s in sources)
        assert torch.equal(one.target, other.target) and torch.equal(one.control, other.control)
        assert torch.equal(one.labels.perturbation, other.labels.perturbation) and torch.equal(one.labels.context, other.labels.context)


def test_the_streaming_batches_hold_the_same_cells_whatever_the_row_order(files):
    """``StreamBatches`` on the split's training rows of each file (``disk_split``: the same cells by name)."""
    from distgen.data import PerturbationSchema
    from distgen.data.disk_split import disk_split, split_rows
    from distgen.data.streaming import DiskCells, StreamBatches

    schema = PerturbationSchema.from_dict(SCHEMA)
    batches = []
    for name in ("a", "shuffled"):
        cells = DiskCells(files / f"{name}.h5ad", schema)
        rows = split_rows(cells, disk_split(cells, **SPLIT))
        for sampling in ("cell", "condition"):
            src = StreamBatches(cells, set_size=4, sets_per_batch=2, seed=3, rows=rows, sampling=sampling, buffer_sets=4, chunk_cells=16)
            batches.append([src.batch(k) for k in range(2 * src.steps_per_epoch)])
    for one, other in zip(batches[:2], batches[2:]):
        assert len(one) == len(other) > 0
        for x, y in zip(one, other):
            assert torch.equal(x.target, y.target) and torch.equal(x.control, y.control)
            assert torch.equal(x.target_mask, y.target_mask) and torch.equal(x.labels.perturbation, y.labels.perturbation)
