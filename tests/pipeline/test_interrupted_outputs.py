"""What a killed ``distgen evaluate`` / ``distgen predict`` leaves behind: an evaluation folder a rerun recognises as
its own (no --overwrite), tables never half-written, and a pred/real pair that cannot be mismatched silently."""

import csv
import os

import pytest

from distgen.cli import main
from tests.pipeline.conftest import EVAL


class Killed(BaseException):
    """Stands for the process being killed at that point (not an Exception: nothing may catch and carry on)."""


def _hidden_temps(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_an_evaluation_killed_before_its_summary_is_rerun_without_overwrite(made, tmp_path, monkeypatch, capsys):
    from distgen.evaluation import report

    pair = ["--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad")]
    out = tmp_path / "ev"

    def killed(*a, **k):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(report, "write_json", killed)  # metrics.csv and calibration.csv written, summary.json not
        assert main(["evaluate", *pair, "--out", str(out), *EVAL]) != 0  # the CLI reports what stopped it
    assert (out / "metrics.csv").is_file() and not (out / "summary.json").exists()
    capsys.readouterr()
    assert main(["evaluate", *pair, "--out", str(out), *EVAL]) == 0, capsys.readouterr().err  # was: "not written by distgen evaluate"
    assert (out / "summary.json").is_file() and not _hidden_temps(out)


def test_a_folder_that_is_not_an_evaluation_is_still_refused(made, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "calibration.csv").write_text("my,table\n")
    (mine / ".distgen-other").write_text("")  # a hidden file of another name marks nothing
    pair = ["--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad")]
    capsys.readouterr()
    assert main(["evaluate", *pair, "--out", str(mine), *EVAL]) == 1
    assert "not written by distgen evaluate" in capsys.readouterr().err
    assert (mine / "calibration.csv").read_text() == "my,table\n"


def test_a_table_killed_mid_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    from distgen.evaluation import report
    from distgen.evaluation.suite import MetricTable

    table = MetricTable(("A", "B", "C"), {"mse": [0.1, 0.2, 0.3]})
    path = tmp_path / "metrics.csv"
    report.write_csv(table, str(path))
    before = path.read_text()
    real_writerows = csv.DictWriter.writerows

    def writerows(self, rows):  # the header and one row are out, then the process dies
        real_writerows(self, rows[:1])
        raise Killed

    monkeypatch.setattr(csv.DictWriter, "writerows", writerows)
    with pytest.raises(Killed):
        report.write_csv(MetricTable(("A", "B", "C"), {"mse": [9.0, 9.0, 9.0]}), str(path))
    assert path.read_text() == before and not _hidden_temps(tmp_path)


def test_every_evaluation_file_goes_through_a_temp_file(made, tmp_path, monkeypatch, capsys):
    """Each file of an evaluation (tables, plots, summaries, page) is renamed into place, the mark first and the
    summary after the tables: a kill inside any of them leaves no partial file of that name."""
    from distgen import atomic
    from distgen.evaluation.report import EVALUATION_MARK

    published = []
    real_replace = os.replace

    def replace(src, dst):
        published.append(os.path.basename(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    out = tmp_path / "ev"
    pair = ["--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad")]
    assert main(["evaluate", *pair, "--out", str(out), "--metrics", "mse", "--no-ceiling", "--quiet"]) == 0, capsys.readouterr().err
    assert published[0] == EVALUATION_MARK
    assert published.index("summary.json") > max(published.index(f) for f in ("metrics.csv", "calibration.csv"))
    assert "report.html" in published and any(f.endswith(".png") for f in published)
    assert sorted(published) == sorted(p.name for p in out.iterdir())  # nothing is written any other way


def _predict(made, *extra):
    return main(["predict", str(made / "run"), "--out", str(made / "p2.h5ad"), "--real", str(made / "r2.h5ad"), *extra])


def test_a_prediction_killed_between_its_two_files_is_not_scored(made, tmp_path, monkeypatch, capsys):
    from distgen import atomic

    assert _predict(made) == 0
    real_before = (made / "r2.h5ad").read_bytes()
    renames = []
    real_replace = os.replace

    def replace(src, dst):  # the first file of the pair is renamed into place, then the process dies
        if str(dst).endswith(".pairing.json"):  # the pairing marker written before the renames (data/layout.write_pair)
            return real_replace(src, dst)
        if renames:
            raise Killed
        renames.append(dst)
        return real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(atomic.os, "replace", replace)
        assert _predict(made, "--max-cells", "3") != 0  # another truth: at most 3 cells a condition
    assert (made / "r2.h5ad").read_bytes() == real_before and renames == [str(made / "p2.h5ad")]
    assert not _hidden_temps(made)
    capsys.readouterr()
    code = main(["evaluate", "--pred", str(made / "p2.h5ad"), "--real", str(made / "r2.h5ad"), "--out", str(tmp_path / "ev"), *EVAL])
    err = capsys.readouterr().err
    assert code == 2 and "not one pair" in err and "Traceback" not in err, err
    assert not (tmp_path / "ev" / "metrics.csv").exists()
    # the fast reader of --profile evaluations refuses it too
    from distgen.evaluation.h5pair import read_pair_fast
    from distgen.types.layout import MismatchedPair

    with pytest.raises(MismatchedPair):
        read_pair_fast(made / "p2.h5ad", made / "r2.h5ad")


def test_predictions_of_the_same_truth_pair_with_each_others_truth(made, tmp_path, capsys):
    """Two predictions (other seeds) of the same cells record the same truth: either truth file scores either one."""
    assert _predict(made, "--seed", "5") == 0
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(made / "p2.h5ad"), "--real", str(made / "real.h5ad"), "--out", str(tmp_path / "ev"),
                 *EVAL]) == 0, capsys.readouterr().err
    import anndata as ad

    p, r = ad.read_h5ad(made / "p2.h5ad"), ad.read_h5ad(made / "real.h5ad")
    assert p.uns["distgen"]["truth"] == r.uns["distgen"]["truth"]
    assert not (p.X == ad.read_h5ad(made / "pred.h5ad").X).all()  # another prediction indeed
