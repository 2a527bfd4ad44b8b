"""The streaming predictor (``predict_to_disk``) is batch-aware as the in-memory one (``pipeline.predict``): the same
(condition, context, batch) groups, each generated from the same control cells (its own context and batch, or the
context's other batches when it has none), as many cells as it has real ones, labelled with its batch."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import Dataset, PerturbationSchema
from distgen.data.streaming import DiskCells, disk_groups, predict_to_disk
from distgen.models.baselines.control import ControlBaseline
from distgen.pipeline.predict import predict

SCHEMA = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"], "batch_col": "donor",
          "perturbation_type": "chemical"}


@pytest.fixture(scope="module")
def donors(tmp_path_factory):
    """Log-normalised cells (every row distinct) of control, A, B and A+B in ct1, ct2 x donors b1, b2, b3, of uneven sizes;
    donor b3 has no control cell in ct2."""
    rng = np.random.default_rng(1)
    rows = []
    for cond in ("control", "A", "B", "A+B"):
        for ct in ("ct1", "ct2"):
            for b in ("b1", "b2", "b3"):
                if (cond, ct, b) != ("control", "ct2", "b3"):
                    rows += [(cond, ct, b)] * int(rng.integers(3, 11))
    rows = [rows[i] for i in rng.permutation(len(rows))]  # unsorted on disk
    obs = pd.DataFrame(rows, columns=["condition", "cell_type", "donor"], index=[f"c{i}" for i in range(len(rows))])
    x = np.log1p(rng.poisson(3.0, (len(rows), 6))).astype(np.float32)
    x[:, 0] = np.log1p(np.arange(len(rows), dtype=np.float32) + 0.5)  # every cell distinct
    path = tmp_path_factory.mktemp("stream") / "donors.h5ad"
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(6)])).write_h5ad(path)
    return str(path)


def _by_group(x, obs):
    keys = list(zip(obs["target"].astype(str), obs["celltype"].astype(str), obs["batch"].astype(str)))
    out: dict = {}
    for k, row in zip(keys, x):
        out.setdefault(k, []).append(row)
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("max_cells", [None, 6])
def test_streaming_and_in_memory_prediction_give_the_same_groups_and_control_draws(donors, tmp_path, max_cells):
    # in memory: B and A+B held out, every control cell in training, so each group's pool is every control of its context and batch
    ds = Dataset.load({"dataset": donors, "schema": SCHEMA, "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.0, "seed": 0}})
    ds = ds.capped(max_cells)
    mem_groups = ds.groups()
    disk = DiskCells(donors, ds.data.schema)
    pool = np.flatnonzero(disk.is_control)
    stream_groups = [g for g in disk_groups(disk, pool, max_cells) if g.condition in ("B", "A+B")]
    assert [(g.condition, g.context, g.batch, g.other_batches) for g in stream_groups] == \
           [(g.condition, g.context, g.batch, g.other_batches) for g in mem_groups]
    if max_cells is None:
        assert len(mem_groups) == 12 and [g.batch for g in mem_groups if g.other_batches] == ["b3", "b3"]  # B, A+B in ct2 x b3
    else:  # a capped condition keeps 6 of its cells in a context, over its batches (a small batch may keep none)
        assert all(sum(len(g.cells) for g in mem_groups if (g.condition, g.context) == key) == 6
                   for key in {(g.condition, g.context) for g in mem_groups})
    names = ds.data.adata.obs_names
    for m, s in zip(mem_groups, stream_groups):  # the same file rows: cells and pools are the same cells
        assert names[m.cells].tolist() == names[s.cells].tolist() and names[m.controls].tolist() == names[s.controls].tolist()

    # the no-effect model hands back the control cells it was given: each group's generated cells are its control draw
    mem = predict(ControlBaseline(), ds, preflight=False, set_size=4)
    out = predict_to_disk(ControlBaseline(), donors, tmp_path / "pred.h5ad", set_size=4, sets_per_call=3, schema=ds.data.schema,
                          max_cells=max_cells)
    streamed = ad.read_h5ad(out)
    gen = streamed.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
    from_disk = _by_group(streamed.X[gen], streamed.obs[gen])
    in_memory = {}
    for g in mem_groups:
        rows = (mem.conditions == g.condition) & (mem.contexts == g.context) & (mem.batches == g.batch)
        in_memory[(g.condition, g.context, g.batch)] = mem.X.numpy()[rows]
    assert set(in_memory) <= set(from_disk)
    for key, x in in_memory.items():
        assert np.array_equal(from_disk[key], x), f"{key}: the streaming path generated from other control cells"
    borrowed = in_memory[("B", "ct2", "b3")]
    ct2_b12 = ds.data.table.X.numpy()[ds.data.is_control & (ds.data.contexts == "ct2") & (ds.data.batches != "b3")]
    assert all((ct2_b12 == r).all(1).any() for r in borrowed)  # b3 borrowed the ct2 controls of b1 and b2


def test_streaming_writes_each_group_in_the_batch_mix_of_its_real_cells(donors, tmp_path):
    disk = DiskCells(donors, PerturbationSchema(**SCHEMA))
    out = ad.read_h5ad(predict_to_disk(ControlBaseline(), disk, tmp_path / "pred.h5ad", set_size=4))
    real = ad.read_h5ad(donors).obs
    real = real[real["condition"] != "control"].groupby(["condition", "cell_type", "donor"], observed=True).size()
    gen = out.obs[out.obs["distgen_kind"].astype(str) == "predicted"].groupby(["target", "celltype", "batch"], observed=True).size()
    assert gen.to_dict() == real.to_dict()
    controls = out.obs[out.obs["distgen_kind"].astype(str) == "control"]
    assert set(zip(controls["celltype"].astype(str), controls["batch"].astype(str))) == \
           {(c, b) for c in ("ct1", "ct2") for b in ("b1", "b2", "b3")} - {("ct2", "b3")}


GEN = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                 "dynamics": {"name": "diffusion", "sampler": {"name": "ddpm", "steps": 3}}}}


def test_streamed_groups_get_the_in_memory_draws_whatever_sets_per_call_and_the_other_groups(donors, tmp_path):
    """Before, the model's random draws were seeded per call of ``sets_per_call`` sets (several groups to a call): a
    group's cells changed with ``sets_per_call`` and with the other groups of the file, and were not the in-memory ones."""
    import distgen

    ds = Dataset.load({"dataset": donors, "schema": SCHEMA, "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.0, "seed": 0}})
    model = distgen.build(GEN, ds)
    mem = predict(model, ds, "test", seed=3, preflight=False, set_size=4)
    in_memory = {}
    for g in ds.groups():
        rows = (mem.conditions == g.condition) & (mem.contexts == g.context) & (mem.batches == g.batch)
        in_memory[(g.condition, g.context, g.batch)] = mem.X.numpy()[rows]

    def streamed(path, **kw):
        out = ad.read_h5ad(predict_to_disk(model, path, tmp_path / f"pred{len(list(tmp_path.iterdir()))}.h5ad", set_size=4, seed=3,
                                           schema=ds.data.schema, **kw))
        gen = out.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
        return _by_group(out.X[gen], out.obs[gen])

    whole, three = streamed(donors), streamed(donors, sets_per_call=3)  # every group has at most 3 sets of 4 cells
    without_a = tmp_path / "without_a.h5ad"
    real = ad.read_h5ad(donors)
    real[real.obs["condition"].astype(str) != "A"].copy().write_h5ad(without_a)
    alone = streamed(without_a, sets_per_call=1)
    for key, x in in_memory.items():
        assert np.array_equal(whole[key], x), f"{key}: the streamed cells are not the in-memory ones"
        assert np.array_equal(three[key], x), f"{key}: sets_per_call changed the cells"
        if len(x) <= 4:  # one set: one call whatever sets_per_call
            assert np.array_equal(alone[key], x), f"{key}: the other groups of the file changed the cells"
    assert any(len(x) > 4 and not np.array_equal(alone[k], x) for k, x in in_memory.items())  # a split group: other calls
    assert set(alone) == set(whole) - {k for k in whole if k[0] == "A"}
    other_seed = predict_to_disk(model, donors, tmp_path / "seed4.h5ad", set_size=4, seed=4, schema=ds.data.schema)
    assert not np.array_equal(ad.read_h5ad(other_seed).X, ad.read_h5ad(tmp_path / "pred0.h5ad").X)  # the seed matters


@pytest.mark.parametrize("holdout_controls", [0.0, 0.4])
def test_a_split_part_streams_as_it_predicts_in_memory(donors, tmp_path, holdout_controls):
    """``predict_to_disk(split=, part=)``: only the part's groups, from the controls ``Dataset.groups(part)`` picks."""
    from distgen.data.disk_split import disk_split

    split = {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.2, "seed": 0, "holdout_controls": holdout_controls}
    ds = Dataset.load({"dataset": donors, "schema": SCHEMA, "set_size": 4, "split": split})
    disk = DiskCells(donors, ds.data.schema)
    sp = disk_split(disk, **{k: v for k, v in split.items()})
    assert np.array_equal(sp.test.numpy(), ds.split.test.numpy())
    for part in ("test", "val"):
        mem = predict(ControlBaseline(), ds, part, preflight=False, set_size=4)
        out = ad.read_h5ad(predict_to_disk(ControlBaseline(), disk, tmp_path / f"{part}.h5ad", set_size=4, split=sp, part=part))
        gen = out.obs["distgen_kind"].astype(str).to_numpy() == "predicted"
        streamed = _by_group(out.X[gen], out.obs[gen])
        groups = ds.groups(part)
        assert set(streamed) == {(g.condition, g.context, g.batch) for g in groups}
        for g in groups:
            rows = (mem.conditions == g.condition) & (mem.contexts == g.context) & (mem.batches == g.batch)
            assert np.array_equal(streamed[(g.condition, g.context, g.batch)], mem.X.numpy()[rows]), (part, g.condition, g.context, g.batch)
        held_ctrl = set(ds.data.adata.obs_names[np.setdiff1d(ds.split.test.numpy() if part == "test" else ds.split.val.numpy(),
                                                               np.flatnonzero(~ds.data.is_control))])
        starts = {r.tobytes() for r in out.X[~gen]}
        held = {r.tobytes() for r in ad.read_h5ad(donors)[sorted(held_ctrl)].X}
        assert bool(starts & held) == bool(holdout_controls)  # the part's held-out controls, where the split has some


class _InfInOneGroup:
    """Hands back its control cells, with inf in the cells of the conditions with atom B (A+B comes first; a model diverged on some groups)."""

    def __init__(self, b_code):
        self.b_code = b_code

    def predict(self, control, mask, labels):
        out = control.clone()
        hit = (labels.perturbation == self.b_code).any(-1)
        out[hit, :, 2] = float("inf")
        return out


def test_non_finite_streamed_cells_are_refused_naming_the_group_and_nothing_is_written(donors, tmp_path):
    """predict_to_disk wrote NaN/inf cells as a prediction (the in-memory predictor refuses them): now the same
    NonFiniteSamplesError, naming the group and the checkpoint, and neither ``out`` nor a partial file is left."""
    from distgen.errors import NonFiniteSamplesError

    disk = DiskCells(donors, PerturbationSchema.from_dict(SCHEMA))
    model = _InfInOneGroup(disk.info.perturbations.index("B"))
    out = tmp_path / "pred.h5ad"
    with pytest.raises(NonFiniteSamplesError, match=r"generated values are NaN or inf for condition A\+B @ ct1 \(batch b1\)\. Check checkpoint 'runs/a/ckpt'"):
        predict_to_disk(model, disk, out, set_size=4, weights="runs/a/ckpt")
    assert list(tmp_path.iterdir()) == []
    predict_to_disk(_InfInOneGroup(10**6), disk, out, set_size=4)  # a finite model writes its prediction
    assert np.isfinite(ad.read_h5ad(out).X).all()


def test_real_writes_the_truth_of_the_streamed_groups_as_in_memory_and_evaluate_scores_the_pair(donors, tmp_path, capsys):
    """``predict_to_disk(real=)``: each group's real cells (the capped subset), then the controls, the in-memory truth's
    cells group for group, in the prediction's layout, so ``distgen evaluate`` scores a streamed prediction."""
    from distgen.cli import main
    from distgen.data.disk_split import disk_split

    split = {"kind": "random_conditions", "test_conditions": ["B", "A+B"], "val_frac": 0.0, "seed": 0}
    ds = Dataset.load({"dataset": donors, "schema": SCHEMA, "set_size": 4, "split": split}).capped(5)
    disk = DiskCells(donors, ds.data.schema)
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    predict_to_disk(ControlBaseline(), disk, pred, set_size=4, split=disk_split(disk, **split), max_cells=5, real=real)
    truth, written = ds.truth(), ad.read_h5ad(real)
    assert written.uns["distgen"]["kind"] == "real" and written.n_obs == len(truth)
    kinds = written.obs["distgen_kind"].astype(str).to_numpy()
    assert set(kinds[: int((~truth.is_control).sum())]) == {"real"} and set(kinds[int((~truth.is_control).sum()):]) == {"control"}
    got = _by_group(written.X, written.obs)
    mem: dict = {}
    for key, row in zip(zip(np.where(truth.is_control, "non-targeting", truth.conditions), truth.contexts, truth.batches), truth.X.numpy()):
        mem.setdefault(tuple(map(str, key)), []).append(row)
    assert got.keys() == mem.keys()
    for key, rows in mem.items():
        assert sorted(map(bytes, np.stack(rows))) == sorted(map(bytes, got[key])), key
    assert main(["evaluate", "--pred", str(pred), "--real", str(real), "--out", str(tmp_path / "ev"), "--no-plots", "--quiet",
                 "--metrics", "mse"]) == 0, capsys.readouterr().err


def _one_control_file(tmp_path, n_ctrl_ct2=1):
    """ct1 with 5 controls, ct2 with ``n_ctrl_ct2`` control cell(s); A measured 4 times in each."""
    rows = [("control", "ct1")] * 5 + [("control", "ct2")] * n_ctrl_ct2 + [("A", "ct1")] * 4 + [("A", "ct2")] * 4
    obs = pd.DataFrame(rows, columns=["condition", "cell_type"], index=[f"c{i}" for i in range(len(rows))])
    x = np.log1p(np.random.default_rng(0).poisson(3.0, (len(rows), 5))).astype(np.float32)
    path = tmp_path / f"ctrl{n_ctrl_ct2}.h5ad"
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(5)])).write_h5ad(path)
    return path


def test_streaming_prediction_refuses_a_context_with_a_single_control_cell_as_in_memory(tmp_path):
    # in memory a (condition, context) group below PerturbationSchema.min_cells (2) is refused at load, the control group
    # of a context included; predict_to_disk predicted ct2's groups from its one control cell without a word
    from distgen.errors import InputDataError

    fields = {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"]}
    schema = PerturbationSchema(**fields)
    path = _one_control_file(tmp_path)
    with pytest.raises(InputDataError, match=r"fewer than min_cells=2 cells.*control @ ct2: 1") as mem:
        Dataset.load({"dataset": str(path), "schema": fields, "set_size": 2, "split": {"kind": "random_conditions",
                      "test_conditions": ["A"], "val_frac": 0.0}})
    with pytest.raises(InputDataError, match=r"fewer than min_cells=2 cells.*control @ ct2: 1") as disk:
        predict_to_disk(ControlBaseline(), path, tmp_path / "pred.h5ad", set_size=2, schema=schema)
    assert str(disk.value) == str(mem.value)  # the one rule, said the same way
    assert not (tmp_path / "pred.h5ad").exists()
    # min_cells=1 lets it through on both paths; two control cells pass the default
    out = predict_to_disk(ControlBaseline(), path, tmp_path / "pred1.h5ad", set_size=2,
                          schema=PerturbationSchema(**fields, min_cells=1))
    assert (ad.read_h5ad(out).obs["distgen_kind"].astype(str) == "predicted").sum() == 8
    out = predict_to_disk(ControlBaseline(), _one_control_file(tmp_path, 2), tmp_path / "pred2.h5ad", set_size=2, schema=schema)
    assert out.exists()
