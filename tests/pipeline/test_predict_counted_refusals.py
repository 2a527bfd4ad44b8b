"""Refusals of ``distgen predict`` that name the first few of a list count the rest and show no Python list: a checkpoint
that lacks some of the run's model tensors (also through ``distgen.load_run`` and ``distgen train --resume``), and a
``--genes`` file naming genes the run does not have."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

import distgen
from distgen.cli import main
from distgen.config import load_yaml, save_yaml
from distgen.train import CheckpointError
from distgen.train.checkpoint import file_digest

from .conftest import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lacking")
    cfg = save_yaml(TINY, root / "t.yaml")
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


def _drop(run, n):
    """Leave the first ``n`` tensors (by name) out of the newest checkpoint's weights, its recorded digest kept true (a
    checkpoint written by a model of other parts, not a damaged file). Returns the names left out, and how many it held."""
    ckpt = run / "checkpoints" / "step_00000002"
    weights = load_file(ckpt / "model.safetensors")
    gone = sorted(weights)[:n]
    save_file({k: v for k, v in weights.items() if k not in gone}, ckpt / "model.safetensors")
    state = json.loads((ckpt / "state.json").read_text())
    state["files"]["model.safetensors"] = {"sha256": file_digest(ckpt / "model.safetensors"),
                                           "bytes": (ckpt / "model.safetensors").stat().st_size}
    (ckpt / "state.json").write_text(json.dumps(state))
    return gone, len(weights)


def test_a_checkpoint_lacking_seven_tensors_names_five_and_counts_the_rest(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    gone, held = _drop(run, 7)
    capsys.readouterr()
    assert main(["predict", str(run), "--out", str(tmp_path / "p.h5ad")]) == 1
    err = capsys.readouterr().err
    named = ", ".join(repr(k) for k in gone[:5])
    assert f"does not fit the run's model: it lacks 7 of the model's {held} tensors: {named} (and 2 more)" in err
    assert gone[5] not in err and "[" not in err.split("does not fit")[1]  # no Python list
    assert not (tmp_path / "p.h5ad").exists()


@pytest.mark.parametrize("n", [1, 2])
def test_a_checkpoint_lacking_one_or_two_tensors_names_them_all(trained, tmp_path, n):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    gone, held = _drop(run, n)
    with pytest.raises(CheckpointError) as info:
        distgen.load_run(run, weights="raw")
    text = str(info.value)
    assert text.endswith(f"it lacks {n} of the model's {held} tensors: {', '.join(repr(k) for k in gone)}")


@pytest.mark.parametrize("n", [1, 7])
def test_genes_the_run_lacks_are_counted_with_the_verb_agreeing(trained, tmp_path, capsys, n):
    panel = tmp_path / "genes.txt"
    panel.write_text("\n".join(f"NOPE{i}" for i in range(n)) + "\n")
    capsys.readouterr()
    assert main(["predict", str(trained), "--genes", str(panel), "--out", str(tmp_path / "p.h5ad")]) == 2
    err = capsys.readouterr().err
    if n == 1:
        assert "1 gene is not in the run's genes: 'NOPE0'" in err, err
    else:
        assert "7 genes are not in the run's genes: 'NOPE0', 'NOPE1', 'NOPE2', 'NOPE3', 'NOPE4' (and 2 more)" in err, err
    assert not (tmp_path / "p.h5ad").exists()


def test_a_resume_from_a_checkpoint_lacking_tensors_says_only_what_it_lacks(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    gone, held = _drop(run, 7)
    cfg = load_yaml(trained.parent / "t.yaml")
    cfg["train"]["steps"] = 4
    capsys.readouterr()
    assert main(["train", str(save_yaml(cfg, tmp_path / "t4.yaml")), "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    named = ", ".join(repr(k) for k in gone[:5])
    assert f"does not fit this model (it lacks 7 of the model's {held} tensors: {named}, and 2 more)" in err, err
    assert "unexpected" not in err and "[" not in err.split("does not fit")[1]
