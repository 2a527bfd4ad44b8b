"""SetSampler: shapes, masks, determinism, rank disjointness, sampling modes, control matching."""

from collections import Counter

import pytest
import torch

from distgen.data import PerturbationData, SetSampler, make_split
from distgen.data.matching import matchers
from distgen.errors import InputDataError

from .conftest import make_adata


@pytest.fixture
def table(tiny_adata, tiny_schema):
    return PerturbationData.from_anndata(tiny_adata, tiny_schema).table


def _flat(sampler):
    return [(i, g, tuple(c.tolist()), tuple(k.tolist())) for bn in range(len(sampler)) for i, g, c, _, k in sampler.batch_indices(bn)]


@pytest.mark.parametrize("matcher", ["random", "same_context", "same_batch", "nearest", "ot"])
def test_batches_are_deterministic_and_matched(table, matcher):
    a = list(SetSampler(table, set_size=5, sets_per_batch=3, matcher=matcher, seed=1))
    b = list(SetSampler(table, set_size=5, sets_per_batch=3, matcher=matcher, seed=1))
    c = list(SetSampler(table, set_size=5, sets_per_batch=3, matcher=matcher, seed=2))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        torch.testing.assert_close(x.target, y.target)
        torch.testing.assert_close(x.control, y.control)
    assert any(not torch.equal(x.target, y.target) for x, y in zip(a, c))
    lab = table.labels
    ctrl = lab.perturbation[:, 0] < 0
    for batch in a:
        assert batch.shape == (3, 5, table.X.shape[1])
        assert not batch.labels.is_control.any()
        for s in range(3):
            # every target row is a real cell of the set's condition
            for row in batch.target[s]:
                hit = (row == table.X).all(1).nonzero().flatten()
                assert hit.numel() and (lab.perturbation[hit[0]] == batch.labels.perturbation[s]).all()
            if matcher != "random":
                for row in batch.control[s]:
                    hit = (table.X[ctrl] == row).all(1).nonzero().flatten()
                    assert hit.numel() and lab.context[ctrl][hit[0]] == batch.labels.context[s]
                    if matcher == "same_batch":
                        assert lab.batch[ctrl][hit[0]] == batch.labels.batch[s]


def test_small_groups_are_padded_with_mask():
    a = make_adata(n_per_group=3, conditions=("control", "A", "B"), counts=False)
    data = PerturbationData.from_anndata(a, None)
    batch = next(iter(SetSampler(data.table, set_size=8, sets_per_batch=2, matcher="random")))
    # one context, one batch: each group holds 3 * 2 * 2 = 12 cells > 8; make groups small with contexts
    assert batch.target_mask.all()
    from distgen.data import PerturbationSchema

    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), batch_col="donor"))
    batch = next(iter(SetSampler(data.table, set_size=8, sets_per_batch=2, matcher="same_batch")))
    assert batch.target_mask.sum(1).tolist() == [3, 3]
    assert (batch.target[~batch.target_mask] == 0).all()
    assert batch.control_mask.all()


def test_ranks_are_disjoint_and_cover_the_single_process_sequence(table):
    kw = {"set_size": 4, "sets_per_batch": 2, "matcher": "same_context", "seed": 7, "sets_per_epoch": 24}
    single = _flat(SetSampler(table, world_size=1, **kw))
    ranks = [_flat(SetSampler(table, rank=r, world_size=3, **kw)) for r in range(3)]
    ids = [{x[0] for x in r} for r in ranks]
    assert all(len(r) == len(ranks[0]) for r in ranks)
    assert set.intersection(*ids) == set() and sum(map(len, ids)) == len(single)
    assert sorted(x for r in ranks for x in r) == sorted(single)


def test_epochs_reshuffle(table):
    s = SetSampler(table, set_size=4, sets_per_batch=2, seed=0)
    first = _flat(s)
    s.set_epoch(1)
    assert _flat(s) != first
    s.set_epoch(0)
    assert _flat(s) == first


def test_condition_vs_cell_uniform():
    a = make_adata(n_per_group=4, conditions=("control", "A", "B"), contexts=("ct1",), batches=("b1",), counts=False)
    big = make_adata(n_per_group=60, conditions=("control", "C"), contexts=("ct1",), batches=("b1",), counts=False, seed=2)
    import anndata as ad

    both = ad.concat([a, big], index_unique="-")
    data = PerturbationData.from_anndata(both, None)
    cond = SetSampler(data.table, set_size=2, sets_per_batch=3, sampling="condition", sets_per_epoch=300, seed=0)
    cell = SetSampler(data.table, set_size=2, sets_per_batch=3, sampling="cell", sets_per_epoch=300, seed=0)
    cc = Counter(g for _, g, *_ in _flat(cond))
    ce = Counter(g for _, g, *_ in _flat(cell))
    assert set(cc.values()) == {100}  # each of the 3 groups exactly equally often
    big_group = max(range(3), key=lambda g: cell.groups[g].numel())
    assert ce[big_group] > 200  # 60 of 68 cells: about 265 of 300 sets


def test_nearest_picks_the_nearest_control():
    m = matchers.build("nearest")
    pool_x = torch.tensor([[0.0, 0.0], [10.0, 10.0], [5.0, 5.0], [9.0, 9.0]])
    ctx = torch.tensor([0, 0, 1, 1])
    target = torch.tensor([[9.5, 9.5], [0.1, 0.0]])
    idx = m.match(0, 0, ctx, torch.zeros(4, dtype=torch.long), 2, torch.Generator().manual_seed(0), target, pool_x)
    assert idx.tolist() == [1, 0]
    idx = m.match(1, 0, ctx, torch.zeros(4, dtype=torch.long), 2, torch.Generator().manual_seed(0), target, pool_x)
    assert idx.tolist() == [3, 2]


def test_ot_is_a_permutation_on_equal_sizes():
    m = matchers.build("ot")
    g = torch.Generator().manual_seed(0)
    pool_x = torch.randn(6, 3, generator=g)
    target = pool_x[torch.tensor([3, 0, 5, 1, 4, 2])] + 0.01
    idx = m.match(0, 0, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long), 6, g, target, pool_x)
    assert idx.tolist() == [3, 0, 5, 1, 4, 2]


def test_errors(table, tiny_adata, tiny_schema):
    with pytest.raises(ValueError, match="rank"):
        SetSampler(table, rank=2, world_size=2)
    with pytest.raises(ValueError, match="sampling"):
        SetSampler(table, sampling="uniform")
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    no_ctrl = data.table.subset(torch.from_numpy(~data.is_control))
    with pytest.raises(ValueError, match="no control cells"):
        SetSampler(no_ctrl)
    with pytest.raises(Exception, match="Available: nearest"):
        SetSampler(table, matcher="closest")
    # a batch with no controls in a context cannot be matched by same_batch
    keep = ~(data.is_control & (data.batches == "b2") & (data.contexts == "ct1"))
    part = data.table.subset(torch.from_numpy(keep))
    with pytest.raises(ValueError, match=r"context 'ct1', batch 'b2'.*cannot be matched: .*batch 'b2' has no control cell of "
                                         r"context 'ct1'; set data.matcher: same_context"):
        SetSampler(part, matcher="same_batch")
    SetSampler(part, matcher="same_context")


def test_a_batch_confounded_with_the_perturbation_is_named_as_such(tiny_adata, tiny_schema):
    """Haber 2017's 'batch' column is the condition (batch 0 = every control, 1 = every infected cell): same_batch said
    'no control cells available in context 0 and batch 1' (ids, not names) and pointed to matcher='random'."""
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    keep = ~(data.is_control & (data.batches == "b2"))
    part = data.table.subset(torch.from_numpy(keep))
    with pytest.raises(InputDataError, match=r"batch 'b2' has no control cell of context 'ct1' nor of any other context: every training "
                                            r"cell of that batch is perturbed \(is the batch column confounded"):
        SetSampler(part, matcher="same_batch")


def test_split_then_sample(tiny_adata, tiny_schema):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    split = make_split(data, "held_out_context", test_contexts=["ct2"])
    s = SetSampler(data.table.subset(split.train), set_size=4, sets_per_batch=2)
    seen = {tuple(b.labels.context.tolist()) for b in s}
    assert all(c == 0 for ctx in seen for c in ctx)  # only ct1 perturbed cells are in training


def test_dataloader_workers_keep_the_order(table):
    from torch.utils.data import DataLoader

    s = SetSampler(table, set_size=4, sets_per_batch=2, seed=3, sets_per_epoch=10)
    plain = list(s)
    loaded = list(DataLoader(s, batch_size=None, num_workers=2))
    assert len(loaded) == len(plain) == 5
    for a, b in zip(plain, loaded):
        torch.testing.assert_close(a.target, b.target)
        torch.testing.assert_close(a.control, b.control)


def test_random_access_batch_equals_iteration_and_rejects_out_of_range(table):
    s = SetSampler(table, set_size=4, sets_per_batch=2, seed=3)
    s.set_epoch(1)
    iterated = list(s)
    for k in (0, len(s) - 1):
        got = s.batch(k)
        assert torch.equal(got.target, iterated[k].target) and torch.equal(got.control, iterated[k].control)
    with pytest.raises(IndexError, match="out of range"):
        s.batch(len(s))


def test_partition_uses_every_cell_once_per_epoch_and_fills_sets_from_the_group():
    a = make_adata(n_per_group=5, conditions=("control", "A", "B"), counts=False)
    from distgen.data import PerturbationSchema

    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), batch_col="donor"))
    s = SetSampler(data.table, set_size=4, sets_per_batch=1, matcher="same_batch", sampling="partition", seed=3)
    sizes = [g.numel() for g in s.groups]
    assert len(s) == sum(-(-n // 4) for n in sizes)  # ceil(n / m) sets per group, every set full
    for epoch in (0, 1):
        s.set_epoch(epoch)
        seen: Counter = Counter()
        for _, g, cells, mask, _ in (x for bn in range(len(s)) for x in s.batch_indices(bn)):
            assert mask.all() and set(cells.tolist()) <= set(s.groups[g].tolist())
            seen.update(cells.tolist())
        for grp in s.groups:
            counts = [seen[c] for c in grp.tolist()]
            assert min(counts) >= 1 and sum(counts) == -(-grp.numel() // 4) * 4  # each cell once, fill-ups from its own group
    assert next(iter(s)).target_mask.all()


def test_replacement_fills_small_groups_instead_of_padding():
    a = make_adata(n_per_group=3, conditions=("control", "A", "B"), counts=False)
    from distgen.data import PerturbationSchema

    data = PerturbationData.from_anndata(a, PerturbationSchema(context_cols=("cell_type",), batch_col="donor"))
    batch = next(iter(SetSampler(data.table, set_size=8, sets_per_batch=2, matcher="same_batch", replacement=True)))
    assert batch.target_mask.all()  # 8 cells drawn from a group of 3: repeats, no padding
    assert all(len({tuple(r.tolist()) for r in batch.target[s]}) <= 3 for s in range(2))


@pytest.mark.parametrize("name", ["random", "same_context", "same_batch"])
def test_uniform_matchers_draw_with_replacement_only_when_asked(name):
    # a pool of 12 controls in one context and batch; sets of 8 controls
    pool_context, pool_batch = torch.zeros(12, dtype=torch.long), torch.zeros(12, dtype=torch.long)
    distinct, independent = matchers.build(name), matchers.build(name, replacement=True)
    repeats = {False: 0, True: 0}
    for seed in range(40):
        for replacement, m in ((False, distinct), (True, independent)):
            picks = m.match(0, 0, pool_context, pool_batch, 8, torch.Generator().manual_seed(seed))
            assert picks.shape == (8,) and bool(((picks >= 0) & (picks < 12)).all())
            repeats[replacement] += int(picks.unique().numel() < 8)
    assert repeats[False] == 0  # without replacement while the pool is large enough: distinct
    assert repeats[True] > 20  # independent draws: 8 of 12 repeat one with probability 0.95


def test_matcher_replacement_reaches_the_sampler_through_matcher_params(table):
    s = SetSampler(table, set_size=5, sets_per_batch=3, matcher="same_batch", matcher_params={"replacement": True}, seed=1)
    assert s.matcher.replacement is True
    assert SetSampler(table, set_size=5, sets_per_batch=3, matcher="same_batch", seed=1).matcher.replacement is False


def test_replacement_that_partition_sampling_never_reads_warns():
    # partition cuts every group into sets of its own cells and never draws, so replacement changes nothing
    # (a warning, not a refusal: scdfm's replacement: true reaches data.sampling=partition from the preset)
    import warnings

    from distgen.config import InertSettingWarning
    from distgen.testing import tiny_table

    with pytest.warns(InertSettingWarning, match=r"data\.replacement=true has no effect with sampling='partition'"):
        partition = SetSampler(tiny_table(), set_size=4, sets_per_batch=2, sampling="partition", replacement=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = SetSampler(tiny_table(), set_size=4, sets_per_batch=2, sampling="partition")
        SetSampler(tiny_table(), set_size=4, sets_per_batch=2, sampling="condition", replacement=True)
    assert torch.equal(partition.batch(0).target, plain.batch(0).target)  # what it warns about: the same sets
