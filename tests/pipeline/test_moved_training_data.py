"""A run whose training file moved (another folder, another machine, a relative path read from elsewhere), continued
with a config that names the file where it is now: the path is not the data, its content is (the run's recorded hash).

Before: ``distgen train --resume`` refused "written under a different config (data.dataset: 'a/cells.h5ad' ->
'b/cells.h5ad'). Resume with the run's own config.yaml", whose path is the one that is gone; ``distgen run`` (and a
sweep's runs) refused "holds an experiment of another config (data.dataset ...)": such a run could not be continued at
all. Another file at the new path is still refused."""

import shutil

import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.data import bundled

from .conftest import TINY

EVAL = ["--metrics", "mse", "--no-progress"]


def _config(path, data, steps):
    return save_yaml({**TINY, "data": {**TINY["data"], "dataset": str(data)}, "train": {**TINY["train"], "steps": steps},
                      "evaluate": {"ceiling": False, "baselines": []}}, path)


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """A 2-step run and a finished experiment trained on ``first/cells.h5ad``, then the file moved to ``now/cells.h5ad``,
    and ``other.h5ad``: the same cells with other values."""
    root = tmp_path_factory.mktemp("moved")
    (root / "first").mkdir()
    (root / "now").mkdir()
    adata = bundled.norman_k562()
    adata.write_h5ad(root / "first" / "cells.h5ad")
    assert main(["train", str(_config(root / "t.yaml", root / "first" / "cells.h5ad", 2)), "--out", str(root / "run")]) == 0
    assert main(["run", str(root / "t.yaml"), "--out", str(root / "exp"), *EVAL]) == 0
    shutil.move(root / "first" / "cells.h5ad", root / "now" / "cells.h5ad")
    adata.X = adata.X * 1.01
    adata.write_h5ad(root / "other.h5ad")
    return root


def test_a_run_whose_training_file_moved_resumes_with_a_config_naming_its_new_path(moved, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(moved / "run", run)
    assert main(["train", str(_config(tmp_path / "t4.yaml", moved / "now" / "cells.h5ad", 4)), "--out", str(run), "--resume"]) == 0
    assert (run / "checkpoints" / "step_00000004").is_dir()
    # config.yaml names the file where it is now; the checkpoint of before the move still predicts under it
    assert "now" in (run / "config.yaml").read_text()
    for ckpt in ("step_00000002", "step_00000004"):
        assert main(["predict", str(run), "--checkpoint", str(run / "checkpoints" / ckpt), "--out", str(tmp_path / f"{ckpt}.h5ad")]) == 0
    capsys.readouterr()
    other = tmp_path / "other_run"
    shutil.copytree(moved / "run", other)
    assert main(["train", str(_config(tmp_path / "o.yaml", moved / "other.h5ad", 4)), "--out", str(other), "--resume"]) != 0
    assert "changed since this run was trained" in capsys.readouterr().err
    assert not (other / "checkpoints" / "step_00000004").exists()


def test_a_finished_experiment_whose_training_file_moved_is_read_with_a_config_naming_its_new_path(moved, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    capsys.readouterr()
    assert main(["run", str(_config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)), "--out", str(exp), *EVAL]) == 0
    (exp / "DONE").unlink()  # unfinished: continued (evaluated again, nothing trained) on the moved file
    assert main(["run", str(tmp_path / "t.yaml"), "--out", str(exp), *EVAL]) == 0
    assert (exp / "DONE").exists()
    capsys.readouterr()
    assert main(["run", str(_config(tmp_path / "o.yaml", moved / "other.h5ad", 2)), "--out", str(exp), *EVAL]) == 2
    err = capsys.readouterr().err
    assert "holds an experiment of another config (data.dataset" in err and "holds other data" in err


def test_a_run_without_its_manifest_is_not_predicted_on_a_file_its_config_was_edited_to_name(moved, tmp_path, capsys):
    """The prediction's config check leaves ``data.dataset`` out only when the data read was compared with a recorded
    hash: a run copied without ``manifest.json`` (which holds that hash) whose ``config.yaml`` was edited to name another
    file is refused as an edited config (the config differs from the checkpoint's), not predicted on that file's cells."""
    run = tmp_path / "run"
    shutil.copytree(moved / "run", run)
    (run / "manifest.json").unlink()
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(str(moved / "first" / "cells.h5ad"), str(moved / "other.h5ad")))
    assert str(moved / "other.h5ad") in config.read_text()
    capsys.readouterr()
    assert main(["predict", str(run), "--out", str(tmp_path / "pred.h5ad")]) != 0
    assert "differs from the config checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "pred.h5ad").exists()
    # the file where it moved to, named in config.yaml, is still read (its content is compared with the run's record)
    config.write_text(config.read_text().replace(str(moved / "other.h5ad"), str(moved / "now" / "cells.h5ad")))
    assert main(["predict", str(run), "--out", str(tmp_path / "pred.h5ad"), "--train-data", str(moved / "now" / "cells.h5ad")]) == 0


@pytest.fixture
def hashes(monkeypatch):
    """Each load of the data by ``same_data_moved`` (the hash of the file at the new path), counted."""
    from distgen.pipeline import experiment

    calls = []
    real = experiment.Dataset.load

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(experiment.Dataset, "load", counted)
    return calls


def test_a_finished_experiment_whose_training_file_moved_hashes_it_once_not_at_every_run(moved, tmp_path, hashes, capsys):
    """``experiment.yaml`` keeps the path the experiment was trained on, so without a record every later ``distgen run``
    (and every sweep, twice: its pre-check and the run) of the finished experiment would hash the moved file again (a
    full read of it). The file checked is recorded (``data_moved.json``: its path and stamp, with the hash it matched);
    the next run reads that record and no file."""
    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    config = _config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert len(hashes) == 1
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert len(hashes) == 1  # read the record: the file at the new path is the one checked, unchanged
    assert "already holds this finished experiment" in capsys.readouterr().err


def _checked_copy(moved, tmp_path):
    """A copy of the finished experiment and of the moved file, run once with a config naming the copy (which checks the
    file and records it in ``data_moved.json``): (experiment folder, data file, config)."""
    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    data = tmp_path / "cells.h5ad"
    shutil.copy(moved / "now" / "cells.h5ad", data)
    config = _config(tmp_path / "t.yaml", data, 2)
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    return exp, data, config


def test_a_moved_training_file_changed_after_it_was_checked_is_still_refused(moved, tmp_path, hashes, capsys):
    exp, data, config = _checked_copy(moved, tmp_path)
    shutil.copy(moved / "other.h5ad", data)  # other values at the checked path
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 2
    err = capsys.readouterr().err
    assert "holds an experiment of another config (data.dataset" in err and "holds other data" in err
    assert len(hashes) == 2


def _rewrite(src, data, how):
    """Put ``src``'s bytes at ``data`` with ``data``'s modification time set back: written into the same inode, or a new
    file renamed over it. Returns whether ``file_stamp`` (device, inode, size, modification time) is unchanged."""
    import os

    from distgen.data.disk import file_stamp

    before, old = os.stat(data), file_stamp(data)
    if how == "in place":
        with open(data, "r+b") as f:
            f.write(src.read_bytes())
            f.truncate()
    else:
        shutil.copy(src, data.with_suffix(".tmp"))
        os.replace(data.with_suffix(".tmp"), data)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert data.read_bytes() == src.read_bytes()
    return file_stamp(data) == old


@pytest.mark.parametrize("how", ["in place", "renamed over it"])
def test_what_the_moved_file_record_trusts_and_how_to_force_a_check(moved, tmp_path, hashes, capsys, how):
    """``data_moved.json`` trusts the file's stamp (docs/training.md, "The data file may move"): other data of the same
    size written into the same file with its modification time set back keeps the stamp, and a finished experiment is
    read by its record without hashing the file; a file renamed over it (a new inode) is hashed again and refused.
    Removing ``data_moved.json`` forces the check."""
    from distgen.pipeline.run_folder import MOVED_RECORD

    exp, data, config = _checked_copy(moved, tmp_path)
    assert len(hashes) == 1 and data.stat().st_size == (moved / "other.h5ad").stat().st_size  # other values, as many bytes
    kept = _rewrite(moved / "other.h5ad", data, how)
    assert kept == (how == "in place")
    capsys.readouterr()
    if kept:  # trusted: the finished summary is printed (no cell of the file is read for it)
        assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0 and len(hashes) == 1
        assert "already holds this finished experiment" in capsys.readouterr().err
        (exp / MOVED_RECORD).unlink()  # the way to force the check
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 2 and len(hashes) == 2
    err = capsys.readouterr().err
    assert "holds an experiment of another config (data.dataset" in err and "holds other data" in err


def test_a_run_evaluated_again_hashes_the_data_it_reads_whatever_the_record_says(moved, tmp_path, hashes, capsys):
    """The record lets a finished experiment be read, nothing more: evaluating it again with other ``--metrics`` reads the
    file, and the data read is compared with the run's hash, so a file the record wrongly trusts (same stamp, other data)
    is refused there rather than evaluated."""
    exp, data, config = _checked_copy(moved, tmp_path)
    assert _rewrite(moved / "other.h5ad", data, "in place")
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(exp), "--metrics", "mse,pearson_delta", "--no-progress"]) == 1
    assert "changed since this run was trained" in capsys.readouterr().err
    assert not (exp / "eval" / "metrics.csv").read_text().count("pearson_delta")  # nothing evaluated on the other data


def _fit_resumed(moved, tmp_path, data_file):
    """``distgen.fit(..., resume=)`` of a copy of the run, from Python, with a config naming ``data_file``."""
    import distgen
    from distgen.config import load_config

    run = tmp_path / "run"
    shutil.copytree(moved / "run", run)
    doc = load_config(_config(tmp_path / "t4.yaml", data_file, 4))
    data = distgen.load_data(**doc["data"])
    model = distgen.build(doc, data)
    return run, lambda: distgen.fit(model, data, config=doc, run_dir=run, resume=run)


def test_fit_resumes_a_run_whose_training_file_moved_as_distgen_train_does(moved, tmp_path):
    """``distgen.fit(..., resume=)`` accepts the moved file by its content hash (``same_data_at``) as ``distgen train
    --resume`` does, not refusing it as "written under a different config (data.dataset: ...)"."""
    run, resume = _fit_resumed(moved, tmp_path, moved / "now" / "cells.h5ad")
    result = resume()
    assert result is not None and result.step == 4
    assert (run / "checkpoints" / "step_00000004").is_dir() and "now" in (run / "config.yaml").read_text()


def test_fit_refuses_to_resume_on_other_data_at_the_new_path(moved, tmp_path):
    run, resume = _fit_resumed(moved, tmp_path, moved / "other.h5ad")
    with pytest.raises(ValueError, match="changed since this run was trained"):
        resume()
    assert not (run / "checkpoints" / "step_00000004").exists()


def test_the_moved_file_record_is_written_under_the_lock_only(moved, tmp_path, hashes):
    """``data_moved.json`` is a cache each of whose versions is true (the file's stamp is checked when it is read, and it
    is replaced whole), so two writers lose nothing: a finished experiment's read writes it without the folder's lock, a
    folder another process holds included (taking the lock for that moment would refuse a ``distgen run`` started into
    the folder then, and take over a stale lock file), and the file is hashed once."""
    import subprocess
    import sys

    from distgen.pipeline.run_folder import MOVED_RECORD

    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    config = _config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from distgen.train.lock import RunLock; "
                               f"RunLock({str(exp)!r}, 'run').acquire(); print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0  # finished: read without the lock
        assert (exp / MOVED_RECORD).is_file() and len(hashes) == 1
    finally:
        holder.communicate("")
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert len(hashes) == 1


@pytest.fixture
def no_lock(monkeypatch):
    """``RunLock`` in ``distgen.pipeline.experiment`` made to fail the test when taken."""
    from distgen.pipeline import experiment

    def refused(*args, **kwargs):
        raise AssertionError(f"a lock was taken: RunLock{args}")

    monkeypatch.setattr(experiment, "RunLock", refused)


def test_the_finished_check_takes_no_lock_and_writes_nothing(moved, tmp_path, hashes, no_lock):
    """``check_same_experiment`` (a sweep's check of its run folders, ``is_finished``, ``finished_or_none``) only reads and
    returns the record it checked, taking no lock (taking the run folder's lock to write ``data_moved.json`` would refuse
    a ``distgen run`` into that folder at that instant as "in use"); ``distgen run`` writes the record itself."""
    from distgen.pipeline.experiment import experiment_document
    from distgen.pipeline.run_folder import MOVED_RECORD, check_same_experiment, finished_or_none, is_finished

    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    doc = experiment_document(_config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2), (), False)
    record = check_same_experiment(exp, doc)
    assert record is not None and record["dataset"] == str(moved / "now" / "cells.h5ad")
    assert is_finished(exp, doc, ["mse"])
    assert finished_or_none(exp, doc, ["mse"]) is not None
    assert not (exp / MOVED_RECORD).exists() and len(hashes) == 3


def test_an_unfinished_experiment_on_a_moved_file_hashes_it_once_and_records_it(moved, tmp_path, hashes):
    """The read before the lock hashed the file; the check under the lock reuses what it found (the file's stamp unchanged)
    and the run records it: the data is read once for the check (then once more by the run itself)."""
    from distgen.pipeline.run_folder import MOVED_RECORD

    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    (exp / "DONE").unlink()
    config = _config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert (exp / MOVED_RECORD).is_file() and len(hashes) == 2  # the check's hash, and the run's own load
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert len(hashes) == 2


def test_a_sweep_records_the_moved_file_of_its_finished_run_under_its_own_lock(moved, tmp_path, hashes, no_lock):
    """A sweep skips its finished runs (no ``distgen run`` is started for them): its check of the run folder is where the
    moved file is hashed, and the sweep, which holds its folder's lock, records it (its run folders are its to write, as
    their ``DONE``), taking no run folder's lock: the next sweep reads the record and hashes nothing."""
    from distgen.config import load_yaml
    from distgen.pipeline.run_folder import MOVED_RECORD
    from distgen.pipeline.sweep import sweep

    def copied(config, run, run_dir):  # the runner of the first sweep: the finished experiment, made elsewhere
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(moved / "exp", run_dir)
        doc = load_yaml(run_dir / "experiment.yaml")  # the run's own settings, its data at the path it was trained on
        save_yaml({**doc, "description": "a", "train": {**doc["train"], "seed": 0}}, run_dir / "experiment.yaml")
        return 0

    config = _config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)
    out = tmp_path / "sw"
    sweep(str(config), {"description": ["a"]}, out, seeds=[0], runner=copied, metrics=["mse"], progress=False)
    (run_dir,) = (out / "runs").iterdir()
    assert not (run_dir / MOVED_RECORD).exists() and hashes == []

    def never(config, run, run_dir):
        raise AssertionError("a finished run was run again")

    sweep(str(config), {"description": ["a"]}, out, seeds=[0], runner=never, metrics=["mse"], progress=False)
    assert (run_dir / MOVED_RECORD).is_file() and len(hashes) == 1
    sweep(str(config), {"description": ["a"]}, out, seeds=[0], runner=never, metrics=["mse"], progress=False)
    assert len(hashes) == 1


def test_distgen_run_of_a_finished_experiment_takes_no_lock_and_records_the_moved_file(moved, tmp_path, hashes, no_lock,
                                                                                       capsys):
    """``distgen run`` of a finished experiment writes ``data_moved.json`` without the folder's lock (taking it for a moment
    would refuse a ``distgen run`` with other ``--metrics`` started into the folder at that moment as "in use"): the
    record is true of the file whoever writes it (its stamp and the hash it matched, published whole), and the next read
    hashes nothing."""
    from distgen.pipeline.run_folder import MOVED_RECORD

    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    config = _config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert "mse" in capsys.readouterr().out and (exp / MOVED_RECORD).is_file() and len(hashes) == 1
    assert main(["run", str(config), "--out", str(exp), *EVAL]) == 0
    assert len(hashes) == 1


def test_a_stale_lock_beside_a_finished_experiment_on_a_moved_file_is_left_alone(moved, tmp_path, capsys):
    """A stale lock file beside a finished experiment is not taken over (no "warning: taking over the stale lock of ...",
    which under ``python -W error`` is an internal error after the summary's note) when ``data_moved.json`` is written:
    a finished experiment is read without touching its lock (docs/training.md)."""
    import json
    import socket

    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    stale = json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(), "since": "2026-01-01 00:00:00",
                        "purpose": "run", "command": "distgen run"})
    (exp / ".distgen.lock").write_text(stale)
    assert main(["run", str(_config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)), "--out", str(exp), *EVAL]) == 0
    captured = capsys.readouterr()
    assert "stale lock" not in captured.err and "mse" in captured.out
    assert (exp / ".distgen.lock").read_text() == stale


@pytest.mark.parametrize("how", ["held by another process", "not writable"])
def test_a_finished_experiment_on_a_moved_file_prints_its_summary_where_nothing_can_be_written(moved, tmp_path, capsys,
                                                                                              monkeypatch, how):
    """A finished experiment whose lock another process holds, or whose folder cannot be written (read-only, another
    user's), prints its summary; the record is written into the held folder (no lock needed) and not into the folder
    that cannot be written (its file is hashed again next time)."""
    import fcntl

    from distgen.pipeline import experiment

    exp = tmp_path / "exp"
    shutil.copytree(moved / "exp", exp)
    held = None
    if how == "held by another process":  # another open file description holds the flock, as another process would
        held = (exp / ".distgen.lock").open("w")
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # tests may run as root, where a read-only mode does not stop a write

        def refused(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(experiment, "atomic_write_text", refused)
    try:
        assert main(["run", str(_config(tmp_path / "t.yaml", moved / "now" / "cells.h5ad", 2)), "--out", str(exp), *EVAL]) == 0
    finally:
        if held is not None:
            held.close()
    captured = capsys.readouterr()
    assert "already holds this finished experiment" in captured.err and "mse" in captured.out
    assert (exp / experiment.MOVED_RECORD).exists() == (how == "held by another process")
