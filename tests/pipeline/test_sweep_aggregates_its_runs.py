"""A sweep's results (``results.csv``, ``summary.md``, ``summary.json``) hold the runs this pass finished or skipped as
finished, read after the pass. A run the pass counted as failed had its folder's rows aggregated all the same when a
``DONE`` and an ``eval/metrics.csv`` were there at the end (a concurrent ``distgen run --metrics mse`` that refused the
sweep's run as "in use" and finished it with mse alone: ``pearson_delta`` empty beside "Failed runs"); and a run skipped
as finished whose ``DONE`` a concurrent re-run removed during the pass lost its rows without a word."""

import csv
import json

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


class Meanwhile(FakeRunner):
    """Runs the one unfinished run while ``change`` is done to ``other``'s folder, as a concurrent re-run of that finished
    run would (``DONE`` removed, or the run evaluated again: ``_rewrite``)."""

    def __init__(self, other, change=lambda run_dir: (run_dir / DONE_FILE).unlink()):
        super().__init__()
        self.other, self.change = other, change

    def __call__(self, config, run, run_dir):
        self.change(run_dir.parent / self.other)
        return super().__call__(config, run, run_dir)


def test_a_skipped_run_whose_done_went_during_the_pass_is_named(tmp_path, base, capsys):  # noqa: F811
    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=FakeRunner(), metrics=METRICS, progress=False)
    (out / "runs" / "description=good__seed0" / DONE_FILE).unlink()  # this one runs again
    gone = "description=bad__seed0"
    capsys.readouterr()
    res = sweep(base, GRID, out, runner=Meanwhile(gone), metrics=METRICS, progress=False)
    assert gone in res.skipped and gone not in _slugs(out)
    err = capsys.readouterr().err
    assert f"run {gone}" in err and "left out of the results" in err  # before: nothing said
    assert gone in (out / "summary.md").read_text()


def _rewrite(run_dir):
    """What a concurrent ``distgen run`` of a finished run does to its folder: ``DONE`` removed first, a new table, ``DONE``
    written last (here with the same bytes as before: the table is what changed)."""
    (run_dir / DONE_FILE).unlink()
    (run_dir / METRICS_FILE).write_text("perturbation,mse,pearson_delta\nP0,9.0,-9.0\nP1,9.0,-9.0\n")
    (run_dir / DONE_FILE).write_text("ok\n")


def _values(out):
    with (out / "results.csv").open() as fh:
        return {row["mse"] for row in csv.DictReader(fh)}


def _named_rewritten(out, slug, err):
    assert f"run {slug} was finished when the sweep started, but its DONE was rewritten during the sweep" in err
    assert "left out of the results" in err
    assert "rewritten during the sweep" in json.loads((out / "summary.json").read_text())["left_out"][slug]
    assert f"`{slug}`: finished when the sweep started, but its DONE was rewritten" in (out / "summary.md").read_text()


def test_a_skipped_run_whose_done_was_rewritten_during_the_pass_is_named_not_aggregated(tmp_path, base, capsys):  # noqa: F811
    """The pass decided from the ``DONE`` it read (skipped as finished); the table there at the end is another
    evaluation's. Its rows would mix into the results under the pass's decision: they are left out and the run named."""
    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=FakeRunner(), metrics=METRICS, progress=False)
    (out / "runs" / "description=good__seed0" / DONE_FILE).unlink()  # this one runs again
    rewritten = "description=bad__seed0"
    capsys.readouterr()
    res = sweep(base, GRID, out, runner=Meanwhile(rewritten, _rewrite), metrics=METRICS, progress=False)
    assert rewritten in res.skipped
    assert rewritten not in _slugs(out) and "9.0" not in _values(out)  # before: its new table aggregated, nothing said
    _named_rewritten(out, rewritten, capsys.readouterr().err)


def test_a_done_rewritten_while_the_sweep_reads_its_table_is_named(tmp_path, base, capsys, monkeypatch):  # noqa: F811
    """A rewrite that begins after the aggregation looked at ``DONE`` and before it read the table is caught by ``DONE``'s
    ``stat`` after the reading: the rows read may be the new table's."""
    from distgen.pipeline import sweep as sweep_module

    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=FakeRunner(), metrics=METRICS, progress=False)
    rewritten = "description=good__seed1"
    real = sweep_module.read_metrics_csv

    def read(path):
        if path.parent.parent.name == rewritten and not getattr(read, "done", False):
            read.done = True
            _rewrite(path.parent.parent)
        return real(path)

    monkeypatch.setattr(sweep_module, "read_metrics_csv", read)
    capsys.readouterr()
    res = sweep(base, GRID, out, runner=FakeRunner(), metrics=METRICS, progress=False)
    assert len(res.skipped) == 4 and getattr(read, "done", False)
    assert rewritten not in _slugs(out) and "9.0" not in _values(out)  # before: aggregated from the table read
    _named_rewritten(out, rewritten, capsys.readouterr().err)


def _renumbered(monkeypatch):
    """``os.stat`` of the ``DONE`` files named in the returned set reports another inode number (and device) than the
    file has, as FAT/exFAT (inode numbers handed out anew once a file's inode leaves the kernel's cache), CIFS mounted
    ``noserverino`` and FUSE file systems without stable inode numbers (sshfs) report a file nothing wrote."""
    import os
    import stat as stat_module

    renumbered: set[str] = set()
    real = os.stat

    def fake(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) in renumbered:
            fields = list(st)
            fields[stat_module.ST_INO] += 1000
            fields[stat_module.ST_DEV] += 1
            return os.stat_result(fields, {k: getattr(st, k) for k in dir(st) if k.endswith("_ns")})
        return st

    monkeypatch.setattr(os, "stat", fake)
    return renumbered


def test_a_skipped_run_whose_done_is_renumbered_during_the_pass_is_aggregated(tmp_path, base, capsys, monkeypatch):  # noqa: F811
    """Nothing wrote the run: its ``DONE`` holds the bytes the pass read, with the same size and modification time. A
    file system that numbers files anew (FAT/exFAT after the inode left the cache, CIFS ``noserverino``, sshfs) gives it
    another inode number by the end of a long pass; it is not "rewritten", and its rows are in the results."""
    out = tmp_path / "sw"
    sweep(base, GRID, out, runner=FakeRunner(), metrics=METRICS, progress=False)
    (out / "runs" / "description=good__seed0" / DONE_FILE).unlink()  # this one runs again
    kept = "description=bad__seed0"
    renumbered = _renumbered(monkeypatch)
    capsys.readouterr()
    res = sweep(base, GRID, out, runner=Meanwhile(kept, lambda run_dir: renumbered.add(str(run_dir / DONE_FILE))),
                metrics=METRICS, progress=False)
    assert kept in res.skipped and renumbered
    assert kept in _slugs(out) and len(_slugs(out)) == 4  # before: left out as "rewritten during the sweep"
    assert "left out" not in capsys.readouterr().err and "left_out" not in json.loads((out / "summary.json").read_text())


def test_a_done_replaced_by_other_bytes_of_its_size_and_time_is_rewritten(tmp_path):
    """Where the inode number differs and the size and modification time do not (a ``cp -p``/``rsync -a`` of another
    run's ``DONE`` over it, or a renumbering file system), the bytes decide: others are a rewrite, the same are not."""
    import os

    from distgen.pipeline.run_folder import RunFolder

    for i, (text, said) in enumerate((('{"metrics": ["r2x"]}\n', "rewritten"), ('{"metrics": ["mse"]}\n', None))):
        run_dir = tmp_path / str(i)
        run_dir.mkdir()
        done = run_dir / DONE_FILE
        done.write_text('{"metrics": ["mse"]}\n')
        folder, st = RunFolder.read(run_dir), done.stat()
        os.link(done, tmp_path / f"kept{i}")  # the old inode stays taken: the new file gets another number
        (run_dir / "new").write_text(text)
        os.utime(run_dir / "new", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(run_dir / "new", done)
        now = done.stat()
        assert now.st_ino != st.st_ino and (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert folder.changed() == said, text


class Afterwards(FakeRunner):
    """Runs every run; while the second runs, ``change`` is done to the folder of the first, which this pass finished
    (and recorded) before, as a concurrent ``distgen run`` of that run would."""

    def __init__(self, change):
        super().__init__()
        self.change = change

    def __call__(self, config, run, run_dir):
        if len(self.calls) == 1:
            self.change(run_dir.parent / self.calls[0])
        return super().__call__(config, run, run_dir)


def test_a_run_this_pass_finished_and_a_concurrent_run_rewrote_is_named_not_aggregated(tmp_path, base, capsys):  # noqa: F811
    """The pass aggregates the evaluation its run wrote: one written again by a concurrent re-run before the pass ends
    (another table) is left out and named, as a skipped run's is."""
    out = tmp_path / "sw"
    runner = Afterwards(_rewrite)
    res = sweep(base, GRID, out, runner=runner, metrics=METRICS, progress=False)
    first = runner.calls[0]
    assert first in res.finished and len(res.finished) == 4
    assert first not in _slugs(out) and "9.0" not in _values(out)  # before: its new table aggregated, nothing said
    err = capsys.readouterr().err
    assert f"run {first} was finished in this sweep, but its DONE was rewritten during the sweep" in err
    assert "rewritten during the sweep" in json.loads((out / "summary.json").read_text())["left_out"][first]
    assert f"`{first}`: finished in this sweep, but its DONE was rewritten" in (out / "summary.md").read_text()


def test_a_run_this_pass_finished_whose_done_went_before_the_end_is_named(tmp_path, base, capsys):  # noqa: F811
    out = tmp_path / "sw"
    runner = Afterwards(lambda run_dir: (run_dir / DONE_FILE).unlink())
    res = sweep(base, GRID, out, runner=runner, metrics=METRICS, progress=False)
    first = runner.calls[0]
    assert first in res.finished and first not in _slugs(out) and len(_slugs(out)) == 3
    err = capsys.readouterr().err  # before: left out of the results without a word
    assert f"run {first} was finished in this sweep, but its DONE or eval/metrics.csv went during the sweep" in err
    assert first in json.loads((out / "summary.json").read_text())["left_out"]
