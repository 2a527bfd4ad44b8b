"""Issue 17 item 4 and the disk-full case: a checkpoint is verified on load (digests, step vs folder),
a corrupt one is named as corrupt, a full disk leaves no temp folder and the previous checkpoint intact,
and an edited run config is caught before weights are loaded into the wrong model."""

import errno
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from distgen.errors import DiskFullError
from distgen.train import CheckpointError, fit, load_checkpoint
from distgen.train import checkpoint as C
from distgen.train.checkpoint import check_config_matches, list_checkpoints, resolve_checkpoint

from .conftest import MODEL

RUN = {"steps": 10, "sets_per_batch": 4, "progress": False, "checkpoint_every": 5, "ema_decay": 0.9, "lr": 3e-3}


@pytest.fixture
def run(table, make_model, tmp_path):
    fit(make_model(), table, set_size=4, run_dir=tmp_path, config={"model": MODEL, "data": {"set_size": 4}}, **RUN)
    return tmp_path


def _alter(path, fn):
    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = fn(tensors[key])
    save_file(tensors, str(path))  # still a valid safetensors file of the same size


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors", "optimizer.safetensors"])
def test_altered_tensors_are_detected_naming_the_file(run, name):
    ckpt = resolve_checkpoint(run)
    _alter(ckpt / name, lambda t: t + 0.5)
    with pytest.raises(CheckpointError, match=rf"is corrupt: {name} changed after it was written"):
        load_checkpoint(run)


def test_weights_only_load_verifies_the_weights(run):
    ckpt = resolve_checkpoint(run)
    _alter(ckpt / "model.safetensors", torch.zeros_like)
    with pytest.raises(CheckpointError, match=r"model\.safetensors changed"):
        load_checkpoint(ckpt, weights_only=True)


def test_unaltered_checkpoint_loads_and_records_every_file(run):
    ckpt = load_checkpoint(run)
    assert set(ckpt.state["files"]) == {"model.safetensors", "ema.safetensors", "optimizer.safetensors", "optimizer.json",
                                        "rng.safetensors", "rng.json"}
    assert all(len(v["sha256"]) == 64 and v["bytes"] > 0 for v in ckpt.state["files"].values())


def test_checkpoint_without_digests_still_loads(run):
    """Checkpoints written before digests were recorded stay readable."""
    ckpt = resolve_checkpoint(run)
    state = json.loads((ckpt / "state.json").read_text())
    del state["files"]
    (ckpt / "state.json").write_text(json.dumps(state))
    assert load_checkpoint(run).step == 10


def test_step_inside_must_match_the_folder_name(run):
    ckpt = resolve_checkpoint(run)
    ckpt.rename(ckpt.with_name("step_00000099"))
    with pytest.raises(CheckpointError, match=r"holds step 10 \(state.json\), not 99"):
        load_checkpoint(run / "checkpoints" / "step_00000099")


def test_truncated_newest_checkpoint_is_named_corrupt_and_the_earlier_one_offered(run, table, make_model):
    ckpt = resolve_checkpoint(run)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(CheckpointError) as info:
        fit(make_model(), table, set_size=4, run_dir=run, resume=run, config={"model": MODEL, "data": {"set_size": 4}}, **{**RUN, "steps": 15})
    msg = str(info.value)
    assert "corrupt or truncated" in msg and "model.safetensors" in msg and "step_00000005" in msg
    assert "last good" not in msg.lower()
    assert load_checkpoint(run / "checkpoints" / "step_00000005").step == 5


def test_latest_pointer_outside_the_folder_is_ignored(run):
    (run / "checkpoints" / "latest").write_text("../../etc\n")
    assert resolve_checkpoint(run).name == "step_00000010"


def test_disk_full_during_a_checkpoint(table, make_model, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = C.save_file

    def full_on_second_checkpoint(tensors, path, *a, **k):
        if "model" in str(path):
            calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real(tensors, path, *a, **k)

    monkeypatch.setattr(C, "save_file", full_on_second_checkpoint)
    with pytest.raises(DiskFullError) as info:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, **RUN)
    msg = str(info.value)
    assert str(tmp_path / "checkpoints") in msg and "free:" in msg and "step_00000005 is intact" in msg
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000005"]
    monkeypatch.setattr(C, "save_file", real)
    assert load_checkpoint(tmp_path).step == 5


def test_disk_full_from_the_cli_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from distgen.cli import main

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C, "save_file", full)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps({"model": MODEL, "data": {"dataset": "norman_k562", "hvg": 32, "set_size": 4,
                                                          "split": {"kind": "combo_seen2", "seed": 0}},
                               "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}))
    code = main(["train", str(cfg), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and "no space left" in err and "free:" in err and "Traceback" not in err
    assert not [p for p in (tmp_path / "r" / "checkpoints").iterdir() if p.name.startswith(".")]


def test_predict_config_check_names_the_edited_key(run):
    ckpt = load_checkpoint(run, weights_only=True)
    ckpt.state["config"] = {"model": MODEL, "data": {"set_size": 4}, "train": {"lr": 1e-3}}
    config = json.loads(json.dumps(ckpt.state["config"]))
    check_config_matches(ckpt, config, "run/config.yaml")  # unchanged: fine
    config["model"]["backbone"]["hidden"] = 64
    with pytest.raises(CheckpointError) as info:
        check_config_matches(ckpt, config, "run/config.yaml")
    assert "model.backbone.hidden: 16 -> 64" in str(info.value) and "run/config.yaml" in str(info.value)
    config["model"]["backbone"]["hidden"] = 16
    config["train"] = {"lr": 1.0}  # train settings do not change what the weights are
    check_config_matches(ckpt, config, "run/config.yaml")


def test_failed_atomic_text_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    import os

    from distgen.train import state_io

    target = tmp_path / "manifest.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        state_io.atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_checkpoint_path_that_is_a_file_says_so(run):
    """--checkpoint RUN/config.yaml was 'no checkpoint found under ...; train first (distgen train ... --out RUN/config.yaml)'."""
    (run / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file: give a checkpoint folder"):
        resolve_checkpoint(run / "notes.txt")
