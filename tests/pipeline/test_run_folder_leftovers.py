"""A ``DONE`` beside an ``experiment.yaml`` that cannot be read was taken as a finished experiment of whatever config
asked, and its summary returned as that config's."""

import json

import pytest

from distgen.config import ConfigError, save_yaml
from distgen.pipeline.run_folder import DONE_FILE, is_finished

from .conftest import TINY


def _finished_folder(tmp_path, record_text):
    out = tmp_path / "exp"
    (out / "eval").mkdir(parents=True)
    (out / "eval" / "summary.json").write_text(json.dumps({"metrics": {"mse": {"model": 0.5}}}))
    (out / "eval" / "metrics.csv").write_text("perturbation,mse\nA,0.5\n")
    (out / DONE_FILE).write_text(json.dumps({"metrics": None}))
    if record_text is not None:
        (out / "experiment.yaml").write_text(record_text)
    return out


@pytest.mark.parametrize("record", ["model: {name: [unclosed\n", "\x00\xff not yaml: [", None])
def test_done_beside_an_unreadable_or_missing_experiment_record_is_not_taken_as_finished(tmp_path, record):
    """Before: True (the unreadable record was skipped as "cut short while written", then DONE said finished), so
    ``distgen run`` of ANY config returned this folder's summary as its own."""
    out = _finished_folder(tmp_path, record)
    with pytest.raises(ConfigError) as err:
        is_finished(out, dict(TINY))
    msg = str(err.value)
    assert str(out / "experiment.yaml") in msg and DONE_FILE in msg and "--out" in msg


def test_done_beside_an_unreadable_record_is_refused_by_run_before_any_work(tmp_path):
    from distgen.pipeline.experiment import run

    out = _finished_folder(tmp_path, "model: {name: [unclosed\n")
    cfg = save_yaml(TINY, tmp_path / "t.yaml")
    with pytest.raises(ConfigError, match=r"experiment\.yaml"):
        run(cfg, out, progress=False, plots=False)  # before: returned the folder's summary as this config's
    assert (out / DONE_FILE).exists() and not (out / "train").exists()


def test_an_unreadable_record_without_done_is_still_replaced_by_the_new_run(tmp_path):
    """The earlier rule (a record cut short while written, nothing finished) stays: not refused."""
    out = _finished_folder(tmp_path, "model: {name: [unclosed\n")
    (out / DONE_FILE).unlink()
    assert is_finished(out, dict(TINY)) is False


@pytest.mark.parametrize("record", ["model: {name: [unclosed\n", None])
def test_a_sweep_refuses_a_finished_run_beside_an_unreadable_or_missing_experiment_record(tmp_path, record):
    """The sweep's own path had the same hole. A run ``distgen run`` finished (its ``DONE`` record)
    whose ``experiment.yaml`` is unreadable or gone passed ``check_same_experiment`` and ``RunFolder.finished``: the sweep of ANY
    config skipped it and took its rows as its own (checked with a real ``distgen run`` sweep of TINY, then another
    backbone). A run another runner finished is read with the ``experiment.yaml`` the sweep writes beside its ``DONE``
    (before, it recorded no config and was read for any config)."""
    from distgen.pipeline.sweep import sweep

    from .test_sweep import FakeRunner

    base = str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))
    out = tmp_path / "sw"
    grid = {"train.seed": [0, 1]}
    sweep(base, grid, out, runner=FakeRunner(), metrics=["mse"], progress=False)
    assert sweep(base, grid, out, runner=FakeRunner(), metrics=["mse"], progress=False).skipped  # plain DONE: still read
    run = out / "runs" / "base__seed0"
    (run / DONE_FILE).write_text(json.dumps({"metrics": None}))  # as distgen run writes it, beside its record
    (run / "eval" / "summary.json").write_text(json.dumps({"metrics": {}}))
    (run / "timings.json").write_text("{}\n")  # distgen run writes it just before DONE
    if record is not None:
        (run / "experiment.yaml").write_text(record)
    else:  # the sweep records another runner's config beside its DONE
        (run / "experiment.yaml").unlink()

    def never(config, r, run_dir):
        raise AssertionError(f"run {r.slug} started")

    with pytest.raises(ConfigError) as err:
        sweep(base, grid, out, runner=never, metrics=["mse"], progress=False)  # before: base__seed0 skipped, its rows read
    assert str(run / "experiment.yaml") in str(err.value)


def _never(config, r, run_dir):
    raise AssertionError(f"run {r.slug} started")


def test_a_sweep_of_another_config_refuses_runs_another_runner_finished(tmp_path):
    """A run another runner finished (the sweep's own plain ``DONE``, no ``experiment.yaml``) was read as finished for ANY
    config: a sweep of another model into the same folder skipped it and took its rows as its own. The sweep now records the run's config (``experiment.yaml``, as ``distgen run`` does)
    beside the ``DONE`` it writes, and a sweep of another config is refused naming the folder."""
    from distgen.pipeline.sweep import sweep

    from .test_sweep import FakeRunner

    first = str(save_yaml({"model": {"name": "control"}}, tmp_path / "first.yaml"))
    other = str(save_yaml({"model": {"name": "additive"}}, tmp_path / "other.yaml"))
    out = tmp_path / "sw"
    sweep(first, {}, out, seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False)
    assert sweep(first, {}, out, seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False).skipped  # its own: read
    with pytest.raises(ConfigError) as err:  # before: skipped as finished, the control rows summarised as additive's
        sweep(other, {}, out, seeds=[0], runner=_never, metrics=["mse"], progress=False)
    assert str(out / "runs" / "base__seed0") in str(err.value) and "model.name" in str(err.value)


def test_a_sweep_refuses_a_run_finished_without_a_record_of_its_config(tmp_path):
    """A run folder whose ``DONE`` has no ``experiment.yaml`` beside it (another runner's, of a sweep that did not record
    it) is refused for every config, naming the file and the fixes, as ``distgen run`` refuses it: which config it ran
    cannot be told."""
    from distgen.pipeline.sweep import sweep

    from .test_sweep import FakeRunner

    base = str(save_yaml({"model": {"name": "control"}}, tmp_path / "base.yaml"))
    out = tmp_path / "sw"
    sweep(base, {}, out, seeds=[0], runner=FakeRunner(), metrics=["mse"], progress=False)
    run = out / "runs" / "base__seed0"
    (run / "experiment.yaml").unlink(missing_ok=True)
    with pytest.raises(ConfigError) as err:  # before: read as finished
        sweep(base, {}, out, seeds=[0], runner=_never, metrics=["mse"], progress=False)
    msg = str(err.value)
    assert str(run / "experiment.yaml") in msg and str(run / DONE_FILE) in msg and "--out" in msg
