"""Resuming a run folder: what is checked before anything is written, what is recorded, and which resumes are refused.

A resume that is refused (another config, a folder in use by another process) leaves the run's
``config.yaml`` and ``manifest.json`` byte for byte as they were, so the run still predicts and still
resumes with its own config. A resume records the checkpoint it continued and the settings changed
since. Resuming a folder from one of its earlier checkpoints (which would replace the later ones) or
from another folder's checkpoint (which would mix two runs) is refused naming the way that works:
branching into a new folder, which continues bit for bit.
"""

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from safetensors.torch import load_file

from distgen.cli import main
from distgen.train.lock import LOCK_NAME

from .conftest import TINY_GENERATOR

CONFIG = {
    "model": TINY_GENERATOR,
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8},
    "train": {"steps": 4, "sets_per_batch": 2, "checkpoint_every": 2, "keep_checkpoints": 3, "log_every": 1, "progress": False},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run", cfg


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run (steps 2 and 4 checkpointed) and its config."""
    src, cfg = trained
    shutil.copytree(src, tmp_path / "run")
    return tmp_path / "run", cfg


def _files(folder):
    return {name: (folder / name).read_bytes() for name in ("config.yaml", "manifest.json", "split.json", "metrics.csv")}


@pytest.mark.parametrize("change", ["train.lr=0.5", "model.backbone.hidden=32"])
def test_a_refused_resume_leaves_the_run_files_as_they_were(run, change, capsys, tmp_path):
    folder, cfg = run
    before = _files(folder)
    assert main(["train", str(cfg), change, "train.steps=6", "--out", str(folder), "--resume"]) == 2  # a config problem, not a broken checkpoint
    assert change.split("=")[0] in capsys.readouterr().err
    assert _files(folder) == before  # config.yaml did not take the refused config; no resume was recorded
    # so the run still predicts, and resumes with its own config.yaml as the message advises
    assert main(["predict", str(folder), "--out", str(tmp_path / "pred.h5ad")]) == 0
    assert main(["train", str(folder / "config.yaml"), "train.steps=6", "--out", str(folder), "--resume"]) == 0


HOLD = """
import sys
from distgen.train.lock import RunLock
lock = RunLock(sys.argv[1], "train").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_resume_refused_by_the_lock_writes_nothing(run, capsys):
    folder, cfg = run
    before = _files(folder)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", str(cfg), "train.steps=6", "--out", str(folder), "--resume"]) == 1
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert _files(folder) == before  # the running training's config.yaml still says its own steps
    finally:
        holder.kill()
        holder.wait()


def test_a_resume_records_its_checkpoint_and_the_changed_settings(run):
    folder, cfg = run
    assert main(["train", str(cfg), "train.steps=6", "--out", str(folder), "--resume"]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    (record,) = manifest["resumes"]
    assert record["step"] == 4 and record["checkpoint"].endswith("step_00000004")
    assert record["changed"] == ["train.steps: 4 -> 6"]
    assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["steps"] == 6
    assert not (folder / LOCK_NAME).exists()


def test_resuming_a_folder_from_an_earlier_checkpoint_is_refused_and_branching_is_exact(run, tmp_path, capsys):
    folder, cfg = run
    before = _files(folder)
    ckpts = sorted(p.name for p in (folder / "checkpoints").glob("step_*"))
    weights = (folder / "checkpoints" / "step_00000004" / "model.safetensors").read_bytes()
    earlier = folder / "checkpoints" / "step_00000002"
    assert main(["train", str(cfg), "--out", str(folder), "--resume", str(earlier)]) == 2
    err = capsys.readouterr().err
    assert "step_00000004" in err and "--out NEW_DIR" in err and len(err.strip().splitlines()) == 1
    assert _files(folder) == before and sorted(p.name for p in (folder / "checkpoints").glob("step_*")) == ckpts
    assert (folder / "checkpoints" / "step_00000004" / "model.safetensors").read_bytes() == weights

    # another run's checkpoint into a folder with checkpoints of its own: refused too
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    assert main(["train", str(cfg), "--out", str(other), "--resume", str(earlier)]) == 2
    assert "another folder" in capsys.readouterr().err

    # the way the message gives: a new folder, continuing exactly where the checkpoint left off
    branch = tmp_path / "branch"
    assert main(["train", str(cfg), "--out", str(branch), "--resume", str(earlier)]) == 0
    a = load_file(str(folder / "checkpoints" / "step_00000004" / "model.safetensors"))
    b = load_file(str(branch / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert json.loads((branch / "manifest.json").read_text())["resumed_from"]["step"] == 2
    assert (branch / "split.json").read_bytes() == (folder / "split.json").read_bytes()
    assert [r.split(",")[0] for r in (branch / "metrics.csv").read_text().splitlines()[1:]] == ["3", "4"]


def test_an_earlier_checkpoint_may_be_resumed_when_the_later_ones_are_corrupt(run, capsys):
    """What the integrity error offers (``pass its path``) still works: a corrupt newer checkpoint does not count."""
    folder, cfg = run
    newest = folder / "checkpoints" / "step_00000004" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    assert main(["train", str(cfg), "--out", str(folder), "--resume"]) == 1
    assert "step_00000002" in capsys.readouterr().err  # the corrupt newest is named, the earlier one offered
    assert main(["train", str(cfg), "--out", str(folder), "--resume", str(folder / "checkpoints" / "step_00000002")]) == 0
    assert "fail their integrity check" in capsys.readouterr().err
    assert json.loads((folder / "manifest.json").read_text())["resumes"][-1]["step"] == 2
    load_file(str(newest))  # step 4 was trained again and written whole
