"""``distgen predict --counts`` and ``evaluate: {counts: ...}``: raw-count predictions and truths from a run on raw-count data."""

import json
import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

import distgen
from distgen.cli import main
from distgen.data import counts as C
from distgen.models import models
from distgen.pipeline.countspace import prediction_counts, truth_counts
from distgen.pipeline.predict import predict

GENES = [f"G{i}" for i in range(40)]
PERTS = ["P1", "P2", "P3", "P4"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Raw counts: 120 control cells and 40 cells of each of 4 perturbations, depths 1,000-6,000."""
    rng = np.random.default_rng(0)
    base = rng.gamma(1.0, 1.0, len(GENES)) + 0.05
    labels = ["control"] * 120 + [p for p in PERTS for _ in range(40)]
    rows = []
    for lab in labels:
        rate = base.copy()
        if lab != "control":
            rate[int(lab[1:]) * 3 : int(lab[1:]) * 3 + 3] *= 4.0  # each perturbation lifts 3 genes
        depth = rng.uniform(1000, 6000)
        rows.append(rng.poisson(rng.gamma(5.0, depth * rate / rate.sum() / 5.0)))
    x = np.asarray(rows, dtype=np.float32)
    a = ad.AnnData(X=x, obs=pd.DataFrame({"condition": labels}, index=[f"cell{i}" for i in range(len(labels))]),
                   var=pd.DataFrame(index=GENES))
    path = tmp_path_factory.mktemp("rawcounts") / "raw.h5ad"
    a.write_h5ad(path)
    return path, a


def _load(path):
    return distgen.load_data(str(path), split={"kind": "random_conditions", "seed": 0, "test_conditions": ["P2", "P4"],
                                               "holdout_controls": 0.6}, set_size=8)  # 30% of controls to test


def test_real_cells_come_back_as_their_original_counts(raw):
    path, a = raw
    data = _load(path)
    truth = data.truth("test")
    back = truth_counts(data, truth)
    original = pd.DataFrame(a.X, index=a.obs_names).loc[list(truth.names)].to_numpy()
    assert np.array_equal(back.X.numpy(), original)


@pytest.mark.parametrize("model", ["round", "poisson", "nb"])
def test_generated_cells_become_integers_near_the_model_output(raw, model):
    path, a = raw
    data = _load(path)
    fitted = models.get("mean_perturbation")().fit(data.train_table)
    pred = predict(fitted, data, "test", seed=0)
    out, notes = prediction_counts(data, pred, "test", model, seed=0)
    x = out.X.numpy()
    assert (x >= 0).all() and np.array_equal(x, np.floor(x)) and "distgen_library_size" in notes[0]
    ctrl = out.is_control
    truth = data.truth("test")  # the same control pool, with its cell names
    original = pd.DataFrame(a.X, index=a.obs_names).loc[list(truth.names[truth.is_control])].to_numpy()
    assert np.array_equal(x[ctrl], original)  # the appended controls are the real ones
    # the round trip (normalize_total over all genes) keeps each group's pseudobulk near the model's: in log space
    # for round; for the random models in expression space (their noise shifts log means, by Jensen)
    again = C.to_lognorm(x[~ctrl], 1e4)
    for cond in PERTS[1::2]:
        rows = out.conditions[~ctrl] == cond
        model_x = pred.X.numpy()[~ctrl][rows]
        if model == "round":
            assert np.abs(again[rows].mean(0) - model_x.mean(0)).max() < 0.1
        else:
            want, got = np.expm1(model_x).mean(0), np.expm1(again[rows]).mean(0)
            keep = want > 200  # genes with enough counts for 20 cells to estimate a mean
            assert keep.sum() >= 10 and np.abs(got[keep] / want[keep] - 1).max() < 0.3, (cond, np.abs(got[keep] / want[keep] - 1).max())


def test_nb_dispersions_and_counts_do_not_depend_on_the_row_order(raw, tmp_path, monkeypatch):
    """The NB dispersions are fitted on a seeded subsample of the training cells beyond MAX_FIT_CELLS: it was drawn from
    the rows in file order (and the fit summed in row order), so the same file with its rows shuffled fitted other
    dispersions and drew other counts. Now the training cells are taken in the order of their values."""
    import distgen.data.count_fit as countspace  # where the dispersions are fitted (distgen.pipeline.countspace re-exports it)
    from distgen.seeds import content_keys

    path, a = raw
    rng = np.random.default_rng(11)
    paths = {"orig": path, "shuffled": tmp_path / "shuffled.h5ad", "by_value": tmp_path / "by_value.h5ad"}
    a[rng.permutation(a.n_obs)].copy().write_h5ad(paths["shuffled"])
    held = _load(path).data  # the values the dataset holds (log1p of counts per 10,000): the file in their order
    a[list(held.cell_names[np.argsort(content_keys(held.table.X, held.info.genes), kind="stable")])].copy().write_h5ad(paths["by_value"])
    monkeypatch.setattr(countspace, "MAX_FIT_CELLS", 60)  # a subsample of the training cells
    data = {name: _load(p) for name, p in paths.items()}
    assert len(data["orig"].split.train) > 80

    def theta(name, seed):
        d = data[name]
        return countspace.fit_run_dispersion(d, d.truth("test"), countspace.dataset_sizes(d)[0], seed)

    want = theta("orig", 0)
    assert np.array_equal(theta("shuffled", 0), want) and np.array_equal(theta("by_value", 0), want)
    assert not np.array_equal(theta("orig", 1), want)  # the seed still draws another subsample
    monkeypatch.setattr(countspace, "draw_order", lambda keys: np.arange(len(keys)))  # the former row-order rule
    assert np.array_equal(theta("by_value", 0), want)  # rows in value order: the subsample of their rows, bit for bit
    assert not np.array_equal(theta("shuffled", 0), want)
    monkeypatch.undo()
    monkeypatch.setattr(countspace, "MAX_FIT_CELLS", 60)

    counts = {}
    for name in ("orig", "shuffled"):
        d = data[name]
        out, _ = prediction_counts(d, predict(models.get("control")(), d, "test", seed=0), "test", "nb", seed=3)
        gen = ~out.is_control
        counts[name] = {c: np.sort(out.X.numpy()[gen][out.conditions[gen] == c].view(np.int32), axis=0) for c in ("P2", "P4")}
    for c, x in counts["orig"].items():
        assert np.array_equal(counts["shuffled"][c], x), c


def test_prediction_counts_refuses_a_prediction_of_another_part(raw):
    data = _load(raw[0])
    pred = predict(models.get("control")(), data, "test", seed=0)
    with pytest.raises(ValueError, match="rows"):
        prediction_counts(data, pred.subset(np.arange(5)), "test", "poisson")
    with pytest.raises(ValueError, match="one of round, poisson, nb"):
        prediction_counts(data, pred, "test", "gauss")


CONFIG = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 4}, "backbone": {"name": "mlp", "hidden": 8, "depth": 1},
              "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
    "train": {"steps": 2, "sets_per_batch": 2, "checkpoint_every": 2, "log_every": 2, "progress": False},
    "preflight": {"allow_unembedded": True},  # a test of the file format, not of the model
}


@pytest.fixture(scope="module")
def run(raw, tmp_path_factory):
    root = tmp_path_factory.mktemp("countrun")
    cfg = {**CONFIG, "data": {"dataset": str(raw[0]), "split": {"kind": "random_conditions", "seed": 0, "test_conditions": ["P2", "P4"]},
                              "set_size": 8}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root / "cfg.yaml"), "--out", str(root / "run")]) == 0
    assert main(["predict", str(root / "run"), "--out", str(root / "pred.h5ad"), "--real", str(root / "real.h5ad"), "--counts", "nb"]) == 0
    return root


def test_predict_counts_writes_integer_files_that_say_their_scale(run, raw):
    pred, real = ad.read_h5ad(run / "pred.h5ad"), ad.read_h5ad(run / "real.h5ad")
    for f in (pred, real):
        x = np.asarray(f.X)
        assert (x >= 0).all() and np.array_equal(x, np.floor(x))
        assert f.uns["distgen"]["scale"] == "counts" and "target" in f.obs.columns
    assert set(pred.obs["target"]) == set(real.obs["target"]) == {"P2", "P4", "non-targeting"}
    original = raw[1][list(real.obs_names)].X
    assert np.array_equal(np.asarray(real.X), np.asarray(original))


def test_evaluate_counts_config_key_writes_the_count_pair(raw, tmp_path):
    cfg = {"model": {"name": "mean_perturbation"}, "evaluate": {"counts": "poisson", "metrics": ["mse"], "plots": False, "ceiling": False},
           "data": {"dataset": str(raw[0]), "split": {"kind": "random_conditions", "seed": 0, "test_conditions": ["P2", "P4"]}}}
    from distgen.pipeline.experiment import run as run_experiment

    run_experiment(cfg, tmp_path, progress=False)
    pred = ad.read_h5ad(tmp_path / "pred_counts.h5ad")
    assert pred.uns["distgen"]["scale"] == "counts" and np.array_equal(np.asarray(pred.X), np.floor(np.asarray(pred.X)))
    assert ad.read_h5ad(tmp_path / "real_counts.h5ad").uns["distgen"]["scale"] == "counts"
    assert ad.read_h5ad(tmp_path / "pred.h5ad").uns["distgen"]["scale"] == "lognorm"
    with pytest.raises(ValueError, match=r"evaluate\.counts"):
        run_experiment({**cfg, "evaluate": {"counts": "gauss"}}, tmp_path / "bad", progress=False)


@pytest.mark.slow
@pytest.mark.celleval
def test_cell_eval2_vcc2026_accepts_the_count_files(run, tmp_path):
    pytest.importorskip("cell_eval2")
    exe = os.path.join(os.path.dirname(sys.executable), "cell-eval2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([exe, "run", "-ap", str(run / "pred.h5ad"), "-ar", str(run / "real.h5ad"), "--preset", "vcc2026",
                           "--no-target-genes", "-o", str(tmp_path), "--set", "num_threads=1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    agg = (tmp_path / "agg_results.csv").read_text()
    assert "pds_cosine" in agg and "de_wilcoxon_sig_jaccard" in agg
    summary = json.dumps(agg)
    assert "fractional" not in summary


def test_distgen_scores_the_count_files_with_the_vcc2026_profile(run, tmp_path):
    from distgen.pipeline.evaluate import evaluate_profile_files

    # the synthetic labels (P2, P4) name no gene of the panel: declared, as cell-eval2's --no-target-genes
    summary = evaluate_profile_files(run / "pred.h5ad", run / "real.h5ad", tmp_path, "vcc2026", no_target_genes=True)
    assert summary["scale"] == "counts" and summary["n_perturbations"] == 2 and "vcc2026" in summary
    from distgen.pipeline.predict import predict_run

    predict_run(run / "run", tmp_path / "pred_log.h5ad", real=tmp_path / "real_log.h5ad")
    with pytest.raises(ValueError, match="distgen predict --counts"):  # the log-normalised pair is refused by a counts profile
        evaluate_profile_files(tmp_path / "pred_log.h5ad", tmp_path / "real_log.h5ad", tmp_path / "log", "vcc2026")


def test_a_cell_with_no_counts_comes_back_as_zeros_and_the_others_keep_their_counts(raw, tmp_path):
    # a zero-count cell was recorded with size 0, which made the whole size column "unusable": every cell was then
    # converted at target_sum (a note said no sizes were recorded)
    _, a = raw
    b = a.copy()
    b.X[0] = 0.0  # a control cell with no counts
    b.X[130] = 0.0  # a P1 cell with no counts
    path = tmp_path / "with_empty.h5ad"
    b.write_h5ad(path)
    data = _load(path)
    truth = data.truth("test")
    back = truth_counts(data, truth)
    original = pd.DataFrame(b.X, index=b.obs_names).loc[list(truth.names)].to_numpy()
    assert np.array_equal(back.X.numpy(), original)
    sizes, where = C.library_sizes(data.data.adata.obs, len(b), float(data.data.schema.target_sum))
    assert C.LIBRARY_COL in where and sizes.min() == 0.0


@pytest.mark.parametrize("total", [1e6, 1e4])
def test_log1p_input_of_another_total_comes_back_as_its_original_counts(raw, tmp_path, total):
    # log1p(CPM) input (every cell's expm1 sums to 1e6) was inverted with target_sum=1e4: every count came back 100x too large
    _, a = raw
    b = a.copy()
    b.obs["n_counts"] = b.X.sum(1)  # the library sizes, as a user's file records them
    b.X = np.log1p(b.X / b.X.sum(1, keepdims=True) * total).astype(np.float32)
    path = tmp_path / "lognorm.h5ad"
    b.write_h5ad(path)
    data = _load(path)
    truth = data.truth("test")
    back = truth_counts(data, truth)
    original = pd.DataFrame(a.X, index=a.obs_names).loc[list(truth.names)].to_numpy()
    np.testing.assert_array_equal(back.X.numpy(), original)
    pred = predict(models.get("mean_perturbation")().fit(data.train_table), data, "test", seed=0)
    out, notes = prediction_counts(data, pred, "test", "round")
    ctrl = out.is_control  # the appended real controls: their own counts again
    np.testing.assert_array_equal(out.X.numpy()[ctrl], original[truth.is_control])
    assert any("normalised to 1e+06" in n for n in notes) == (total == 1e6)
