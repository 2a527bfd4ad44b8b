"""Out-of-core streaming: on-disk AnnData -> SetBatch with bounded memory, seeded and rank-disjoint."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from distgen.data import PerturbationData, PerturbationSchema
from distgen.data.large_synthetic import write_large_synthetic
from distgen.data.streaming import DiskCells, StreamingSetSampler

SCHEMA = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",), batch_col="batch")


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("atlas") / "atlas.h5ad"
    write_large_synthetic(path, n_cells=3000, n_genes=40, n_perturbations=6, n_contexts=2, n_batches=2, chunk_cells=700, density=0.5, seed=3)
    return str(path)


def _rows(batch) -> list[bytes]:
    """Real target cells of a batch, as bytes (cells of the synthetic atlas are distinct)."""
    return [batch.target[i, j].numpy().tobytes() for i in range(batch.shape[0]) for j in range(batch.shape[1]) if batch.target_mask[i, j]]


def test_disk_cells_match_in_memory_dataset(atlas):
    disk = DiskCells(atlas, SCHEMA)
    mem = PerturbationData.from_anndata(ad.read_h5ad(atlas), SCHEMA)
    assert disk.info == mem.info
    for name in ("perturbation", "context", "batch"):
        assert torch.equal(getattr(disk.labels, name), getattr(mem.table.labels, name))
    rows = np.array([2999, 0, 17, 18, 19, 1500, 17])
    assert np.array_equal(disk.read(rows).toarray(), mem.table.X.numpy()[rows])


def test_batches_hold_cells_of_their_condition_and_matched_controls(atlas):
    mem = PerturbationData.from_anndata(ad.read_h5ad(atlas), SCHEMA)
    x, lab = mem.table.X.numpy(), mem.table.labels
    where = {x[i].tobytes(): i for i in range(len(x))}
    sampler = StreamingSetSampler(atlas, set_size=16, sets_per_batch=3, schema=SCHEMA, chunk_cells=100, buffer_sets=5, seed=1)
    n = 0
    for batch in sampler:
        b, m, g = batch.shape
        assert (b, m, g) == (3, 16, 40) and batch.control_mask.all()
        assert (batch.target[~batch.target_mask] == 0).all()
        for i in range(b):
            cells = [where[batch.target[i, j].numpy().tobytes()] for j in range(m) if batch.target_mask[i, j]]
            assert all(torch.equal(lab.perturbation[c], batch.labels.perturbation[i]) for c in cells)
            assert all(int(lab.context[c]) == int(batch.labels.context[i]) for c in cells)
            ctl = [where[batch.control[i, j].numpy().tobytes()] for j in range(m)]
            assert all(bool(lab.is_control[c]) and int(lab.context[c]) == int(batch.labels.context[i]) for c in ctl)
        n += 1
    assert n == len(sampler) > 0


def test_epoch_covers_every_perturbed_cell_once(atlas):
    sampler = StreamingSetSampler(atlas, set_size=8, sets_per_batch=1, schema=SCHEMA)
    seen = [r for batch in sampler for r in _rows(batch)]
    n_perturbed = int((~sampler.cells.is_control).sum())
    assert len(seen) == len(set(seen)) == n_perturbed


def test_deterministic_under_seed_and_epoch(atlas):
    def first(seed: int, epoch: int) -> torch.Tensor:
        s = StreamingSetSampler(atlas, set_size=8, sets_per_batch=2, schema=SCHEMA, seed=seed, buffer_sets=4)
        s.set_epoch(epoch)
        return torch.cat([torch.cat([b.target, b.control], 1) for b, _ in zip(s, range(3))])

    assert torch.equal(first(0, 0), first(0, 0))
    assert not torch.equal(first(0, 0), first(1, 0))
    assert not torch.equal(first(0, 0), first(0, 1))


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_are_disjoint_and_equal_length(atlas, world):
    per_rank = []
    for rank in range(world):
        s = StreamingSetSampler(atlas, set_size=8, sets_per_batch=2, schema=SCHEMA, rank=rank, world_size=world, seed=5)
        per_rank.append([r for b in s for r in _rows(b)])
        assert sum(1 for _ in s) == len(s)
    lens = {len(StreamingSetSampler(atlas, set_size=8, sets_per_batch=2, schema=SCHEMA, rank=r, world_size=world)) for r in range(world)}
    assert len(lens) == 1
    flat = [r for rows in per_rank for r in rows]
    assert len(flat) == len(set(flat))


def test_dataloader_workers_split_a_rank_disjointly(atlas):
    s = StreamingSetSampler(atlas, set_size=8, sets_per_batch=2, schema=SCHEMA, seed=2)
    loader = torch.utils.data.DataLoader(s, batch_size=None, num_workers=2)
    got = [r for b in loader for r in _rows(b)]
    single = [r for b in s for r in _rows(b)]
    assert len(got) == len(set(got)) and set(got) == set(single)


def test_condition_sampling_gives_one_set_per_group(atlas):
    s = StreamingSetSampler(atlas, set_size=4, sets_per_batch=1, schema=SCHEMA, sampling="condition")
    assert len(s) == len(s.groups)
    keys = {tuple(b.labels.perturbation[0].tolist()) + (int(b.labels.context[0]), int(b.labels.batch[0])) for b in s}
    assert len(keys) == len(s.groups)


def test_zarr_store_streams_like_h5ad(atlas, tmp_path):
    zpath = tmp_path / "atlas.zarr"
    write_large_synthetic(zpath, n_cells=3000, n_genes=40, n_perturbations=6, n_contexts=2, n_batches=2, chunk_cells=700, density=0.5, seed=3)
    import zarr

    if int(zarr.__version__.split(".")[0]) >= 3:  # the format anndata's write_zarr writes (anndata 0.12.0 fails on text in format 3)
        assert zarr.open_group(str(zpath), mode="r").metadata.zarr_format == ad.settings.zarr_write_format
    a = StreamingSetSampler(atlas, set_size=8, sets_per_batch=2, schema=SCHEMA)
    z = StreamingSetSampler(zpath, set_size=8, sets_per_batch=2, schema=SCHEMA)
    for ba, bz in zip(a, z):
        assert torch.equal(ba.target, bz.target) and torch.equal(ba.control, bz.control)


def test_counts_are_log_normalised_per_row(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, (60, 10)).astype(np.float32)
    obs = pd.DataFrame({"perturbation": ["control"] * 20 + ["G1"] * 20 + ["G2"] * 20}, index=[f"c{i}" for i in range(60)])
    path = tmp_path / "counts.h5ad"
    ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(10)])).write_h5ad(path)
    disk = DiskCells(path, PerturbationSchema(perturbation_col="perturbation"))
    expect = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1e-12) * 1e4)
    assert disk.scale == "counts"
    np.testing.assert_allclose(disk.read(np.array([45, 3])).toarray(), expect[[45, 3]], rtol=1e-5)


def test_gene_subset_keeps_requested_columns(atlas):
    full = DiskCells(atlas, SCHEMA)
    genes = [full.info.genes[7], full.info.genes[2]]
    sub = DiskCells(atlas, SCHEMA, genes=genes)
    assert sub.info.genes == tuple(genes)
    assert np.array_equal(sub.read(np.array([4, 9])).toarray(), full.read(np.array([4, 9])).toarray()[:, [7, 2]])


def test_bad_inputs_name_the_problem(atlas, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DiskCells(tmp_path / "nope.h5ad", SCHEMA)
    with pytest.raises(KeyError, match="donor"):
        DiskCells(atlas, PerturbationSchema(perturbation_col="perturbation", batch_col="donor"))
    with pytest.raises(ValueError, match="sets_per_batch"):
        StreamingSetSampler(atlas, set_size=3000, sets_per_batch=10_000, schema=SCHEMA)
    with pytest.raises(ValueError, match="rank"):
        StreamingSetSampler(atlas, schema=SCHEMA, rank=2, world_size=2)
    csc = tmp_path / "csc.h5ad"
    obs = pd.DataFrame({"perturbation": ["control", "G1"] * 5}, index=[f"c{i}" for i in range(10)])
    ad.AnnData(X=sp.csc_matrix(np.ones((10, 3), np.float32)), obs=obs, var=pd.DataFrame(index=["G0", "G1", "G2"])).write_h5ad(csc)
    with pytest.raises(ValueError, match="CSC"):
        DiskCells(csc, PerturbationSchema(perturbation_col="perturbation"))


def test_synthetic_writer_is_seeded_chunk_invariant_and_atomic(tmp_path):
    a = write_large_synthetic(tmp_path / "a.h5ad", n_cells=500, n_genes=30, n_perturbations=5, chunk_cells=500, seed=1)
    b = write_large_synthetic(tmp_path / "b.h5ad", n_cells=500, n_genes=30, n_perturbations=5, chunk_cells=500, seed=1)
    c = write_large_synthetic(tmp_path / "c.h5ad", n_cells=500, n_genes=30, n_perturbations=5, chunk_cells=120, seed=1)
    xa, xb, xc = (ad.read_h5ad(p) for p in (a, b, c))
    assert sp.issparse(xa.X) and xa.X.format == "csr" and xa.shape == (500, 30)
    assert (xa.X != xb.X).nnz == 0 and xa.obs.equals(xb.obs)
    assert xc.obs.equals(xa.obs) and xc.X.shape == xa.X.shape and xc.X.nnz > 0
    assert set(xa.obs.columns) == {"perturbation", "cell_type", "batch"} and "control" in set(xa.obs["perturbation"])
    assert 0.03 < xa.X.nnz / (500 * 30) < 0.3 and xa.X.min() >= 0
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(FileExistsError, match="overwrite"):
        write_large_synthetic(a, n_cells=10, n_genes=5, n_perturbations=2)


def test_grouped_layout_sorts_cells_by_condition(tmp_path):
    p = write_large_synthetic(tmp_path / "g.h5ad", n_cells=400, n_genes=20, n_perturbations=4, layout="grouped", seed=0)
    codes = ad.read_h5ad(p).obs["perturbation"].cat.codes.to_numpy()
    assert (np.diff(codes) >= 0).all()


def test_stream_batches_resume_exactly_and_shard_disjointly(atlas):
    from distgen.data.streaming import StreamBatches

    a = StreamBatches(atlas, set_size=8, sets_per_batch=4, seed=3, schema=SCHEMA, buffer_sets=4)
    n = len(a.sampler(0, 2))
    assert a.steps_per_epoch == n  # the same epoch length whatever the shard layout (train.ema_epoch_end counts on it)
    straight = [a.batch(k, 1, 2) for k in range(n + 2)]  # crosses an epoch boundary
    resumed = StreamBatches(atlas, set_size=8, sets_per_batch=4, seed=3, schema=SCHEMA, buffer_sets=4)
    for k in (n - 1, n, n + 1, 2):
        assert torch.equal(resumed.batch(k, 1, 2).target, straight[k].target)
    other = [r for k in range(n) for r in _rows(a.batch(k, 0, 2))]
    mine = [r for k in range(n) for r in _rows(straight[k])]
    assert not set(other) & set(mine)
    with pytest.raises(ValueError, match="multiple"):
        a.batch(0, 0, 3)


def test_predict_to_disk_writes_every_group_in_the_cell_eval_layout(atlas, tmp_path):
    from distgen.data.streaming import predict_to_disk
    from distgen.models.baselines.control import ControlBaseline

    out = predict_to_disk(ControlBaseline(), atlas, tmp_path / "pred.h5ad", set_size=5, sets_per_call=3, schema=SCHEMA, control_pool=50,
                          max_cells=40)
    pred = ad.read_h5ad(out)
    disk = DiskCells(atlas, SCHEMA)
    kinds = pred.obs["distgen_kind"].astype(str).to_numpy()
    real = pd.Series(disk.canonical_names[disk.condition_codes][~disk.is_control]).value_counts()  # a condition over contexts
    assert (real > 80).all()  # so that max_cells=40 per condition in a context caps every one of them
    written = pred.obs["target"][kinds == "predicted"].astype(str).value_counts()
    assert written.to_dict() == {c: 40 * len(disk.info.contexts) for c in real.index}
    assert 0 < (kinds == "control").sum() <= 50 + 5 * 4  # the pool: about 50, at least a set of each context and batch
    assert set(pred.obs["batch"].astype(str)) == set(disk.info.batches)
    assert pred.var_names.tolist() == list(disk.info.genes)
    assert set(pred.obs["target"][kinds == "control"]) == {"non-targeting"}
    assert len(set(pred.obs["target"][kinds == "predicted"])) == disk.info.n_perturbations
    controls = {r.tobytes() for r in pred.X[kinds == "control"]}
    assert all(r.tobytes() in controls for r in pred.X[kinds == "predicted"])  # the no-effect model returns its matched controls
    assert not list(tmp_path.glob("*.partial"))
