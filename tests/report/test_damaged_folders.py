"""``python -m distgen.report FOLDER`` on a folder whose files were cut, edited or replaced: one line naming the file, what is
wrong and the fix (exit 1, an unreadable input), never a traceback, a bare ``'perturbation'``, ``max() arg is an empty
sequence``, or a damaged value drawn as 'undefined' (exit 0)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from distgen.report.__main__ import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import distgen

    from ..evaluation.synth import make_pair

    root = tmp_path_factory.mktemp("damaged")
    real, pred = make_pair(seed=5, n_genes=30, n_ctrl=40, n_cells=12, combos=False)
    real.write_h5ad(root / "real.h5ad")
    pred.write_h5ad(root / "pred.h5ad")
    distgen.evaluate(str(root / "pred.h5ad"), str(root / "real.h5ad"), root / "eval", metric_names=["mse", "pearson_delta"],
                     make_plots=False, progress=False)
    return root / "eval"


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def _write_rows(path, rows):
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _cut_last_row(d):
    text = (d / "metrics.csv").read_text()
    (d / "metrics.csv").write_text(text[: text.rstrip("\n").rfind(",")])


def _text_value(d):
    rows = _rows(d / "metrics.csv")
    rows[1][rows[0].index("mse")] = "abc"
    _write_rows(d / "metrics.csv", rows)


def _calibration_text(d):
    rows = _rows(d / "calibration.csv")
    rows[1][3] = "oops"
    _write_rows(d / "calibration.csv", rows)


def _summary(d, **changes):
    raw = json.loads((d / "summary.json").read_text())
    raw.update(changes)
    (d / "summary.json").write_text(json.dumps(raw))


DAMAGE = {  # how the folder is damaged -> words of the one-line error
    "summary not JSON": (lambda d: (d / "summary.json").write_text("{bad"), ["summary.json is not valid JSON"]),
    "summary a list": (lambda d: (d / "summary.json").write_text("[1, 2]"), ["summary.json holds a JSON list"]),
    "contexts a number": (lambda d: _summary(d, contexts=5), ["'contexts' is 5, not a list"]),
    "pert_col a number": (lambda d: _summary(d, pert_col=3), ["'pert_col' is 3, not a string"]),
    "metrics empty": (lambda d: (d / "metrics.csv").write_text(""), ["metrics.csv lacks the column(s) ['perturbation']"]),
    "metrics header only": (lambda d: (d / "metrics.csv").write_text((d / "metrics.csv").read_text().splitlines()[0] + "\n"),
                            ["metrics.csv holds no row"]),
    "metrics cut in a row": (_cut_last_row, ["fewer fields than the header", "cut short"]),
    "metrics not text": (lambda d: (d / "metrics.csv").write_bytes(bytes(range(128, 256)) * 8), ["metrics.csv is not a CSV table"]),
    "metrics without perturbation": (lambda d: (d / "metrics.csv").write_text((d / "metrics.csv").read_text().replace("perturbation", "pert", 1)),
                                     ["lacks the column(s) ['perturbation']"]),
    "metrics value not a number": (_text_value, ["the mse value of", "'abc', not a number"]),
    "calibration of another tool": (lambda d: (d / "calibration.csv").write_text("a,b\n1,2\n"), ["calibration.csv lacks the column(s)"]),
    "calibration value not a number": (_calibration_text, ["calibration.csv: the", "'oops', not a number"]),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_evaluation_folder_is_refused_naming_the_file(folder, tmp_path, capsys, case):
    damage, words = DAMAGE[case]
    d = tmp_path / "eval"
    shutil.copytree(folder, d)
    damage(d)
    assert main([str(d)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m distgen.report: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert "or restore the file" in err
    assert not (d / "report.html").exists()


def test_the_undamaged_folder_still_writes_its_page(folder, tmp_path):
    d = tmp_path / "eval"
    shutil.copytree(folder, d)
    assert main([str(d)]) == 0 and (d / "report.html").is_file()


def test_a_damaged_sweep_summary_is_refused_naming_the_file(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("variant,seed,perturbation,mse\nbase,0,A,1.0\n")
    (tmp_path / "summary.json").write_text('{"comparisons": []}')
    assert main([str(tmp_path)]) == 1
    assert "lacks 'variants' or 'reference'" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text("not json")
    assert main([str(tmp_path)]) == 1
    assert "summary.json is not valid JSON" in capsys.readouterr().err


def test_errors_name_the_program_as_its_usage_errors_do_and_config_errors_exit_2(folder, tmp_path, capsys):
    """Errors began 'error:' where argparse's own say 'python -m distgen.report: error:' and distgen's commands 'distgen
    COMMAND: error:'; a bad --preset or --sections (config errors) exited 1, as an unreadable folder does."""
    with pytest.raises(SystemExit) as usage:
        main([str(folder), "--size"])  # argparse: the program's name
    assert usage.value.code == 2 and "python -m distgen.report: error:" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.startswith("python -m distgen.report: error: ")
    for bad in (["--preset", "no-such-preset"], ["--sections", "headline,bogus"]):
        assert main([str(folder), "--out", str(tmp_path / "r.html"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m distgen.report: config error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r.html").exists()


def test_an_out_folder_a_bad_size_and_a_write_error_are_one_line_naming_the_program(folder, tmp_path, capsys, monkeypatch):
    """--out naming a folder crashed with IsADirectoryError's traceback after the page was built; --size 10 said 'not
    enough values to unpack' at exit 1 after writing the page; an OSError other than FileNotFoundError was a traceback."""
    (tmp_path / "pages").mkdir()
    with pytest.raises(SystemExit) as usage:
        main([str(folder), "--out", str(tmp_path / "pages")])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and "python -m distgen.report: error: --out" in err and "is a folder" in err, err
    assert "report.html" in err  # the fix: a page path inside it
    for size in ("10", "axb", "0x5"):
        with pytest.raises(SystemExit) as usage:
            main([str(folder), "--out", str(tmp_path / "r.html"), "--screenshot", str(tmp_path / "p.png"), "--size", size])
        err = capsys.readouterr().err
        assert usage.value.code == 2 and "WIDTHxHEIGHT" in err and repr(size) in err, err
    assert not (tmp_path / "r.html").exists()  # refused before any work

    import distgen.report.page as page

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked.html"))

    monkeypatch.setattr(page, "write_report", denied)
    assert main([str(folder), "--out", str(tmp_path / "locked.html"), "--no-cells"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m distgen.report: error: Permission denied: ") and "locked.html" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
