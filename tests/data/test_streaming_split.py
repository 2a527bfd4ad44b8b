"""Streaming training on a split's training cells only (``StreamBatches(rows=...)``, ``distgen.data.disk_split``).

Before, ``StreamBatches`` read every perturbed cell of its file and had no split: held-out conditions and cells were
trained on unless the user had written the training cells to a file of their own. The leakage audit of the in-memory
path (``test_leakage_audit.py``) is repeated here by behaviour: the genes of every held-out cell are shuffled within
the cell and the training batches come out bit-identical; every cell of every batch maps back to a training row.
"""

import numpy as np
import pytest

import distgen
from distgen.data import PerturbationSchema
from distgen.data.disk_split import disk_split, split_rows
from distgen.data.streaming import DiskCells, StreamBatches

from .conftest import make_adata, write_with_held_out_shuffled

SCHEMA = {"perturbation_col": "condition", "context_cols": ["cell_type"], "batch_col": "donor"}
KINDS = [
    {"kind": "random_conditions", "seed": 0},
    {"kind": "combo_seen2", "seed": 1, "holdout_controls": 0.3},
    {"kind": "held_out_context", "seed": 0, "test_contexts": ["ct2"]},
    {"kind": "held_out_batch", "seed": 0, "test_batches": ["b2"], "holdout_controls": 0.3},
]
IDS = [k["kind"] + ("+controls" if "holdout_controls" in k else "") for k in KINDS]


def _files(tmp_path, split):
    """The same cells twice, the second with every held-out (val or test) cell's genes shuffled; and the split."""
    adata = make_adata(n_per_group=10, n_genes=40, counts=False)
    adata.write_h5ad(tmp_path / "orig.h5ad")
    sp = disk_split(DiskCells(tmp_path / "orig.h5ad", PerturbationSchema(**SCHEMA)), **split)
    orig, perm = write_with_held_out_shuffled(adata, np.concatenate([sp.val.numpy(), sp.test.numpy()]), tmp_path)
    return orig, perm, sp


def _batches(path, rows, steps=None):
    src = StreamBatches(str(path), set_size=4, sets_per_batch=2, seed=3, schema=PerturbationSchema(**SCHEMA), rows=rows,
                        buffer_sets=4, chunk_cells=16)
    n = 2 * src.steps_per_epoch if steps is None else steps  # two epochs
    return [src.batch(k) for k in range(n)]


@pytest.mark.parametrize("split", KINDS, ids=IDS)
def test_held_out_values_leave_streamed_batches_bit_identical(tmp_path, split):
    orig, perm, sp = _files(tmp_path, split)
    rows = split_rows(DiskCells(orig, PerturbationSchema(**SCHEMA)), sp)
    a, b = _batches(orig, rows), _batches(perm, rows)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert np.array_equal(x.target.numpy(), y.target.numpy()) and np.array_equal(x.control.numpy(), y.control.numpy())
        assert np.array_equal(x.target_mask.numpy(), y.target_mask.numpy())
    # without rows the file's every perturbed cell is read: the shuffled held-out cells show (the check can fail)
    full_a, full_b = _batches(orig, None, len(a)), _batches(perm, None, len(a))
    assert any(not np.array_equal(x.target.numpy(), y.target.numpy()) for x, y in zip(full_a, full_b))


@pytest.mark.parametrize("split", KINDS, ids=IDS)
def test_every_cell_of_every_streamed_batch_is_a_training_cell(tmp_path, split):
    orig, _, sp = _files(tmp_path, split)
    cells = DiskCells(orig, PerturbationSchema(**SCHEMA))
    every = cells.read(np.arange(cells.n_cells)).toarray()
    keys = [r.tobytes() for r in every]
    assert len(set(keys)) == len(keys), "the fixture's cells must be distinct for this check"
    index = {k: i for i, k in enumerate(keys)}
    train = set(sp.train.tolist())
    reached = set()
    for batch in _batches(orig, split_rows(cells, sp)):
        for s in range(batch.target.shape[0]):
            reached.update(index[r.numpy().tobytes()] for r in batch.target[s][batch.target_mask[s]])
            reached.update(index[r.numpy().tobytes()] for r in batch.control[s])
    assert reached and reached <= train
    pert_train = {i for i in train if not cells.is_control[i]}
    assert pert_train <= reached  # two epochs of sampling='cell' read every perturbed training cell
    held_controls = (set(sp.val.tolist()) | set(sp.test.tolist())) & set(np.flatnonzero(cells.is_control).tolist())
    assert bool(held_controls) == ("holdout_controls" in split) and not reached & held_controls


@pytest.mark.parametrize("split", KINDS, ids=IDS)
def test_a_disk_split_is_the_in_memory_split_of_the_same_file(tmp_path, split):
    path = tmp_path / "d.h5ad"
    make_adata(n_per_group=6, n_genes=20).write_h5ad(path)
    mem = distgen.load_data(str(path), split=split, schema=SCHEMA).split
    disk = disk_split(DiskCells(path, PerturbationSchema(**SCHEMA)), **split)
    assert disk.data_hash == mem.data_hash and disk.test_groups == mem.test_groups
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(disk, part).numpy(), getattr(mem, part).numpy()), part


def test_a_split_of_other_cells_is_refused(tmp_path):
    a, b = tmp_path / "a.h5ad", tmp_path / "b.h5ad"
    make_adata(n_per_group=6, n_genes=20).write_h5ad(a)
    other = make_adata(n_per_group=6, n_genes=20)
    other.obs_names = [f"x{i}" for i in range(other.n_obs)]
    other.write_h5ad(b)
    sp = disk_split(DiskCells(a, PerturbationSchema(**SCHEMA)), kind="random_conditions", seed=0)
    with pytest.raises(ValueError, match="made for other cells"):
        split_rows(DiskCells(b, PerturbationSchema(**SCHEMA)), sp)
    with pytest.raises(ValueError, match="part must be"):
        split_rows(DiskCells(a, PerturbationSchema(**SCHEMA)), sp, "training")
    with pytest.raises(ValueError, match="indices into the file"):
        StreamBatches(str(a), schema=PerturbationSchema(**SCHEMA), rows=[0, 10**6])


def test_rows_without_perturbed_or_control_cells_are_refused(tmp_path):
    path = tmp_path / "d.h5ad"
    make_adata(n_per_group=6, n_genes=20).write_h5ad(path)
    cells = DiskCells(path, PerturbationSchema(**SCHEMA))
    ctrl, pert = np.flatnonzero(cells.is_control), np.flatnonzero(~cells.is_control)
    with pytest.raises(ValueError, match="no perturbed cells among"):
        _ = StreamBatches(cells, set_size=4, sets_per_batch=2, rows=ctrl).steps_per_epoch
    with pytest.raises(ValueError, match=f"no control cells among the {pert.size} rows given"):
        _ = StreamBatches(cells, set_size=4, sets_per_batch=2, rows=pert).steps_per_epoch


def test_a_zarr_store_gets_the_split_of_its_h5ad(tmp_path):
    adata = make_adata(n_per_group=6, n_genes=20)
    adata.write_h5ad(tmp_path / "d.h5ad")
    adata.write_zarr(tmp_path / "d.zarr")
    a = disk_split(DiskCells(tmp_path / "d.h5ad", PerturbationSchema(**SCHEMA)), kind="random_conditions", seed=2)
    b = disk_split(DiskCells(tmp_path / "d.zarr", PerturbationSchema(**SCHEMA)), kind="random_conditions", seed=2)
    assert a.data_hash == b.data_hash and np.array_equal(a.train.numpy(), b.train.numpy())
