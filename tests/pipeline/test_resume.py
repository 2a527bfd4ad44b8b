"""Issue 17 item 2: ``distgen run`` and ``distgen sweep`` resume.

A run is interrupted after its first checkpoint (a crash injected right after the checkpoint at
step 2 is written); rerunning the same command continues from that checkpoint and ends where an
uninterrupted run ends, a finished run is not run again, and a sweep's results table holds every
row exactly once, also when ``--retries`` rescues the crashed run."""

import csv
import json

import anndata as ad
import numpy as np
import pytest

from distgen.config import ConfigError, save_yaml
from distgen.pipeline import experiment
from distgen.pipeline.experiment import DONE_FILE, run
from distgen.pipeline.sweep import sweep
from distgen.train.trainer import Trainer

DATA = {"dataset": "norman_k562", "hvg": 64, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 8}
TINY = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
              "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
              "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
    "data": DATA,
    "train": {"steps": 6, "sets_per_batch": 2, "checkpoint_every": 2, "log_every": 1, "progress": False, "keep_checkpoints": 5},
    "evaluate": {"plots": False, "baselines": ["control"]},
}
METRICS = ["mse", "pearson_delta"]


class Crash(RuntimeError):
    """The injected failure (a killed process, a lost node...)."""


@pytest.fixture
def crash_after_first_checkpoint(monkeypatch):
    """Every training crashes right after writing its checkpoint at step 2, until ``disarm()``."""
    real_save = Trainer.save
    state = {"armed": True, "crashes": 0}

    def save(self):
        path = real_save(self)
        if state["armed"] and self.step == 2:
            state["crashes"] += 1
            raise Crash("simulated crash after the first checkpoint")
        return path

    monkeypatch.setattr(Trainer, "save", save)
    state["disarm"] = lambda: state.update(armed=False)
    return state


def _steps(run_dir):
    with (run_dir / "train" / "metrics.csv").open() as fh:
        return [int(float(r["step"])) for r in csv.DictReader(fh)]


def _pred(run_dir):
    return np.asarray(ad.read_h5ad(run_dir / "pred.h5ad").X)


def test_rerunning_an_interrupted_run_resumes_it_and_a_finished_one_is_not_run_again(tmp_path, crash_after_first_checkpoint, monkeypatch):
    cfg = save_yaml(TINY, tmp_path / "tiny.yaml")
    out = tmp_path / "exp"
    with pytest.raises(Crash):
        run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    assert not (out / DONE_FILE).exists() and (out / "train" / "checkpoints" / "step_00000002").is_dir()
    assert not (out / ".distgen.lock").exists()  # the lock went with the failed attempt

    crash_after_first_checkpoint["disarm"]()
    resumed = run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    assert (out / DONE_FILE).exists()
    assert _steps(out) == [1, 2, 3, 4, 5, 6]  # steps 3..6 trained once, 1..2 not repeated
    assert len(json.loads((out / "train" / "manifest.json").read_text())["resumes"]) == 1

    straight = run(str(cfg), tmp_path / "straight", progress=False, metrics=METRICS, plots=False)
    np.testing.assert_array_equal(_pred(out), _pred(tmp_path / "straight"))  # resumed = never interrupted
    assert resumed["metrics"]["mse"]["model"] == straight["metrics"]["mse"]["model"]

    # finished: the same command returns the recorded summary and trains nothing
    monkeypatch.setattr(experiment, "train_model", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    assert again["metrics"]["mse"] == resumed["metrics"]["mse"]


def test_a_run_stopped_after_training_resumes_from_its_final_checkpoint_without_training(tmp_path):
    cfg = save_yaml(TINY, tmp_path / "tiny.yaml")
    out = tmp_path / "exp"
    run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    before = _pred(out)
    (out / DONE_FILE).unlink()  # as if the process died while evaluating
    (out / "eval" / "summary.json").unlink()
    summary = run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    assert (out / DONE_FILE).exists() and (out / "eval" / "summary.json").exists()
    assert _steps(out) == [1, 2, 3, 4, 5, 6]  # no step trained twice
    np.testing.assert_array_equal(_pred(out), before)
    assert set(summary["metrics"]) == set(METRICS)


def test_a_resumed_run_trains_and_predicts_on_the_split_its_training_began_with(tmp_path, crash_after_first_checkpoint):
    """Old run folders round: a run folder made by an earlier distgen whose splitter drew another split from the same
    settings (f8c2e3d changed the val_frac pick, 2026-12-05) was resumed by distgen run on the split made now: the
    resumed steps trained on other cells than the first ones (test cells among them) and the prediction was of another
    test set, without a word (caught only where data.hvg made the data hash differ). The run's train/split.json is read,
    as distgen train --resume reads it. Here the stored split is one of another seed (test conditions differ)."""
    from distgen.data import Dataset

    doc = {**TINY, "data": {**DATA, "hvg": None, "split": {**DATA["split"], "test_frac": 0.5}}}
    cfg = save_yaml(doc, tmp_path / "tiny.yaml")
    out = tmp_path / "exp"
    with pytest.raises(Crash):
        run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    crash_after_first_checkpoint["disarm"]()
    other = Dataset.load({**doc["data"], "split": {**doc["data"]["split"], "seed": 1}}).split
    now = Dataset.load(doc["data"]).split
    assert {c for c, _ in other.test_groups} != {c for c, _ in now.test_groups}
    other.save(out / "train" / "split.json")  # as an earlier distgen's splitter drew it
    run(str(cfg), out, progress=False, metrics=METRICS, plots=False)
    predicted = set(ad.read_h5ad(out / "pred.h5ad").obs["target"]) - {"non-targeting"}
    assert predicted == {c for c, _ in other.test_groups}


def test_a_run_folder_of_another_config_is_refused_before_any_work(tmp_path):
    cfg = save_yaml({"model": {"name": "control"}, "data": DATA, "evaluate": {"plots": False}}, tmp_path / "c.yaml")
    run(str(cfg), tmp_path / "exp", progress=False, metrics=METRICS, plots=False)
    with pytest.raises(ConfigError, match=r"holds an experiment of another config \(data.set_size: 8 -> 4\)"):
        run(str(cfg), tmp_path / "exp", ["data.set_size=4"], progress=False, metrics=METRICS, plots=False)
    # progress bars are no part of an experiment: the same config without them is the same experiment
    assert run(str(cfg), tmp_path / "exp", progress=True, metrics=METRICS, plots=False)["metrics"]


def _in_process(config, r, run_dir):
    """A sweep runner like the default one (a crash is a non-zero exit), without a subprocess."""
    try:
        run(config, run_dir, r.overrides, progress=False, metrics=METRICS, plots=False)
    except Crash:
        return 1
    return 0


def _result_keys(sweep_dir):
    with (sweep_dir / "results.csv").open() as fh:
        return [(r["variant"], r["seed"], r["perturbation"]) for r in csv.DictReader(fh)]


def test_sweep_retry_resumes_the_crashed_run_and_every_row_appears_once(tmp_path, crash_after_first_checkpoint):
    cfg = save_yaml(TINY, tmp_path / "tiny.yaml")
    grid = {"train.seed": [0, 1]}
    # retries=0: the crashed runs fail; their first checkpoint stays
    with pytest.raises(RuntimeError, match="no run finished"):
        sweep(str(cfg), grid, tmp_path / "sw", retries=0, runner=_in_process, metrics=METRICS, progress=False)
    assert crash_after_first_checkpoint["crashes"] == 2
    # the same sweep again: both runs continue from step 2 (a retry would do the same)
    crash_after_first_checkpoint["disarm"]()
    res = sweep(str(cfg), grid, tmp_path / "sw", retries=0, runner=_in_process, metrics=METRICS, progress=False)
    assert sorted(res.finished) == ["base__seed0", "base__seed1"] and not res.failed
    for slug in res.finished:
        assert _steps(tmp_path / "sw" / "runs" / slug) == [1, 2, 3, 4, 5, 6]
    keys = _result_keys(tmp_path / "sw")
    assert len(keys) == len(set(keys)) and {k[1] for k in keys} == {"0", "1"}
    n_per_run = len(keys) // 2
    # a third time: everything skipped, the table rebuilt with the same rows, once each
    res = sweep(str(cfg), grid, tmp_path / "sw", runner=_in_process, metrics=METRICS, progress=False)
    assert sorted(res.skipped) == ["base__seed0", "base__seed1"] and not res.finished
    assert sorted(_result_keys(tmp_path / "sw")) == sorted(keys) and n_per_run > 0


def test_sweep_retries_rescue_a_run_that_crashed_after_its_first_checkpoint(tmp_path, crash_after_first_checkpoint):
    cfg = save_yaml(TINY, tmp_path / "tiny.yaml")
    calls = []

    def runner(config, r, run_dir):
        calls.append(r.slug)
        if len(calls) == 2:
            crash_after_first_checkpoint["disarm"]()  # the retry runs on a healthy node
        return _in_process(config, r, run_dir)

    res = sweep(str(cfg), {"train.seed": [0]}, tmp_path / "sw", retries=1, runner=runner, metrics=METRICS, progress=False)
    assert calls == ["base__seed0", "base__seed0"] and res.finished == ["base__seed0"] and not res.failed
    run_dir = tmp_path / "sw" / "runs" / "base__seed0"
    assert _steps(run_dir) == [1, 2, 3, 4, 5, 6]
    assert len(json.loads((run_dir / "train" / "manifest.json").read_text())["resumes"]) == 1
    keys = _result_keys(tmp_path / "sw")
    assert keys and len(keys) == len(set(keys))


def test_a_sweep_folder_of_another_config_is_refused_before_any_run(tmp_path):
    cfg = save_yaml({"model": {"name": "control"}, "data": DATA, "evaluate": {"plots": False}}, tmp_path / "c.yaml")
    sweep(str(cfg), {"train.seed": [0]}, tmp_path / "sw", runner=_in_process, metrics=METRICS, progress=False)
    save_yaml({"model": {"name": "control"}, "data": {**DATA, "set_size": 4}, "evaluate": {"plots": False}}, tmp_path / "c.yaml")
    calls = []
    with pytest.raises(ConfigError, match="base__seed0 holds an experiment of another config"):
        sweep(str(cfg), {"train.seed": [0, 1]}, tmp_path / "sw", runner=lambda *a: calls.append(a) or 0, progress=False)
    assert calls == []


def test_a_run_refused_before_any_result_leaves_a_folder_the_fixed_config_may_use(tmp_path):
    # raw counts kept (normalize: false) cannot be scored by distgen run's log-space evaluation: refused before training,
    # and the fixed config may then use the same --out (the failed start left nothing)
    rng = np.random.default_rng(0)
    labels = np.repeat(["control", "A", "B", "C"], 30)
    x = rng.poisson(rng.gamma(2.0, 2.0, (len(labels), 20))).astype(np.float32)
    import pandas as pd

    path = tmp_path / "counts.h5ad"
    ad.AnnData(X=x, obs=pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(len(labels))]),
               var=pd.DataFrame(index=[f"g{i}" for i in range(20)])).write_h5ad(path)
    data = {"dataset": str(path), "schema": {"perturbation_col": "condition", "control_labels": ["control"], "normalize": False},
            "split": {"kind": "random_conditions", "test_conditions": ["B"]}, "set_size": 8}
    cfg = save_yaml({"model": {"name": "control"}, "data": data, "evaluate": {"plots": False}}, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="normalize: false keeps the raw counts"):
        run(str(cfg), tmp_path / "exp", progress=False, metrics=METRICS, plots=False)
    assert not (tmp_path / "exp").exists()  # no experiment.yaml, no folder: nothing that looks like a run
    summary = run(str(cfg), tmp_path / "exp", ["data.schema.normalize=true"], progress=False, metrics=METRICS, plots=False)
    assert set(summary["metrics"]) == set(METRICS)
    with pytest.raises(ConfigError, match="holds an experiment of another config"):  # now it holds results: refused
        run(str(cfg), tmp_path / "exp", progress=False, metrics=METRICS, plots=False)


REFUSED = {**TINY, "data": {**DATA, "split": {"kind": "unseen_single", "seed": 0, "test_frac": 0.3}}}  # onehot: unseen atoms


def test_a_run_refused_by_the_preflight_writes_nothing(tmp_path, capsys):
    from distgen.cli import main

    cfg = save_yaml(REFUSED, tmp_path / "r.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "new"), "--no-progress"]) == 2
    assert "not embeddable by onehot" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # the folder the run made for its lock is gone again
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    assert main(["run", str(cfg), "--out", str(tmp_path / "mine"), "--no-progress"]) == 2
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]  # a folder of the user's: as it was
    (tmp_path / "empty").mkdir()
    assert main(["run", str(cfg), "--out", str(tmp_path / "empty"), "--no-progress"]) == 2
    assert (tmp_path / "empty").is_dir() and not list((tmp_path / "empty").iterdir())  # it existed before: kept, empty


def test_evaluating_again_after_the_checkpoints_were_removed_is_refused(tmp_path):
    """Other --metrics on a finished experiment whose checkpoints were deleted (a disk-quota cleanup) trained a new model
    from scratch in its place, rewriting train/metrics.csv and the predictions; now it is refused, naming the fix."""
    import shutil

    out = tmp_path / "exp"
    run(TINY, out, metrics=METRICS, progress=False)
    shutil.rmtree(out / "train" / "checkpoints")
    before = {f: (out / f).read_bytes() for f in ("train/metrics.csv", "pred.h5ad", "eval/summary.json")}
    with pytest.raises(ConfigError, match=r"checkpoints are gone.*new --out"):
        run(TINY, out, metrics=["mse"], progress=False)
    assert {f: (out / f).read_bytes() for f in before} == before
    assert run(TINY, out, metrics=METRICS, progress=False)  # the finished evaluation itself is still returned
