"""A run folder made read-only (``chmod -R a-w``: an archived run, a shared results folder) and used from there:
predicting and evaluating into another folder read it only; writing into it (a resume, a prediction or a report
inside it) is refused saying the folder is not writable and where to write instead (was: "permission denied:
'RUN/.distgen.lock'", a hidden file the user never named, or a report's hidden temp file)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distgen.cli import main
from distgen.data import bundled

from .conftest import EVAL, without_write_rights

pytestmark = pytest.mark.slow  # each runs the CLI in a process that cannot write read-only folders (5-10 s a call)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*without_write_rights(), sys.executable, "-m", "distgen", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _read_only_copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    for p in [to, *to.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    return to


@pytest.fixture
def read_only_run(made, tmp_path):
    ro = _read_only_copy(made / "run", tmp_path / "archive" / "run")
    yield ro
    for p in [ro, *ro.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


def test_a_read_only_run_predicts_into_another_folder_and_refuses_one_inside_it_naming_the_fix(read_only_run, made, tmp_path):
    done = _cli("predict", str(read_only_run), "--out", str(tmp_path / "p.h5ad"))
    assert done.returncode == 0, done.stderr
    inside = _cli("predict", str(read_only_run), "--out", str(read_only_run / "pred.h5ad"))
    assert inside.returncode == 1
    err = inside.stderr
    assert "Traceback" not in err and ".distgen.lock" not in err
    assert f"{read_only_run} is not writable" in err and "--out" in err and "outside the run folder" in err
    assert not (read_only_run / "pred.h5ad").exists()


def test_a_resume_of_a_read_only_run_says_it_needs_a_writable_folder(read_only_run, made, tmp_path):
    done = _cli("train", str(made / "t.yaml"), "--out", str(read_only_run), "--resume")
    assert done.returncode == 1
    err = done.stderr
    assert "Traceback" not in err and ".distgen.lock" not in err
    assert f"{read_only_run} is not writable" in err and "a resume writes" in err
    assert f"--resume {read_only_run / 'checkpoints'}" in err  # the branch into a new folder, which works read-only
    # an earlier wording added "(its newest: checkpoints/latest)", and --resume RUN/checkpoints/latest is
    # refused ("is a file"); the run folder itself is the newest checkpoint's name, and the branch from it works read-only
    assert "checkpoints/latest" not in err and f"(its newest: --resume {read_only_run})" in err
    branch = _cli("train", str(made / "t.yaml"), "train.steps=3", "--out", str(tmp_path / "branch"), "--resume", str(read_only_run))
    assert branch.returncode == 0, branch.stderr
    assert (tmp_path / "branch" / "checkpoints" / "step_00000003").is_dir()


def test_a_report_of_a_read_only_evaluation_folder_says_to_write_it_elsewhere(made, tmp_path):
    ev = tmp_path / "ev"
    assert main(["evaluate", "--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad"), "--out", str(ev), *EVAL]) == 0
    ro = _read_only_copy(ev, tmp_path / "archive" / "ev")
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        refused = subprocess.run([*without_write_rights(), sys.executable, "-m", "distgen.report", str(ro)],
                                 capture_output=True, text=True, env=env, timeout=300)
        assert refused.returncode == 1
        assert ".report.html" not in refused.stderr.replace("report.html ", "")  # no hidden temp file named
        assert f"{ro} is not writable" in refused.stderr and "--out" in refused.stderr
        elsewhere = subprocess.run([*without_write_rights(), sys.executable, "-m", "distgen.report", str(ro), "--out",
                                    str(tmp_path / "page.html")], capture_output=True, text=True, env=env, timeout=300)
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert (tmp_path / "page.html").stat().st_size > 0
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


# Messages that said something untrue for inputs it did not try.


def test_a_new_training_into_a_read_only_folder_is_not_told_to_resume(made, tmp_path):
    """An empty read-only --out (and one to be made inside it): a new run, not a resume. The first pass said "a resume
    writes its checkpoints ... distgen train CONFIG --out NEW --resume FOLDER/checkpoints/STEP" (no run there), and for the
    folder to be made "FOLDER/sub is not writable ..., so FOLDER/sub cannot be made in it" (the folder not writable is
    FOLDER, FOLDER/sub does not exist)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    empty.chmod(0o555)
    try:
        done = _cli("train", str(made / "t.yaml"), "--out", str(empty))
        assert done.returncode == 1
        assert f"{empty} is not writable" in done.stderr and "resume" not in done.stderr and "--out" in done.stderr
        inside = _cli("train", str(made / "t.yaml"), "--out", str(empty / "a" / "b"))
        assert inside.returncode == 1
        assert f"{empty} is not writable" in inside.stderr and f"{empty / 'a'} is not writable" not in inside.stderr
        assert f"so {empty / 'a' / 'b'} cannot be made" in inside.stderr
    finally:
        empty.chmod(0o755)


def test_a_report_of_a_folder_with_an_unreadable_input_names_that_file_not_a_write(made, tmp_path):
    """A report whose input cannot be read (metrics.csv without read rights) beside the page: the first pass said the
    folder "is not writable, so the page cannot be written" (any permission error of a file in the page's folder)."""
    ev = tmp_path / "ev"
    assert main(["evaluate", "--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad"), "--out", str(ev), *EVAL]) == 0
    (ev / "metrics.csv").chmod(0o200)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([*without_write_rights(), sys.executable, "-m", "distgen.report", str(ev), "--no-cells"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 1
        assert "metrics.csv" in done.stderr and "not writable" not in done.stderr
    finally:
        (ev / "metrics.csv").chmod(0o644)


def test_a_record_not_kept_in_a_read_only_run_is_not_told_to_predict_elsewhere(made, tmp_path):
    """A run trained before data records, read-only, predicting another file into another folder: the record made from
    its training file cannot be kept in it. The first pass's note quoted the lock's advice for a prediction written into
    the run folder ("write it outside the run folder (--out OTHER/pred.h5ad)"), which this prediction already does."""
    run = tmp_path / "run"
    shutil.copytree(made / "run", run)
    (run / "data_record.json").unlink()
    ro = _read_only_copy(run, tmp_path / "archive" / "run")
    try:
        bundled.norman_k562().write_h5ad(tmp_path / "cells.h5ad")
        done = _cli("predict", str(ro), "--data", str(tmp_path / "cells.h5ad"), "--out", str(tmp_path / "p.h5ad"))
        assert done.returncode == 0, done.stderr
        assert f"not kept in {ro}" in done.stderr and "not writable" in done.stderr
        assert "write it outside" not in done.stderr and "takes its lock" not in done.stderr and ".distgen.lock" not in done.stderr
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def test_a_lock_file_left_by_another_user_in_a_writable_folder_is_named_not_the_folder(tmp_path):
    """A shared, writable folder holding another user's lock file (its process killed): the first pass said the folder "is
    not writable" (e0d0346 named the lock file, truly); the file is named again."""
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / ".distgen.lock").write_text("{}")
    (folder / ".distgen.lock").chmod(0o444)
    code = (f"from distgen.train.lock import RunLock\ntry:\n    RunLock({str(folder)!r}, 'train').acquire()\n"
            "except PermissionError as e:\n    print(e)\n")
    done = subprocess.run([*without_write_rights(), sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert str(folder / ".distgen.lock") in done.stdout and f"{folder} is not writable" not in done.stdout


def test_a_finished_experiment_in_a_read_only_folder_prints_its_summary_and_an_unfinished_one_is_refused(made, tmp_path):
    """Left by the portability round: ``distgen run`` of a finished experiment only prints its summary, yet a read-only
    folder was refused at its lock ("is not writable ... distgen run writes ..."). Now ``DONE`` is read without the lock
    where the lock cannot be taken; an unfinished experiment there (``DONE`` gone) is still refused saying so."""
    exp = tmp_path / "exp"
    args = ["--metrics", "mse", "--no-plots", "--no-progress"]
    assert main(["run", str(made / "t.yaml"), "--out", str(exp), *args]) == 0
    ro = _read_only_copy(exp, tmp_path / "archive" / "exp")
    shutil.copytree(exp, tmp_path / "part")
    (tmp_path / "part" / "DONE").unlink()
    part = _read_only_copy(tmp_path / "part", tmp_path / "archive" / "part")
    try:
        done = _cli("run", str(made / "t.yaml"), "--out", str(ro), *args)
        assert done.returncode == 0, done.stderr
        assert "already holds this finished experiment" in done.stderr and "mse" in done.stdout
        assert not (ro / ".distgen.lock").exists()
        refused = _cli("run", str(made / "t.yaml"), "--out", str(part), *args)
        assert refused.returncode == 1
        assert f"{part} is not writable" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        for folder in (ro, part):
            for p in [folder, *folder.rglob("*")]:
                p.chmod(p.stat().st_mode | 0o200)
