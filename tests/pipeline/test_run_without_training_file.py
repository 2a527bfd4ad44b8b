"""A trained run folder stays usable when its training file is gone or moved.

Before, ``distgen predict RUN --data FILE`` and ``distgen.load_run`` rebuilt the run's ``Dataset`` from the training file at its
recorded path (content hash checked), so a run copied to another machine, or whose training file moved, could not predict
any file. Training now writes ``data_record.json`` (+ ``data_record.safetensors``), what ``--data`` reads of the training
data; the run's own split still needs the training cells, found again with ``--train-data PATH``.
"""

import json
import shutil

import anndata as ad
import numpy as np
import pytest
import torch

import distgen
from distgen.cli import main
from distgen.config import save_yaml
from distgen.data.bundled import path as bundled_path
from distgen.data.record import ARRAYS_FILE, RECORD_FILE, DataRecord
from distgen.pipeline.predict import TrainingDataMissing

from .conftest import without_write_rights

#: A generator that starts from control cells, with a learned context row (the pre-flight's rows come from the record).
MODEL = {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
         "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
         "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}}
SOME = ["CBL+CNN1", "FOXO4", "KLF1"]


def _config(dataset):
    return {"model": MODEL, "data": {"dataset": str(dataset), "schema": {"perturbation_col": "condition", "context_cols": ["cell_type"]},
                                     "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4},
            "train": {"steps": 2, "sets_per_batch": 2, "progress": False, "seed": 3}}


def _train(root, name="run"):
    """``root/name`` trained on ``root/train.h5ad`` (a copy of the bundled Norman file, given by its path)."""
    data = root / "train.h5ad"
    if not data.exists():
        shutil.copy(bundled_path("norman_k562.h5ad"), data)
    assert main(["train", str(save_yaml(_config(data), root / f"{name}.yaml")), "--out", str(root / name)]) == 0
    return root / name


def _other(root):
    """FILE to predict: some perturbations of the Norman file and every control cell, genes shuffled."""
    a = ad.read_h5ad(bundled_path("norman_k562.h5ad"))
    rows = a.obs["condition"].astype(str).isin(["control", *SOME]).to_numpy()
    b = a[rows, np.random.default_rng(0).permutation(a.n_vars)].copy()
    b.write_h5ad(root / "other.h5ad")
    return root / "other.h5ad"


def _read(path):
    a = ad.read_h5ad(path)
    return (a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)), a.obs


def _move(root):
    (root / "elsewhere").mkdir(exist_ok=True)
    shutil.move(root / "train.h5ad", root / "elsewhere" / "train.h5ad")
    return root / "elsewhere" / "train.h5ad"


def _restore(root):
    shutil.move(root / "elsewhere" / "train.h5ad", root / "train.h5ad")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A run and, made from its training file (read: --train-data names it): FILE's predictions (lognorm with truth, nb counts)
    and the split's."""
    root = tmp_path_factory.mktemp("gone")
    run = _train(root)
    other = _other(root)
    read = ["--train-data", str(root / "train.h5ad")]  # without it --data reads the run's record only, file or no file
    assert main(["predict", str(run), "--data", str(other), *read, "--out", str(root / "with_pred.h5ad"), "--real",
                 str(root / "with_real.h5ad")]) == 0
    assert main(["predict", str(run), "--data", str(other), *read, "--counts", "nb", "--out", str(root / "with_nb.h5ad")]) == 0
    assert main(["predict", str(run), "--out", str(root / "split_pred.h5ad")]) == 0
    return root


def test_the_record_is_written_at_training_and_holds_what_the_training_data_gives(made):
    run = made / "run"
    doc = json.loads((run / RECORD_FILE).read_text())
    assert doc["format"] == "distgen data record" and doc["version"] == 1 and doc["dataset"] == str(made / "train.h5ad")
    assert doc["info"] == json.loads((run / "info.json").read_text())
    assert (run / ARRAYS_FILE).is_file() and doc["nb_dispersion"]["seed"] == 3  # the run's train.seed
    saved = DataRecord.load(run)
    dataset = distgen.load_run(run).data
    fresh = DataRecord.from_dataset(dataset, seed=3)  # the training file, read again
    assert saved.same_as(fresh) == []
    assert saved.training_contexts() == dataset.training_contexts() and saved.training_batches() == dataset.training_batches()
    assert saved.theta is not None and np.array_equal(saved.theta, fresh.theta)  # bit for bit, through safetensors
    assert saved.data_hash == json.loads((run / "manifest.json").read_text())["data"]["data_hash"]


def test_predicting_another_file_without_the_training_file_gives_the_same_arrays(made):
    other, run = made / "other.h5ad", str(made / "run")
    _move(made)
    try:
        assert main(["predict", run, "--data", str(other), "--out", str(made / "without_pred.h5ad"), "--real",
                     str(made / "without_real.h5ad")]) == 0
        assert main(["predict", run, "--data", str(other), "--counts", "nb", "--out", str(made / "without_nb.h5ad")]) == 0
    finally:
        _restore(made)
    for with_, without in (("with_pred", "without_pred"), ("with_real", "without_real"), ("with_nb", "without_nb")):
        (x, obs), (y, obs2) = _read(made / f"{with_}.h5ad"), _read(made / f"{without}.h5ad")
        np.testing.assert_array_equal(x, y)
        assert obs.equals(obs2)
    x, obs = _read(made / "with_pred.h5ad")
    kind, target = obs["distgen_kind"].astype(str).to_numpy(), obs["target"].astype(str).to_numpy()
    means = [x[(kind == "predicted") & (target == c)].mean(0) for c in SOME]
    assert not np.array_equal(means[1], means[2])  # the labels reach the model: the equality above could fail
    nb, _ = _read(made / "with_nb.h5ad")
    assert np.array_equal(nb, np.round(nb)) and nb.sum() > 2 * x.sum()  # counts were written, not log1p values


def test_predicting_another_file_does_not_read_the_training_file_where_it_is(made, tmp_path, monkeypatch):
    """With the training file at its recorded path, --data read it whole and hashed it (Dataset.load) only to make the record
    the run folder already holds: about twice the time and peak memory of a small prediction (docs/scale.md). It is not read
    now, and the arrays are those made from the file. distgen.load_run(RUN) still reads it (run.data)."""
    from distgen.data.prepared import Dataset

    assert (made / "train.h5ad").is_file()
    loads = []
    real_load = Dataset.load.__func__

    def counted(cls, *a, **k):
        loads.append(a)
        return real_load(cls, *a, **k)

    monkeypatch.setattr(Dataset, "load", classmethod(counted))
    out = tmp_path / "p.h5ad"
    assert main(["predict", str(made / "run"), "--data", str(made / "other.h5ad"), "--out", str(out)]) == 0
    assert loads == []
    np.testing.assert_array_equal(_read(out)[0], _read(made / "with_pred.h5ad")[0])
    run = distgen.load_run(made / "run")
    assert len(loads) == 1 and run.data.data.hash == run.record.data_hash


def test_the_runs_own_split_names_train_data_and_reads_the_moved_file(made, capsys):
    run = str(made / "run")
    moved = _move(made)
    try:
        capsys.readouterr()
        assert main(["predict", run, "--out", str(made / "split_missing.h5ad")]) == 2
        err = capsys.readouterr().err
        assert "--train-data PATH" in err and "train.h5ad" in err and "--data FILE" in err
        assert main(["predict", run, "--out", str(made / "split_moved.h5ad"), "--train-data", str(moved)]) == 0
    finally:
        _restore(made)
    (x, obs), (y, obs2) = _read(made / "split_pred.h5ad"), _read(made / "split_moved.h5ad")
    np.testing.assert_array_equal(x, y)
    assert obs.equals(obs2)


def test_train_data_holding_other_cells_is_refused_naming_both_files_and_hashes(made, capsys):
    a = ad.read_h5ad(made / "train.h5ad")
    gene = json.loads((made / "run" / "info.json").read_text())["genes"][0]
    x = a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X).copy()
    x[5, list(a.var_names).index(gene)] += 1.0  # one value of a gene the run reads
    a.X = x
    a.write_h5ad(made / "edited.h5ad")
    capsys.readouterr()
    assert main(["predict", str(made / "run"), "--out", str(made / "x.h5ad"), "--train-data", str(made / "edited.h5ad")]) == 2
    err = capsys.readouterr().err
    want = json.loads((made / "run" / "manifest.json").read_text())["data"]["data_hash"]
    assert "edited.h5ad" in err and str(made / "train.h5ad") in err and want in err
    assert "hash" in err and not (made / "x.h5ad").exists()
    assert main(["predict", str(made / "run"), "--data", str(made / "other.h5ad"), "--out", str(made / "x.h5ad"),
                 "--train-data", str(made / "edited.h5ad")]) == 2  # --data checks a given file alike
    assert main(["predict", str(made / "run"), "--out", str(made / "x.h5ad"), "--train-data", str(made / "nope.h5ad")]) == 2


def test_load_run_without_the_training_file_gives_the_model_and_record_and_names_train_data(made):
    moved = _move(made)
    try:
        run = distgen.load_run(made / "run")
        assert run.record.info.genes == tuple(json.loads((made / "run" / "info.json").read_text())["genes"])
        assert not run.model.training and run.seed == 3
        with pytest.raises(TrainingDataMissing, match="train_data=PATH"):
            run.data  # noqa: B018
        again = distgen.load_run(made / "run", train_data=moved)
        assert again.data.data.hash == run.record.data_hash
        for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    finally:
        _restore(made)


def test_a_run_without_a_record_keeps_needing_its_training_file_and_says_so(made, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(made / "run", old)
    (old / RECORD_FILE).unlink()
    (old / ARRAYS_FILE).unlink()  # a run trained before records were written
    moved = _move(made)
    try:
        capsys.readouterr()
        assert main(["predict", str(old), "--data", str(made / "other.h5ad"), "--out", str(tmp_path / "p.h5ad")]) == 2
        err = capsys.readouterr().err
        assert "--train-data PATH" in err and RECORD_FILE in err and "DataRecord.from_dataset" in err
        with pytest.raises(TrainingDataMissing, match="train_data=PATH"):
            distgen.load_run(old)
        assert main(["predict", str(old), "--data", str(made / "other.h5ad"), "--out", str(tmp_path / "p.h5ad"),
                     "--train-data", str(moved)]) == 0
    finally:
        _restore(made)
    np.testing.assert_array_equal(_read(tmp_path / "p.h5ad")[0], _read(made / "with_pred.h5ad")[0])
    run = distgen.load_run(old)  # the record the message names, written for the old run: the one training wrote, byte for byte
    DataRecord.from_dataset(run.data, seed=run.seed).save(run.run_dir)
    for name in (RECORD_FILE, ARRAYS_FILE):
        assert (old / name).read_bytes() == (made / "run" / name).read_bytes()


def test_nb_dispersions_of_a_subsampled_fit_are_the_runs_for_every_prediction_seed(tmp_path, monkeypatch):
    """Beyond MAX_FIT_CELLS training cells the dispersions depend on the seed that draws the subsample. That seed is the
    run's train.seed (3), whatever --seed a prediction samples with: the record holds them, so --counts nb --seed 5 needs
    no training file (before, it was refused naming --train-data), and gives the arrays it gives with the file."""
    import distgen.data.count_fit as count_fit

    monkeypatch.setattr(count_fit, "MAX_FIT_CELLS", 60)
    seeds = []
    fit = count_fit.fit_run_dispersion

    def spy(dataset, cells, sizes, seed=0):
        seeds.append(seed)
        return fit(dataset, cells, sizes, seed)

    run = str(_train(tmp_path))
    other = _other(tmp_path)
    assert json.loads((tmp_path / "run" / RECORD_FILE).read_text())["nb_dispersion"]["seed_dependent"] is True
    record, dataset = DataRecord.load(run), distgen.load_run(run).data
    sizes = count_fit.dataset_sizes(dataset)[0]
    assert np.array_equal(record.theta, fit(dataset, list(dataset.info.genes), sizes, 3))
    assert not np.array_equal(record.theta, fit(dataset, list(dataset.info.genes), sizes, 5))  # the subsample matters
    import distgen.data.record as record_module
    import distgen.pipeline.countspace as countspace

    monkeypatch.setattr(record_module, "fit_run_dispersion", spy)
    monkeypatch.setattr(countspace, "fit_run_dispersion", spy)
    for name, seed in (("s3", "3"), ("s5", "5")):  # fitted on the training file (--train-data: read, not the record)
        assert main(["predict", run, "--data", str(other), "--train-data", str(tmp_path / "train.h5ad"), "--counts", "nb", "--seed",
                     seed, "--out", str(tmp_path / f"{name}.h5ad")]) == 0
    assert main(["predict", run, "--counts", "nb", "--seed", "5", "--out", str(tmp_path / "split5.h5ad")]) == 0
    assert seeds == [3, 3, 3]  # --data with the file (twice) and the run's own split: the run's seed
    assert not np.array_equal(_read(tmp_path / "s3.h5ad")[0], _read(tmp_path / "s5.h5ad")[0])  # the seed still draws the counts
    _move(tmp_path)
    for name, seed in (("g3", "3"), ("g5", "5")):
        assert main(["predict", run, "--data", str(other), "--counts", "nb", "--seed", seed, "--out", str(tmp_path / f"{name}.h5ad")]) == 0
    np.testing.assert_array_equal(_read(tmp_path / "g3.h5ad")[0], _read(tmp_path / "s3.h5ad")[0])
    np.testing.assert_array_equal(_read(tmp_path / "g5.h5ad")[0], _read(tmp_path / "s5.h5ad")[0])


def test_the_recorded_depth_check_is_the_one_on_the_training_cells(made):
    """``DataRecord.depth_mismatches`` (medians kept at training) flags what ``depth_mismatches`` on the training cells flags."""
    from distgen.data.foreign import depth_mismatches

    dataset = distgen.load_run(made / "run").data
    record = DataRecord.load(made / "run")
    data = dataset.data
    ctrl = np.flatnonzero(data.is_control)[:200]
    for factor in (1.0, 3.0, 10.0, 0.05):
        x = torch.log1p(torch.expm1(data.table.X[torch.from_numpy(ctrl)]) * factor)
        ctx = data.contexts[ctrl]
        want = depth_mismatches(x, ctx, np.ones(len(ctrl), dtype=bool), data.table.X, data.contexts, data.is_control)
        assert record.depth_mismatches(x, ctx) == want
        assert bool(want) == (factor in (10.0, 0.05))


def test_a_model_sampling_noise_per_set_predicts_the_same_cells_without_the_training_file(tmp_path):
    """From noise, the cells depend on how a group is cut into sets (the record's ``data.set_size``) and on the seed: still
    the same arrays without the training file; and another set size would give other ones (so the check can fail)."""
    shutil.copy(bundled_path("norman_k562.h5ad"), tmp_path / "train.h5ad")
    cfg = _config(tmp_path / "train.h5ad")
    cfg["model"] = {**MODEL, "dynamics": {**MODEL["dynamics"], "source": "noise"}}
    assert main(["train", str(save_yaml(cfg, tmp_path / "noise.yaml")), "--out", str(tmp_path / "noise")]) == 0
    run, other = str(tmp_path / "noise"), _other(tmp_path)
    assert main(["predict", run, "--data", str(other), "--out", str(tmp_path / "with.h5ad")]) == 0
    _move(tmp_path)
    assert main(["predict", run, "--data", str(other), "--out", str(tmp_path / "without.h5ad")]) == 0
    np.testing.assert_array_equal(_read(tmp_path / "with.h5ad")[0], _read(tmp_path / "without.h5ad")[0])
    doc = json.loads((tmp_path / "noise" / RECORD_FILE).read_text())
    doc["set_size"] = 3
    (tmp_path / "noise" / RECORD_FILE).write_text(json.dumps(doc))
    assert main(["predict", run, "--data", str(other), "--out", str(tmp_path / "sets_of_3.h5ad")]) == 0
    assert not np.array_equal(_read(tmp_path / "with.h5ad")[0], _read(tmp_path / "sets_of_3.h5ad")[0])


def _old_run(made, tmp_path):
    """A copy of the run as trained before runs kept a data record."""
    old = tmp_path / "old"
    shutil.copytree(made / "run", old)
    for name in (RECORD_FILE, ARRAYS_FILE):
        (old / name).unlink()
    return old


def test_a_run_without_a_record_reads_its_training_file_once_and_keeps_the_record(made, tmp_path, monkeypatch, capsys):
    """--data read and hashed the whole training file of such a run on every prediction. The first now keeps the record it
    makes (the training's, byte for byte: the file's hash is the run's), so the next read no training file: the same arrays
    each time, NB counts included."""
    from distgen.data.prepared import Dataset

    old = _old_run(made, tmp_path)
    loads = []
    real_load = Dataset.load.__func__
    monkeypatch.setattr(Dataset, "load", classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k)))
    other = made / "other.h5ad"
    capsys.readouterr()
    assert main(["predict", str(old), "--data", str(other), "--out", str(tmp_path / "first.h5ad")]) == 0
    assert len(loads) == 1 and "kept in the run folder" in capsys.readouterr().err
    for name in (RECORD_FILE, ARRAYS_FILE):
        assert (old / name).read_bytes() == (made / "run" / name).read_bytes()
    assert main(["predict", str(old), "--data", str(other), "--out", str(tmp_path / "second.h5ad")]) == 0
    assert main(["predict", str(old), "--data", str(other), "--counts", "nb", "--out", str(tmp_path / "nb.h5ad")]) == 0
    assert len(loads) == 1  # the record, not the file
    for got, want in (("first", "with_pred"), ("second", "with_pred"), ("nb", "with_nb")):
        np.testing.assert_array_equal(_read(tmp_path / f"{got}.h5ad")[0], _read(made / f"{want}.h5ad")[0])


@pytest.mark.parametrize("why", ["locked", "no hash", "read-only"])
def test_the_record_is_kept_only_when_it_is_safe(made, tmp_path, capsys, why):
    """Not kept while another process holds the run folder (its one writer), when the run's manifest records no data hash
    (nothing proves the file is the training data) or when the folder cannot be written; the prediction is the same."""
    import os
    import subprocess
    import sys

    old = _old_run(made, tmp_path)
    holder = None
    if why == "locked":
        code = ("import sys, time; from distgen.train.lock import RunLock; lock = RunLock(sys.argv[1], 'train').acquire(); "
                "print('held', flush=True); time.sleep(120)")
        holder = subprocess.Popen([sys.executable, "-c", code, str(old)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
    elif why == "no hash":
        doc = json.loads((old / "manifest.json").read_text())
        del doc["data"]["data_hash"]
        (old / "manifest.json").write_text(json.dumps(doc))
    else:
        old.chmod(0o555)
    try:
        capsys.readouterr()
        args = ["predict", str(old), "--data", str(made / "other.h5ad"), "--out", str(tmp_path / "p.h5ad")]
        if why == "read-only":  # in a process without root's right to write anywhere (CI runs as root; was skipped there)
            done = subprocess.run([*without_write_rights(), sys.executable, "-m", "distgen", *args], capture_output=True,
                                  text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert done.returncode == 0, done.stderr
            err = done.stderr
        else:
            assert main(args) == 0
            err = capsys.readouterr().err
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        old.chmod(0o755)
    assert not (old / RECORD_FILE).exists() and not (old / ARRAYS_FILE).exists()
    assert ("was not kept" in err) == (why != "no hash")
    np.testing.assert_array_equal(_read(tmp_path / "p.h5ad")[0], _read(made / "with_pred.h5ad")[0])
