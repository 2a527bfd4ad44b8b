"""Issue 17 item 5: predict and evaluate never write over a run's own files, and over someone else's
existing file only with --overwrite; a previous output of the same command is replaced."""

import pytest

from distgen.cli import main
from distgen.pipeline.experiment import run
from tests.pipeline.conftest import DATA, EVAL


def _refused(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("owned", ["config.yaml", "split.json", "metrics.csv", "checkpoints/x.h5ad"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_predict_never_writes_over_the_runs_own_files(made, capsys, owned, overwrite):
    run_dir = made / "run"
    target = run_dir / owned
    before = target.read_bytes() if target.exists() else None
    capsys.readouterr()
    assert main(["predict", str(run_dir), "--out", str(target), *overwrite]) == 1
    _refused(capsys, f"is {owned}, a file of the train run folder", "never writes over a run's own files")
    assert (target.read_bytes() if target.exists() else None) == before


def test_predict_replaces_only_its_own_previous_output(made, tmp_path, capsys):
    run_dir = made / "run"
    notes = tmp_path / "notes.h5ad"
    notes.write_text("my notes")
    assert main(["predict", str(run_dir), "--out", str(notes)]) == 1
    _refused(capsys, "exists and is not a previous pred output of distgen predict", "--overwrite")
    assert notes.read_text() == "my notes"
    # a truth file is not a prediction either
    assert main(["predict", str(run_dir), "--out", str(made / "real.h5ad")]) == 1
    _refused(capsys, "not a previous pred output")
    assert main(["predict", str(run_dir), "--out", str(notes), "--overwrite"]) == 0
    assert notes.read_bytes()[:4] == b"\x89HDF"
    # a previous prediction (and truth) is replaced: rerunning the same command works
    assert main(["predict", str(run_dir), "--out", str(notes), "--real", str(made / "real.h5ad")]) == 0
    # into the run folder itself is allowed: nothing there is named pred.h5ad by the run
    assert main(["predict", str(run_dir), "--out", str(run_dir / "pred.h5ad")]) == 0
    assert main(["predict", str(run_dir), "--out", str(tmp_path / "x.h5ad"), "--real", str(tmp_path / "x.h5ad")]) == 1
    _refused(capsys, "--out and --real are the same file")


def test_evaluate_never_writes_into_a_run_folder(made, capsys):
    run_dir = made / "run"
    before = (run_dir / "metrics.csv").read_bytes()
    pair = ["--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad")]
    for extra in ([], ["--overwrite"]):
        assert main(["evaluate", *pair, "--out", str(run_dir), *EVAL, *extra]) == 1
        _refused(capsys, "is a train run folder", "never writes into a run's own files", "metrics.csv")
    assert (run_dir / "metrics.csv").read_bytes() == before  # the training log is intact
    exp = made / "exp"
    run({"model": {"name": "control"}, "data": DATA, "evaluate": {"plots": False}}, exp, progress=False, metrics=["mse"], plots=False)
    assert main(["evaluate", *pair, "--out", str(exp / "eval"), *EVAL, "--overwrite"]) == 1
    _refused(capsys, "is eval/metrics.csv, a file of the experiment run folder")


def test_evaluate_replaces_an_earlier_evaluation_but_not_other_files(made, tmp_path, capsys):
    pair = ["--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad")]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.csv").write_text("my,table\n")
    assert main(["evaluate", *pair, "--out", str(mine), *EVAL]) == 1
    _refused(capsys, "already holds metrics.csv, not written by distgen evaluate", "--overwrite")
    assert (mine / "metrics.csv").read_text() == "my,table\n"
    assert main(["evaluate", *pair, "--out", str(mine), *EVAL, "--overwrite"]) == 0
    assert (mine / "metrics.csv").read_text() != "my,table\n"
    assert main(["evaluate", *pair, "--out", str(mine), *EVAL]) == 0  # an earlier evaluation: replaced


@pytest.mark.parametrize("profile", [[], ["--profile", "vcc2026"]], ids=["default", "profile"])
def test_a_refused_evaluate_leaves_no_empty_folder_it_made(tmp_path, capsys, profile):
    """A typo in --real used to leave the (empty, nested) --out folders behind; folders that existed stay."""
    kept = tmp_path / "kept"
    kept.mkdir()
    for out in (tmp_path / "new" / "deeper" / "eval", kept / "eval", kept):
        rc = main(["evaluate", "--pred", str(tmp_path / "no_pred.h5ad"), "--real", str(tmp_path / "no_real.h5ad"),
                   "--out", str(out), *profile])
        assert rc == 1
        _refused(capsys, "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"] and list(kept.iterdir()) == []
