"""A sweep's results (``results.csv``, ``summary.md``, ``summary.json``) hold the runs this pass finished or skipped as
finished, read after the pass. A run the pass counted as failed had its folder's rows aggregated all the same when a
``DONE`` and an ``eval/metrics.csv`` were there at the end (a concurrent ``distgen run --metrics mse`` that refused the
sweep's run as "in use" and finished it with mse alone: ``pearson_delta`` empty beside "Failed runs"); and a run skipped
as finished whose ``DONE`` a concurrent re-run removed during the pass lost its rows without a word."""

import csv

from distgen.pipeline.run_folder import DONE_FILE, METRICS_FILE
from distgen.pipeline.sweep import sweep

from .test_sweep import FakeRunner, base  # noqa: F401  (the fixture)

GRID = {"description": ["good", "bad"], "train.seed": [0, 1]}
METRICS = ["mse", "pearson_delta"]


def _slugs(out):
    with (out / "results.csv").open() as fh:
        return {f"description={row['variant'].split('=', 1)[-1]}__seed{row['seed']}" for row in csv.DictReader(fh)}


class FinishedByAnother(FakeRunner):
    """Fails ``failing``'s run as the sweep's ``distgen run`` refused "in use", leaving the folder as the concurrent
    ``distgen run --metrics mse`` finished it: mse alone and its ``DONE`` record."""

    def __init__(self, failing):
        super().__init__()
        self.failing = failing

    def __call__(self, config, run, run_dir):
        if run.slug != self.failing:
            return super().__call__(config, run, run_dir)
        self.calls.append(run.slug)
        (run_dir / METRICS_FILE).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / METRICS_FILE).write_text("perturbation,mse\nP0,9.0\nP1,9.0\n")
        (run_dir / "eval" / "summary.json").write_text("{}")
        (run_dir / DONE_FILE).write_text('{"metrics": ["mse"]}\n')
        (run_dir / "log.txt").write_text("$ distgen run\ndistgen run: error: run folder is in use by distgen run (pid 1)\n")
        return 1


def test_a_run_the_pass_counts_failed_is_not_aggregated(tmp_path, base):  # noqa: F811
    out = tmp_path / "sw"
    failing = "description=bad__seed1"
    res = sweep(base, GRID, out, runner=FinishedByAnother(failing), metrics=METRICS, progress=False, retries=0)
    assert res.failed == [failing]
    assert failing not in _slugs(out) and len(_slugs(out)) == 3  # before: its mse-only rows were in results.csv
    with (out / "results.csv").open() as fh:
        assert all(row["pearson_delta"] != "" for row in csv.DictReader(fh))
    assert "Failed runs" in (out / "summary.md").read_text()


class RemovesADone(FakeRunner):
    """Runs the one unfinished run while, as a concurrent re-run of a finished run would, ``gone``'s ``DONE`` is removed."""

    def __init__(self, gone):
        super().__init__()
        self.gone = gone

    def __call__(self, config, run, run_dir):
        (run_dir.parent / self.gone / DONE_FILE).unlink()
        return super().__call__(config, run, run_dir)


def test_a_skipped_run_whose_done_went_during_the_pass_is_named(tmp_path, base, capsys):  # noqa: F811
    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=FakeRunner(), metrics=METRICS, progress=False)
    (out / "runs" / "description=good__seed0" / DONE_FILE).unlink()  # this one runs again
    gone = "description=bad__seed0"
    capsys.readouterr()
    res = sweep(base, GRID, out, runner=RemovesADone(gone), metrics=METRICS, progress=False)
    assert gone in res.skipped and gone not in _slugs(out)
    err = capsys.readouterr().err
    assert f"run {gone}" in err and "left out of the results" in err  # before: nothing said
    assert gone in (out / "summary.md").read_text()
