"""The checkpoint's JSON files read through ``distgen.jsonfile``: a missing ``state.json`` is named missing, a
damaged one (empty, cut short, a byte-order mark, UTF-16) corrupt, as before the move; an ``optimizer.json``/``rng.json``
holding no JSON object (a checkpoint written before digests, so nothing else catches it) is corrupt, where it loaded."""

import json

import pytest
import torch

from distgen.train import CheckpointError
from distgen.train import checkpoint as C


def _checkpoint(tmp_path, digests=True):
    weights = {"w": torch.ones(3)}
    ckpt = C.save_checkpoint(tmp_path / "run" / "checkpoints", 5, weights, {"state": {"m": torch.zeros(2)}, "lr": 0.1},
                             {"torch": torch.get_rng_state()}, {"config": {}, "fingerprint_config": {}}, ema_state=weights)
    if not digests:  # as written before digests were recorded: the JSON files are read without a size/hash check first
        state = json.loads((ckpt / "state.json").read_text())
        del state["files"]
        (ckpt / "state.json").write_text(json.dumps(state))
    return ckpt


def test_missing_state_json_is_named_missing_by_every_reader(tmp_path):
    ckpt = _checkpoint(tmp_path)
    (ckpt / "state.json").unlink()
    for read in (C.load_checkpoint, C.read_checkpoint_state):
        with pytest.raises(CheckpointError, match=r"is incomplete: missing state\.json"):
            read(ckpt)


@pytest.mark.parametrize(("data", "detail"), [
    (b"", "Expecting value: line 1 column 1"),
    (b'{"format": ', "Expecting value: line 1 column 12"),
    (b"\xef\xbb\xbf{}", "Unexpected UTF-8 BOM"),
    ('{"format": 1}'.encode("utf-16"), "'utf-8' codec can't decode byte 0xff"),
])
def test_damaged_state_json_is_named_corrupt_by_every_reader(tmp_path, data, detail):
    ckpt = _checkpoint(tmp_path)
    (ckpt / "state.json").write_bytes(data)
    for read in (C.load_checkpoint, C.read_checkpoint_state):
        with pytest.raises(CheckpointError, match=rf"is corrupt or truncated \(state\.json: {detail}"):
            read(ckpt)
    assert C._damage(ckpt, C.FILES) == "state.json unreadable"


def test_state_json_holding_a_list_is_named_by_every_reader(tmp_path):
    ckpt = _checkpoint(tmp_path)
    (ckpt / "state.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="has format 'list'"):
        C.load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match=r"is corrupt: state\.json holds a list"):
        C.read_checkpoint_state(ckpt)
    assert C._damage(ckpt, C.FILES) == "state.json malformed"


@pytest.mark.parametrize("name", ["optimizer", "rng"])
@pytest.mark.parametrize("text", ["[1, 2]", '"x"'])
def test_optimizer_or_rng_json_holding_no_object_is_corrupt_not_loaded(tmp_path, name, text):
    ckpt = _checkpoint(tmp_path, digests=False)
    (ckpt / f"{name}.json").write_text(text)
    with pytest.raises(CheckpointError, match=rf"is corrupt or truncated \({name}\.safetensors/json: {name}\.json holds a JSON"):
        C.load_checkpoint(ckpt)
    assert C.load_checkpoint(ckpt, weights_only=True).state["step"] == 5  # the weights alone are still readable


@pytest.mark.parametrize("name", ["optimizer", "rng"])
def test_damaged_optimizer_or_rng_json_is_corrupt(tmp_path, name):
    ckpt = _checkpoint(tmp_path, digests=False)
    (ckpt / f"{name}.json").write_bytes(b"\xef\xbb\xbf{}")
    with pytest.raises(CheckpointError, match=rf"\({name}\.safetensors/json: Unexpected UTF-8 BOM"):
        C.load_checkpoint(ckpt)
