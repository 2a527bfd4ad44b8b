"""A run folder's ``DONE`` that is neither ``distgen run``'s record (a JSON object) nor the sweep's plain ``ok`` (cut short,
a list, a byte-order mark, empty: ``DONE`` is written whole, so only a hand edit makes one) is a damaged marker to
both readers. ``distgen run`` evaluated such a folder again without a word; the sweep read it as another runner's run
and skipped it without checking its summary. Now both say so naming the file, and the run is evaluated again."""

import json
import shutil

import pytest

from distgen.pipeline import experiment, run_folder
from distgen.pipeline.sweep import sweep

from .test_damaged_finished_run import finished  # noqa: F401  (the fixture)
from .test_sweep import FakeRunner, base  # noqa: F401  (the fixture)

DAMAGED = [b'{"metrics": nu', b"[]", b'\xef\xbb\xbf{"metrics": null}\n', b"", b"done\n", b'"ok"']
SLUG = "description=a__seed0"


@pytest.mark.parametrize("raw", DAMAGED)
def test_the_sweep_runs_a_run_whose_done_is_damaged_again_naming_the_file(tmp_path, base, capsys, raw):  # noqa: F811
    out = tmp_path / "sw"
    sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=FakeRunner(), metrics=["mse"])
    done = out / "runs" / SLUG / run_folder.DONE_FILE
    done.write_bytes(raw)
    capsys.readouterr()
    again = FakeRunner()
    res = sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=again, metrics=["mse"])
    assert again.calls == [SLUG] and res.finished == [SLUG] and not res.skipped  # before: skipped, nothing run
    err = capsys.readouterr().err
    assert f"run {SLUG}" in err and str(done) in err and "evaluated again" in err
    assert done.read_text() == "ok\n"  # the runner wrote no DONE: the sweep's marker replaces the damaged one


@pytest.mark.parametrize("raw", [b"ok\n", b"ok", b"ok\r\n"])
def test_the_sweeps_own_marker_is_still_a_finished_run(tmp_path, base, capsys, raw):  # noqa: F811
    out = tmp_path / "sw"
    sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=FakeRunner(), metrics=["mse"])
    (out / "runs" / SLUG / run_folder.DONE_FILE).write_bytes(raw)
    again = FakeRunner()
    assert sweep(base, {"description": ["a"]}, out, seeds=[0], progress=False, runner=again, metrics=["mse"]).skipped == [SLUG]
    assert again.calls == [] and "DONE" not in capsys.readouterr().err


def test_damaged_done_says_why_only_of_a_damaged_marker(tmp_path):
    done = tmp_path / run_folder.DONE_FILE
    assert run_folder.RunFolder.read(tmp_path).damaged is None  # no DONE
    for fine in (b"ok\n", b'{"metrics": null}\n', b'{"metrics": ["mse"]}'):
        done.write_bytes(fine)
        assert run_folder.RunFolder.read(tmp_path).damaged is None
    for raw in DAMAGED:
        done.write_bytes(raw)
        assert str(done) in (run_folder.RunFolder.read(tmp_path).damaged or "")


def test_distgen_run_names_a_damaged_done_and_evaluates_again(finished, tmp_path, capsys):  # noqa: F811
    """As the sweep does: the note names the file; the record is written again, whole."""
    cfg, src = finished
    out = tmp_path / "out"
    shutil.copytree(src, out)
    (out / run_folder.DONE_FILE).write_bytes(b'{"metrics": ["ms')
    capsys.readouterr()
    summary = experiment.run(cfg, out, progress=False, metrics=["mse"], plots=False)
    err = capsys.readouterr().err
    assert str(out / run_folder.DONE_FILE) in err and "evaluated again" in err  # before: nothing said
    assert summary["metrics"]["mse"]["model"] == json.loads((src / "eval" / "summary.json").read_text())["metrics"]["mse"]["model"]
    assert json.loads((out / run_folder.DONE_FILE).read_text()) == {"metrics": ["mse"]}
