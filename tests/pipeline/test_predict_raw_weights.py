"""``distgen predict --weights raw`` reads the raw weights (``model.safetensors``) alone: a checkpoint whose EMA file is cut
short or altered predicts from them, as the weights it reads are whole (review of helper 154's round, 2026-12-07: the
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
from distgen.train.checkpoint import resolve_checkpoint

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


def test_raw_weights_predict_from_a_checkpoint_whose_ema_file_is_cut_short(ema_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ema_run / "run", run)
    _cut_ema(run, 4)
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
    with pytest.raises(CheckpointError, match=r"ema\.safetensors has \d+ bytes"):
        load_checkpoint(run, weights_only=True)


def test_a_newer_folder_whose_ema_file_is_cut_short_is_the_raw_weights_choice(ema_run, tmp_path):
    """What counts as damaged is what is read: for --weights raw, not the EMA file (the same folder is recorded)."""
    run = tmp_path / "run"
    shutil.copytree(ema_run / "run", run)
    (run / "checkpoints" / "latest").write_text("step_00000002\n")  # a kill between the rename and the pointer's update
    _cut_ema(run, 4)
    with pytest.warns(distgen.errors.DistgenWarning, match="passed over step_00000004"):
        assert resolve_checkpoint(run).name == "step_00000002"  # the EMA weights: the whole ones are step 2's
    with pytest.warns(distgen.errors.DistgenWarning, match="step_00000004 is newer and complete"):
        assert main(["predict", str(run), "--weights", "raw", "--out", str(tmp_path / "raw.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "raw.h5ad").uns["distgen"]["provenance"]["checkpoint"] == "step_00000004"
    np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "raw.h5ad").X, ad.read_h5ad(ema_run / "raw.h5ad").X)
