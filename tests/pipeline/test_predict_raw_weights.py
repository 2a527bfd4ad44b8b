"""``distgen predict --weights raw`` reads the raw weights (``model.safetensors``) alone: a checkpoint whose EMA file is cut
short or altered predicts from them, as the weights it reads are whole (2026-12-07: the
weights-only load verified, and read, the EMA file for ``--weights raw`` too, and refused). ``--weights ema`` (the default)
is still refused, the message naming the EMA file and ``--weights raw``."""

import shutil

import anndata as ad
import numpy as np
import pytest

import distgen
from distgen.cli import main
from distgen.config import save_yaml
from distgen.train import CheckpointError, load_checkpoint

from .conftest import TINY


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """A run of TINY with EMA, checkpoints at steps 2 and 4, and its raw-weight prediction before any damage."""
    root = tmp_path_factory.mktemp("raw")
    cfg = save_yaml({**TINY, "train": {**TINY["train"], "steps": 4, "checkpoint_every": 2, "ema_decay": 0.9}}, root / "t.yaml")
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    assert main(["predict", str(root / "run"), "--weights", "raw", "--out", str(root / "raw.h5ad")]) == 0
    return root


def _cut_ema(run, step):
    ema = run / "checkpoints" / f"step_{step:08d}" / "ema.safetensors"
    data = ema.read_bytes()
    ema.write_bytes(data[: len(data) // 2])  # an interrupted copy


@pytest.mark.parametrize("damage", ["cut", "gone"])
def test_raw_weights_predict_from_a_checkpoint_whose_ema_file_is_cut_short(ema_run, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(ema_run / "run", run)
    if damage == "cut":
        _cut_ema(run, 4)
    else:  # deleted: the load of the EMA weights fails, not their digest check
        (run / "checkpoints" / "step_00000004" / "ema.safetensors").unlink()
    assert main(["predict", str(run), "--weights", "raw", "--out", str(tmp_path / "raw.h5ad")]) == 0
    np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "raw.h5ad").X, ad.read_h5ad(ema_run / "raw.h5ad").X)
    assert ad.read_h5ad(tmp_path / "raw.h5ad").uns["distgen"]["provenance"]["checkpoint"] == "step_00000004"
    assert distgen.load_run(run, weights="raw").model is not None
    ckpt = load_checkpoint(run, weights_only=True, ema=False)
    assert ckpt.step == 4 and ckpt.ema is None
    capsys.readouterr()
    assert main(["predict", str(run), "--out", str(tmp_path / "ema.h5ad")]) == 1  # the EMA weights are the damaged ones
    err = capsys.readouterr().err
    assert "ema.safetensors" in err and "--weights raw" in err
    with pytest.raises(CheckpointError, match=r"ema\.safetensors.*its raw weights are whole"):
        load_checkpoint(run, weights_only=True)


@pytest.mark.parametrize("pointer", ["older", "gone"])
def test_the_raw_and_ema_weights_come_from_one_checkpoint(ema_run, tmp_path, pointer):
    """A newer folder whose EMA file is cut short is passed over for --weights raw too (the choice of checkpoint does not
    depend on --weights: the two predictions of a run compare weights of one step); the provenance names that one."""
    run = tmp_path / "run"
    shutil.copytree(ema_run / "run", run)
    if pointer == "older":
        (run / "checkpoints" / "latest").write_text("step_00000002\n")
    else:
        (run / "checkpoints" / "latest").unlink()
    _cut_ema(run, 4)
    for weights in ("raw", "ema"):
        with pytest.warns(distgen.errors.DistgenWarning, match=r"passed over step_00000004 \(ema\.safetensors has"):
            assert main(["predict", str(run), "--weights", weights, "--out", str(tmp_path / f"{weights}.h5ad")]) == 0
        assert ad.read_h5ad(tmp_path / f"{weights}.h5ad").uns["distgen"]["provenance"]["checkpoint"] == "step_00000002"
    with pytest.warns(distgen.errors.DistgenWarning, match="passed over step_00000004"):
        assert load_checkpoint(run, weights_only=True, ema=False).step == 2
