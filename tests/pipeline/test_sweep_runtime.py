"""A sweep while it runs and after (the sweep runtime round, 2026-12-07): runs whose results went missing after they
finished, and what a failed run's log says (fast fake runner)."""

import csv
import json

import pytest

from distgen.pipeline.sweep import METRICS_FILE, failure_reason, sweep
from tests.pipeline.test_sweep import FakeRunner, base  # noqa: F401  (the fixture)


def _variants_in(results):
    with open(results, newline="") as fh:
        return {(row["variant"], row["seed"]) for row in csv.DictReader(fh)}


def test_a_finished_run_whose_metrics_table_was_removed_is_run_again_not_dropped(tmp_path, base):  # noqa: F811
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=FakeRunner())
    (out / "runs" / "description=bad__seed0" / METRICS_FILE).unlink()  # DONE kept: a cleanup, a partial copy of the folder
    runner = FakeRunner()
    res = sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
    assert runner.calls == ["description=bad__seed0"]  # not skipped as finished: its results came back
    assert "description=bad__seed0" in res.finished and "description=bad__seed0" not in res.skipped
    assert _variants_in(out / "results.csv") == {("description=good", "0"), ("description=bad", "0")}


def test_distgen_run_counts_an_experiment_without_its_metrics_table_as_unfinished(tmp_path):
    from distgen.config import save_yaml
    from distgen.pipeline.experiment import experiment_document
    from distgen.pipeline.run_folder import DONE_FILE, is_finished

    cfg = save_yaml({"model": {"name": "control"}}, tmp_path / "c.yaml")
    doc = experiment_document(str(cfg), [], progress=False)
    out = tmp_path / "run"
    (out / "eval").mkdir(parents=True)
    save_yaml(doc, out / "experiment.yaml")
    (out / DONE_FILE).write_text('{"metrics": null}\n')
    (out / "eval" / "summary.json").write_text("{}")
    (out / "eval" / "metrics.csv").write_text("perturbation,mse\nA,1\n")
    assert is_finished(out, doc)
    (out / "eval" / "metrics.csv").unlink()
    assert not is_finished(out, doc)  # a sweep reading its rows would find none: evaluate again


def test_the_reason_of_a_run_refused_by_its_config_is_read_from_its_log(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "log.txt").write_text(
        "$ python -m distgen run c.yaml --out r\n"
        "distgen run: config error: model.backbone.hidden=300,000 makes the model need at least 4.3 TB\n")
    assert failure_reason(run) == "config error: model.backbone.hidden=300,000 makes the model need at least 4.3 TB"
    (run / "log.txt").write_text("$ python -m distgen run c.yaml --out r\n"
                                 "distgen run: internal error: KeyError: 'x' (at a.py:3)\n"
                                 "  this is a bug in distgen or a plugin; rerun with --debug\n")
    assert failure_reason(run) == "internal error: KeyError: 'x' (at a.py:3)"
    (run / "log.txt").write_text("$ python -m distgen run c.yaml --out r\ndistgen run: error: boom\n")
    assert failure_reason(run) == "boom"


def test_a_run_refused_by_its_config_is_not_retried(tmp_path, base):  # noqa: F811
    calls = []

    def runner(config, run, run_dir):
        calls.append(run.slug)
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "log.txt").open("a") as log:
            log.write("$ distgen run\ndistgen run: config error: too large for this machine\n")
        return 2

    with pytest.raises(RuntimeError, match="no run finished"):
        sweep(base, {"description": ["a"]}, tmp_path / "sw", seeds=[0], retries=2, progress=False, runner=runner)
    assert calls == ["description=a__seed0"]  # the same config is refused the same way on a retry



@pytest.mark.parametrize("line", [
    "distgen run: error: out of memory (CUDA out of memory. Tried to allocate 2.00 GiB). lower train.sets_per_batch",
    "distgen run: internal error: RuntimeError: CUDA error: an illegal memory access was encountered (at x.py:1)",
    "distgen run: error: /data/n.h5ad: [Errno 5] Input/output error",
], ids=["out-of-memory", "device-error", "file-system-error"])
def test_a_run_that_failed_otherwise_than_by_its_config_is_still_retried(tmp_path, base, line):  # noqa: F811
    """Only a refused config and a NaN loss repeat on a retry; a failure of the machine (memory taken by another run, a
    device or file-system error) is retried as before (review of the sweep runtime round)."""
    fake = FakeRunner()

    def runner(config, run, run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        if not fake.calls:
            fake.calls.append(run.slug)
            with (run_dir / "log.txt").open("a") as log:
                log.write(f"$ distgen run\n{line}\n")
            return 1
        return fake(config, run, run_dir)

    res = sweep(base, {"description": ["a"]}, tmp_path / "sw", seeds=[0], retries=1, progress=False, runner=runner)
    assert fake.calls == ["description=a__seed0"] * 2 and res.finished == ["description=a__seed0"] and not res.failed

def test_a_run_evaluated_again_by_hand_with_other_metrics_is_evaluated_again_with_its_configs(tmp_path, base, capsys):  # noqa: F811
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=FakeRunner())
    run = out / "runs" / "description=bad__seed0"
    # `distgen run CONFIG ... --out RUN --metrics pearson_delta` by hand: its table lost mse, DONE records the metrics
    (run / METRICS_FILE).write_text("perturbation,pearson_delta\nP0,0.1\n")
    (run / "DONE").write_text('{"metrics": ["pearson_delta"]}\n')
    runner = FakeRunner()
    res = sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
    assert runner.calls == ["description=bad__seed0"]  # not read as it is: the variant's mse would be '- (no value)'
    assert "description=bad__seed0" in res.finished
    assert "evaluated with --metrics pearson_delta" in capsys.readouterr().err


def test_the_report_of_a_sweep_folder_without_results_says_it_is_a_sweep(tmp_path, base, capsys):  # noqa: F811
    from distgen.report.__main__ import main

    out = tmp_path / "sw"
    sweep(base, {"description": ["good", "bad"]}, out, seeds=[0], progress=False, runner=FakeRunner())
    (out / "results.csv").unlink()  # removed, or the sweep was interrupted before writing it
    assert main([str(out)]) != 0
    err = capsys.readouterr().err
    assert "sweep" in err and "distgen sweep" in err and "distgen evaluate" not in err


def test_compare_of_a_sweep_folder_names_its_runs_and_its_own_comparison(tmp_path, base):  # noqa: F811
    from distgen.evaluation.compare import evaluation_folder

    out = tmp_path / "sw"
    sweep(base, {"description": ["good", "bad"]}, out, seeds=[0], progress=False, runner=FakeRunner())
    for run in (out / "runs").iterdir():
        (run / "eval" / "summary.json").write_text("{}")  # distgen run writes it; the fake runner does not
    with pytest.raises(FileNotFoundError) as e:
        evaluation_folder(out)
    said = str(e.value)
    assert "sweep folder" in said and "summary.md" in said and str(out / "runs" / "description=good__seed0") in said


class DataChangedRunner(FakeRunner):
    """FakeRunner that also writes each run's eval/summary.json with the digests of the real cells it was scored on:
    ``self.version`` stands for the data file as it is when the run is made."""

    version = "old"

    def __call__(self, config, run, run_dir):
        code = super().__call__(config, run, run_dir)
        digests = {p: f"{self.version}-{p}" for p in ("P0", "P1", "P2", "P3", "P4", "P5", "P6", "P7")}
        (run_dir / "eval" / "summary.json").write_text(json.dumps({"n_genes": 65, "truth_digests": digests}))
        return code


def test_seeds_of_a_variant_scored_on_other_real_data_are_named_not_averaged_silently(tmp_path, base, capsys):  # noqa: F811
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=DataChangedRunner())
    runner = DataChangedRunner()
    runner.version = "new"  # the data file was replaced before the sweep was extended by a seed
    sweep(base, grid, out, seeds=[0, 1], progress=False, runner=runner)
    assert runner.calls == ["description=good__seed1", "description=bad__seed1"]
    err = capsys.readouterr().err
    assert "description=good" in err and "seed 1" in err and "other real cells" in err
    text = (out / "summary.md").read_text()
    assert "## Seeds scored on other real data" in text
    said = json.loads((out / "summary.json").read_text())["seeds_truths_differ"]
    assert set(said) == {"description=good", "description=bad"}


def test_seeds_scored_on_the_same_real_data_say_nothing(tmp_path, base, capsys):  # noqa: F811
    out = tmp_path / "sw"
    sweep(base, {"description": ["good", "bad"]}, out, seeds=[0, 1], progress=False, runner=DataChangedRunner())
    assert "Seeds scored on other real data" not in (out / "summary.md").read_text()
    assert json.loads((out / "summary.json").read_text())["seeds_truths_differ"] == {}


def test_the_sweep_page_names_seeds_scored_on_other_real_data(tmp_path, base):  # noqa: F811
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=DataChangedRunner())
    runner = DataChangedRunner()
    runner.version = "new"
    sweep(base, grid, out, seeds=[0, 1], progress=False, runner=runner)
    page = (out / "report.html").read_text()
    assert "Seeds scored on other real data" in page and "its run at seed 1 was" in page


def test_a_run_evaluated_again_with_the_metric_the_sweep_asked_for_is_kept_not_evaluated_again(tmp_path, base, capsys):  # noqa: F811
    """The sweep's own advice for a metric no run computed ("evaluate a run again with distgen run CONFIG OVERRIDES --out
    RUN --metrics ...") must stick: the run is read with the metric added, not evaluated again without it (review of the
    sweep runtime round: every such run was launched again and lost the metric, the warning came back each time)."""
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=FakeRunner(), metrics=["mse", "pearson_delta", "edistance"])
    said = capsys.readouterr().err
    assert "edistance is not in the summary" in said and "--metrics mse,pearson_delta,edistance" in said  # what to run
    for slug in ("description=good__seed0", "description=bad__seed0"):  # the advice followed for each run
        run = out / "runs" / slug
        with (run / METRICS_FILE).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        with (run / METRICS_FILE).open("w", newline="") as fh:
            w = csv.DictWriter(fh, [*rows[0], "edistance"])
            w.writeheader()
            w.writerows({**row, "edistance": 0.25} for row in rows)
        (run / "DONE").write_text('{"metrics": ["mse", "pearson_delta", "edistance"]}\n')
        (run / "eval" / "summary.json").write_text("{}")  # distgen run's evaluation writes one beside its table
    runner = FakeRunner()
    res = sweep(base, grid, out, seeds=[0], progress=False, runner=runner, metrics=["mse", "pearson_delta", "edistance"])
    assert runner.calls == [] and sorted(res.skipped) == ["description=bad__seed0", "description=good__seed0"]
    err = capsys.readouterr().err
    assert "not in the summary" not in err and "evaluated with --metrics" not in err
    with open(out / "results.csv", newline="") as fh:
        assert {row["edistance"] for row in csv.DictReader(fh)} == {"0.25"}


class RunLikeRunner(FakeRunner):
    """As ``distgen run`` finishes a run: ``eval/summary.json`` beside the table and a ``DONE`` record of its metrics."""

    def __call__(self, config, run, run_dir):
        code = super().__call__(config, run, run_dir)
        if code == 0:
            (run_dir / "eval" / "summary.json").write_text(json.dumps({"truth": {"cells": run.slug}}))
            (run_dir / "DONE").write_text(json.dumps({"metrics": None}) + "\n")
        return code


def test_a_run_whose_summary_was_removed_is_run_again_not_read_without_its_truth_record(tmp_path, base):  # noqa: F811
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=RunLikeRunner())
    (out / "runs" / "description=bad__seed0" / "eval" / "summary.json").unlink()  # DONE and metrics.csv kept
    runner = RunLikeRunner()
    res = sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
    assert runner.calls == ["description=bad__seed0"]  # as distgen run counts it: evaluated again, its truth checked
    assert "description=bad__seed0" in res.finished and (out / "runs" / "description=bad__seed0" / "eval" / "summary.json").exists()


def test_another_runners_run_without_a_summary_is_still_finished(tmp_path, base):  # noqa: F811
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=FakeRunner())  # writes no summary.json; the sweep writes DONE
    runner = FakeRunner()
    sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
    assert runner.calls == []


def test_a_run_still_written_by_an_earlier_sweeps_orphan_is_not_started_nor_written_to(tmp_path, base):  # noqa: F811
    """Leftover of the sweep runtime round: after ``kill -9`` of a sweep alone its run goes on; the same command run again
    launched ``distgen run`` into the folder, which was refused, and both appended to the one ``log.txt`` (the refusal in
    the middle of the live run's log). Now the sweep sees the folder in use, starts nothing and writes nothing there, and
    says whose it is and what to do."""
    import subprocess
    import sys

    from tests.pipeline.test_sweep import HOLDER

    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    busy = out / "runs" / "description=bad__seed0"
    busy.mkdir(parents=True)
    (busy / "log.txt").write_text("$ distgen run ... (the orphan's log)\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(busy)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        runner = FakeRunner()
        res = sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
        assert runner.calls == ["description=good__seed0"] and res.failed == ["description=bad__seed0"]
        why = res.failures["description=bad__seed0"]
        assert f"pid {holder.pid}" in why and "not started" in why and "run the sweep again" in why
        assert (busy / "log.txt").read_text() == "$ distgen run ... (the orphan's log)\n"  # nothing appended
    finally:
        holder.communicate("")
    runner = FakeRunner()
    sweep(base, grid, out, seeds=[0], progress=False, runner=runner)  # once it has finished: run (here: by the fake)
    assert runner.calls == ["description=bad__seed0"]


def test_a_run_folder_held_by_another_command_is_not_called_an_earlier_sweeps_run(tmp_path, base):  # noqa: F811
    """Review of the leftovers round: a run folder in use by ``distgen predict RUN`` (its lock's purpose) was said to be held
    by a process "still writing its log.txt (a run an earlier sweep started and left going ...)"; it names the command."""
    import subprocess
    import sys

    from tests.pipeline.test_sweep import HOLDER

    out = tmp_path / "sw"
    busy = out / "runs" / "description=bad__seed0"
    busy.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.replace('"run"', '"predict"'), str(busy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = sweep(base, {"description": ["good", "bad"]}, out, seeds=[0], progress=False, runner=FakeRunner())
        why = res.failures["description=bad__seed0"]
        assert f"distgen predict (pid {holder.pid}" in why and "not started" in why and "run the sweep again" in why
        assert "log.txt" not in why and "earlier sweep" not in why
    finally:
        holder.communicate("")


def test_probing_a_run_folders_lock_never_creates_a_lock_file(tmp_path, monkeypatch):
    """Review: ``live_holder`` checked that the lock file exists, then opened it for appending; a lock released (its file
    removed) in between was created again, empty, by the probe (on a file system without ``flock`` an empty lock file
    refuses every later run of the folder: "its lock file is empty or unreadable")."""
    from pathlib import Path

    from distgen.pipeline.sweep import live_holder
    from distgen.train.lock import LOCK_NAME

    run = tmp_path / "run"
    run.mkdir()
    real = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: True if self.name == LOCK_NAME else real(self))  # released in between
    assert live_holder(run) is None
    assert not (run / LOCK_NAME).is_file()


def test_without_flock_a_run_folders_holder_is_the_live_process_its_lock_file_names(tmp_path, monkeypatch):
    """Review (a guard of 8feb270's fallback, untested): where ``flock`` fails (a file system without it) the holder is the
    process the lock file names when it is alive on this host, as ``RunLock`` decides there."""
    import errno
    import fcntl
    import json
    import os
    import socket

    from distgen.pipeline.sweep import live_holder
    from distgen.train.lock import LOCK_NAME

    def no_flock(*a):
        raise OSError(errno.ENOLCK, "no locks")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    run = tmp_path / "run"
    run.mkdir()
    me = {"purpose": "run", "pid": os.getpid(), "host": socket.gethostname()}
    (run / LOCK_NAME).write_text(json.dumps(me))
    assert live_holder(run)["pid"] == os.getpid()
    (run / LOCK_NAME).write_text(json.dumps({**me, "pid": 2**22 + 7}))  # above Linux's pid_max: no such process
    assert live_holder(run) is None
    (run / LOCK_NAME).write_text(json.dumps({**me, "host": "elsewhere"}))  # another host's: nothing says it is gone, as for
    assert live_holder(run)["host"] == "elsewhere"  # RunLock (is_stale), which refused it after the sweep had started it


@pytest.mark.parametrize("removed", ["eval/summary.json", "eval/metrics.csv"])
def test_a_finished_run_run_again_for_a_removed_file_is_said_why(tmp_path, base, capsys, removed):  # noqa: F811
    """A finished run whose ``eval/summary.json`` (or ``metrics.csv``) was removed is run again (``distgen run``
    evaluates it again, no step trained), and a note names the run, the file and that nothing is trained again (it was
    run again without a word)."""
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=RunLikeRunner())
    (out / "runs" / "description=bad__seed0" / removed).unlink()
    capsys.readouterr()
    runner = RunLikeRunner()
    sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
    err = capsys.readouterr().err
    assert runner.calls == ["description=bad__seed0"]
    assert f"run description=bad__seed0: it has no {removed}" in err and "evaluated again" in err
    assert "description=good__seed0" not in err


def test_a_finished_run_with_a_damaged_summary_is_run_again_and_said_why(tmp_path, base, capsys):  # noqa: F811
    """A ``distgen run`` run whose ``eval/summary.json`` cannot be read was skipped as finished (its summary
    then read as none); ``distgen run`` evaluates such a run again, and the sweep says so."""
    damaged = "eval/summary.json"
    out = tmp_path / "sw"
    grid = {"description": ["good", "bad"]}
    sweep(base, grid, out, seeds=[0], progress=False, runner=RunLikeRunner())
    (out / "runs" / "description=bad__seed0" / damaged).write_text("{bad")
    capsys.readouterr()
    runner = RunLikeRunner()
    sweep(base, grid, out, seeds=[0], progress=False, runner=runner)
    err = capsys.readouterr().err
    assert runner.calls == ["description=bad__seed0"]
    assert "description=bad__seed0" in err and f"{damaged} cannot be read" in err and "evaluated again" in err


def test_a_finished_runs_damaged_timings_make_it_run_again(tmp_path):
    """``timings.json`` is part of the summary ``distgen run`` returns of a finished run (``finished_summary``): one that
    cannot be read makes the run unfinished for the sweep as for ``distgen run``."""
    from distgen.pipeline.run_folder import RunFolder

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "metrics.csv").write_text("perturbation,mse\nA,1\n")
    (run / "eval" / "summary.json").write_text("{}")
    (run / "DONE").write_text(json.dumps({"metrics": None}))
    assert RunFolder.read(run).finished() and RunFolder.read(run).removed_part is None
    (run / "timings.json").write_text('{"train": 1')
    assert not RunFolder.read(run).finished() and f"{run / 'timings.json'} cannot be read" in (RunFolder.read(run).removed_part or "")
