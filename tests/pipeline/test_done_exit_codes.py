"""Exit codes of a run folder's ``DONE`` that cannot be used, through the command line, by the rule of
docs/reliability.md's "Errors and exit codes" table (what the user must fix): a file in the run folder that cannot be
read, or is a folder where distgen writes a file, is fixed on disk (its permissions, or the folder removed), not in the
config or the command line, so both exit 1 (``InputFileError``: "an input file that is missing, a folder, unreadable").
A ``DONE`` that is a folder exited 2 (``ConfigError``), an unreadable one 1."""

import shutil
from pathlib import Path

import pytest

from distgen.cli import main
from distgen.errors import InputFileError
from distgen.pipeline import sweep as sweep_module
from distgen.pipeline.run_folder import DONE_FILE, RunFolder, check_done_replaceable

from .test_damaged_finished_run import finished as made  # noqa: F401  (the fixture)
from .test_run_folder_unreadable_done import denied  # noqa: F401  (the fixture)
from .test_sweep_read_only import _never, base, finished  # noqa: F401  (base, finished: the fixtures)

SLUG = "description=good__seed1"


def _folder(done: Path) -> None:
    done.unlink()
    done.mkdir()
    (done / "notes.txt").write_text("kept\n")


def _sweep(base, out, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sweep_module, "subprocess_runner", _never)
    return main(["sweep", str(base), "--grid", "description=[good,bad]", "--grid", "train.seed=[0,1]", "--out", str(out),
                 "--metrics", "mse", "pearson_delta"])


def _run(made, tmp_path):  # noqa: F811
    cfg, src = made
    out = tmp_path / "out"
    shutil.copytree(src, out)
    return out, ["run", str(cfg), "--out", str(out), "--metrics", "mse", "--no-plots"]


def test_distgen_sweep_of_a_done_folder_exits_1(finished, base, capsys, monkeypatch):  # noqa: F811
    done = finished / "runs" / SLUG / DONE_FILE
    _folder(done)
    capsys.readouterr()
    assert _sweep(base, finished, monkeypatch) == 1  # before: 2
    err = capsys.readouterr().err
    assert f"{done} is neither distgen run's record" in err and "it is a folder, not a file" in err
    assert (done / "notes.txt").read_text() == "kept\n"


def test_distgen_sweep_of_an_unreadable_done_exits_1(finished, base, capsys, monkeypatch, denied):  # noqa: F811
    capsys.readouterr()
    assert _sweep(base, finished, monkeypatch) == 1
    assert "cannot be read (Permission denied)" in capsys.readouterr().err


def test_distgen_run_of_a_done_folder_exits_1(made, tmp_path, capsys):  # noqa: F811
    out, argv = _run(made, tmp_path)
    _folder(out / DONE_FILE)
    capsys.readouterr()
    assert main(argv) == 1  # before: 2
    err = capsys.readouterr().err
    assert f"{out / DONE_FILE} is neither distgen run's record" in err and "remove it" in err


def test_distgen_run_of_an_unreadable_done_exits_1(made, tmp_path, capsys, denied):  # noqa: F811
    out, argv = _run(made, tmp_path)
    capsys.readouterr()
    assert main(argv) == 1
    assert f"{out / DONE_FILE} cannot be read (Permission denied)" in capsys.readouterr().err


def test_several_done_folders_are_one_input_file_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / DONE_FILE).mkdir(parents=True)
    with pytest.raises(InputFileError) as err:  # before: ConfigError
        check_done_replaceable([RunFolder.read(tmp_path / name) for name in ("a", "b")])
    assert str(err.value).startswith("2 run folders' DONE are folders")
