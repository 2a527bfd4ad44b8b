"""The sweep's record of the config of a run another runner finished
(``experiment.yaml``, written by ``sweep.record_run``) and its checks of run folders (``check_run_folders``), merged with
the ``data_moved.json`` record written by the sweep."""

import shutil
from pathlib import Path

import pytest

from distgen.config import ConfigError, load_yaml, save_yaml
from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.experiment import DONE_FILE, experiment_document
from distgen.pipeline.sweep import sweep

from .test_moved_training_data import _config, hashes, moved  # noqa: F401 (fixtures)
from .test_sweep import FakeRunner
from .test_sweep_read_only import Refused


def _never(config, r, run_dir):
    raise AssertionError(f"run {r.slug} started")


@pytest.fixture
def configs(tmp_path):
    return (str(save_yaml({"model": {"name": "control"}}, tmp_path / "a.yaml")),
            str(save_yaml({"model": {"name": "additive"}}, tmp_path / "b.yaml")))


def _stale_folder(tmp_path, config):
    """A sweep folder whose one run folder holds ``config``'s ``experiment.yaml`` and nothing else."""
    out = tmp_path / "sw"
    run = out / "runs" / "base__seed0"
    run.mkdir(parents=True)
    save_yaml(experiment_document(config, ["train.seed=0"], progress=False), run / "experiment.yaml")
    return out, run


def test_a_stale_record_of_another_config_is_replaced_by_the_config_the_runner_ran(tmp_path, configs):
    """A run folder holding another config's ``experiment.yaml`` and nothing else (a ``distgen run`` refused before it
    produced anything: ``check_same_experiment`` lets the next run replace it) was finished by another runner with this
    config; ``record_run`` wrote the config only where there was none, so the stale record stayed: the same sweep again
    was refused as "another config", and a sweep of the stale config skipped the run and took its rows as its own."""
    a, b = configs
    out, run = _stale_folder(tmp_path, b)
    sweep(a, {}, out, seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False)
    assert load_yaml(run / "experiment.yaml")["model"]["name"] == "control"
    assert sweep(a, {}, out, seeds=[0], runner=_never, metrics=["mse"], progress=False).skipped == ["base__seed0"]
    with pytest.raises(ConfigError, match=r"model\.name"):  # before: skipped, the control rows summarised as additive's
        sweep(b, {}, out, seeds=[0], runner=_never, metrics=["mse"], progress=False)


def test_a_runner_s_own_experiment_yaml_is_not_replaced(tmp_path, configs):
    """A file the runner itself wrote under that name (not a distgen record) is its own: left as it is."""
    a, _ = configs
    out = tmp_path / "sw"

    class Own(FakeRunner):
        def __call__(self, config, r, run_dir):
            (run_dir / "experiment.yaml").parent.mkdir(parents=True, exist_ok=True)
            (run_dir / "experiment.yaml").write_text("runner: mine\n")
            return super().__call__(config, r, run_dir)

    sweep(a, {}, out, seeds=[0], runner=Own(), metrics=["mse"], progress=False)
    assert (out / "runs" / "base__seed0" / "experiment.yaml").read_text() == "runner: mine\n"


def test_a_record_the_run_wrote_itself_is_never_replaced(tmp_path, configs):
    """``distgen run`` writes the record of the config file as it read it (edited since the sweep read it: another
    config): the sweep replaces only a record the run left as it was before it started."""
    a, b = configs

    class Writes(FakeRunner):
        def __call__(self, config, r, run_dir):
            save_yaml(experiment_document(b, list(r.overrides), progress=False), run_dir / "experiment.yaml")
            return super().__call__(config, r, run_dir)

    out, run = _stale_folder(tmp_path, b)
    sweep(a, {}, out, seeds=[0], runner=Writes(), metrics=["mse"], progress=False)
    assert load_yaml(run / "experiment.yaml")["model"]["name"] == "additive"


def _old_runner_sweep(a, out):
    """A sweep another runner finished before sweeps recorded configs: the sweep's plain ``DONE``, no ``experiment.yaml``."""
    sweep(a, {"train.seed": [0, 1]}, out, runner=FakeRunner(), metrics=["mse"], progress=False)
    for run in (out / "runs").iterdir():
        (run / "experiment.yaml").unlink()


def test_an_older_runner_made_sweep_is_refused_naming_every_run_and_a_fix_that_keeps_them(tmp_path, configs):
    """The refusal of such a folder said to restore ``experiment.yaml`` "from a copy of the folder" (none was ever
    written) or to remove ``DONE`` "to continue the experiment", which runs the run again (another runner's results
    replaced), and named one folder of many: each run needed its own refusal. Now every such folder is named, and the
    fix that keeps them (``adopt_unrecorded=True``) is given."""
    a, _ = configs
    out = tmp_path / "sw"
    _old_runner_sweep(a, out)
    with pytest.raises(ConfigError) as err:
        sweep(a, {"train.seed": [0, 1]}, out, runner=_never, metrics=["mse"], progress=False)
    msg = str(err.value)
    assert "base__seed0" in msg and "base__seed1" in msg and "adopt_unrecorded=True" in msg
    assert "from a copy" not in msg and "replaced" in msg


def test_adopt_unrecorded_keeps_the_finished_runs_and_records_this_config(tmp_path, configs):
    a, b = configs
    out = tmp_path / "sw"
    _old_runner_sweep(a, out)
    before = (out / "runs" / "base__seed0" / "eval" / "metrics.csv").read_bytes()
    res = sweep(a, {"train.seed": [0, 1]}, out, runner=_never, metrics=["mse"], progress=False, adopt_unrecorded=True)
    assert sorted(res.skipped) == ["base__seed0", "base__seed1"]
    assert (out / "runs" / "base__seed0" / "eval" / "metrics.csv").read_bytes() == before
    assert load_yaml(out / "runs" / "base__seed1" / "experiment.yaml")["train"]["seed"] == 1
    with pytest.raises(ConfigError, match=r"model\.name"):  # recorded: another config is refused from now on
        sweep(b, {"train.seed": [0, 1]}, out, runner=_never, metrics=["mse"], progress=False, adopt_unrecorded=True)


def test_adopt_unrecorded_takes_no_distgen_run_folder(tmp_path, configs):
    """A ``distgen run`` run (its ``DONE`` record beside ``timings.json``) whose ``experiment.yaml`` is gone is still
    refused: that file was written and lost, and restoring it is the fix."""
    a, _ = configs
    out = tmp_path / "sw"
    sweep(a, {}, out, seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False)
    run = out / "runs" / "base__seed0"
    (run / "experiment.yaml").unlink()
    (run / DONE_FILE).write_text('{"metrics": null}')
    (run / "timings.json").write_text("{}\n")
    with pytest.raises(ConfigError, match="Restore that file"):
        sweep(a, {}, out, seeds=[0], runner=_never, metrics=["mse"], progress=False, adopt_unrecorded=True)


def test_a_read_only_finished_sweep_on_a_moved_file_hashes_it_once(moved, tmp_path, hashes, monkeypatch):  # noqa: F811
    """Merge of helpers 205 and 209: the read-only path checked each run folder (``check_run_folders``, which hashes a
    moved training file) and then read each finished run (``finished_or_none``, which checked and hashed it again): two
    loads of the data per run where ``a54a3de`` made one."""

    def copied(config, run, run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(moved / "exp", run_dir)
        doc = load_yaml(run_dir / "experiment.yaml")
        save_yaml({**doc, "description": "a", "train": {**doc["train"], "seed": 0}}, run_dir / "experiment.yaml")
        return 0

    config = _config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)
    out = tmp_path / "sw"
    sweep(str(config), {"description": ["a"]}, out, seeds=[0], runner=copied, metrics=["mse"], progress=False)
    hashes.clear()
    monkeypatch.setattr(sweep_module, "RunLock", Refused)
    res = sweep(str(config), {"description": ["a"]}, out, seeds=[0], runner=_never, metrics=["mse"], progress=False)
    assert res.skipped == ["description=a__seed0"] and len(hashes) == 1
    assert not (out / "runs" / "description=a__seed0" / "data_moved.json").exists()  # the read-only read writes nothing


def test_a_record_that_cannot_be_written_beside_the_runner_s_own_done_is_no_crash(tmp_path, configs, monkeypatch):
    """A runner that wrote its own ``DONE`` in a folder the sweep cannot write (read-only after the run): writing the
    record raised out of the sweep (nothing was written there before such records). The run is left unrecorded (the next
    sweep names it and ``adopt_unrecorded``) and this sweep goes on."""
    a, _ = configs

    class Done(FakeRunner):
        def __call__(self, config, r, run_dir):
            code = super().__call__(config, r, run_dir)
            (run_dir / DONE_FILE).write_text("ok\n")
            return code

    def refused(doc, path):
        if Path(path).name != "experiment.yaml":
            return save_yaml(doc, path)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sweep_module, "save_yaml", refused)
    res = sweep(a, {}, tmp_path / "sw", seeds=[0], runner=Done(), metrics=["mse"], progress=False)
    assert res.finished == ["base__seed0"]
