"""TableBatches: the trainer's in-memory batch source, a pure function of (seed, step, shard)."""

import pytest
import torch

from distgen.data.batches import TableBatches
from distgen.testing.fixtures import tiny_table
from distgen.train.batches import mix_seed


@pytest.fixture
def table():
    return tiny_table()


def test_shards_concatenate_to_the_global_batch(table):
    src = TableBatches(table, set_size=4, sets_per_batch=4, seed=3)
    whole = src.batch(5, 0, 1)
    parts = [src.batch(5, k, 2) for k in range(2)]
    assert torch.equal(torch.cat([p.target for p in parts]), whole.target)
    assert torch.equal(torch.cat([p.control for p in parts]), whole.control)
    assert torch.equal(torch.cat([p.labels.perturbation for p in parts]), whole.labels.perturbation)


@pytest.mark.parametrize("sampling", [
    {"sampling": "condition"}, {"sampling": "cell", "replacement": True},  # scDFM's
    {"sampling": "partition", "matcher_params": {"replacement": True}},  # PerturbDiff's
    {"sampling": "condition", "control_sets": "all"},
])
def test_every_split_of_a_step_is_the_same_global_batch(table, sampling):
    """What ranks x micro-batches compute at a step: the shards of ``n`` in {2, 4} concatenate to the 1-shard batch (cells,
    their controls, masks, labels), in every sampling mode of the presets and across epochs (step 5 and 17 are in later
    epochs here), so the union over ranks is the documented global batch, each of its sets computed by one rank."""
    src = TableBatches(table, set_size=4, sets_per_batch=4, seed=3, **sampling)
    for step in (0, 5, 17):
        whole = src.batch(step, 0, 1)
        for n in (2, 4):
            parts = [src.batch(step, k, n) for k in range(n)]
            assert all(p.shape[0] == 4 // n for p in parts)
            for field in ("target", "target_mask", "control", "control_mask"):
                assert torch.equal(torch.cat([getattr(p, field) for p in parts]), getattr(whole, field)), (step, n, field)
            assert torch.equal(torch.cat([p.labels.perturbation for p in parts]), whole.labels.perturbation)
            assert torch.equal(torch.cat([p.labels.context for p in parts]), whole.labels.context)


def test_batches_depend_on_step_and_seed_only(table):
    a, b = TableBatches(table, 4, 4, seed=1), TableBatches(table, 4, 4, seed=1)
    assert torch.equal(a.batch(2).target, b.batch(2).target)
    assert not torch.equal(a.batch(2).target, a.batch(3).target)
    assert not torch.equal(a.batch(2).target, TableBatches(table, 4, 4, seed=2).batch(2).target)


def test_sets_are_one_condition_with_controls_and_padding(table):
    src = TableBatches(table, set_size=20, sets_per_batch=3)  # groups hold 8 cells -> 12 padded
    b = src.batch(0)
    assert b.target_mask.sum(1).tolist() == [8, 8, 8] and b.control_mask.all()
    assert len({tuple(r) for r in b.labels.perturbation.tolist()}) == 3  # condition-uniform: no repeats
    assert (b.target[~b.target_mask] == 0).all()
    ctrl = table.X[table.is_control]
    for row in b.control.reshape(-1, b.shape[2]):
        assert (ctrl == row).all(1).any()
    assert not b.labels.is_control.any()


def test_mix_seed_spreads_and_is_stable():
    assert mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(0, 2) != mix_seed(1, 1)
    assert 0 <= mix_seed(-1, 5) < 2**63
