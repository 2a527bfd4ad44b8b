"""``distgen train`` / ``distgen predict`` end to end on the bundled Norman K562 data (in-process CLI)."""

import json
import warnings

import anndata as ad
import numpy as np
import pytest
import yaml

from distgen.cli import main
from distgen.config import ConfigError
from distgen.errors import DistgenWarning
from distgen.train.run import resolve_document

from .conftest import TINY_GENERATOR

CONFIG = {
    "model": TINY_GENERATOR,
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8},
    "train": {"steps": 4, "sets_per_batch": 2, "checkpoint_every": 2, "log_every": 2, "progress": False,
              "val_every": 2, "val_sets": 2, "val_metrics": ["mse"], "ema_decay": 0.9,
              "patience": 100},  # never stops in these steps; keeps the best step's checkpoint (--checkpoint best)
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(cfg), "train.lr=0.002", "--out", str(root / "run")]) == 0
    return root, cfg


def test_run_directory_contents(run):
    root, _ = run
    d = root / "run"
    resolved = yaml.safe_load((d / "config.yaml").read_text())
    assert resolved["train"]["lr"] == 0.002 and resolved["model"]["backbone"]["use_control"] is False  # defaults filled in
    man = json.loads((d / "manifest.json").read_text())
    assert {"versions", "git_commit", "seed", "data", "hardware"} <= set(man)
    assert man["versions"]["torch"] and man["data"]["split_hash"] and man["data"]["data_hash"]
    header = (d / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss", "lr", "steps_per_s", "cells_per_s", "val_loss", "val_mse"} <= set(header)
    assert (d / "split.json").exists() and (d / "checkpoints" / "latest").read_text().strip() == "step_00000004"


def test_predict_writes_cell_eval_layout(run):
    root, _ = run
    assert main(["predict", str(root / "run"), "--out", str(root / "pred.h5ad"), "--real", str(root / "real.h5ad")]) == 0
    pred, real = ad.read_h5ad(root / "pred.h5ad"), ad.read_h5ad(root / "real.h5ad")
    assert list(pred.var_names) == list(real.var_names)
    assert pred.obs["target"].value_counts().to_dict() == real.obs["target"].value_counts().to_dict()
    assert "non-targeting" in set(pred.obs["target"]) and np.isfinite(np.asarray(pred.X)).all()
    split = json.loads((root / "run" / "split.json").read_text())
    assert set(pred.obs["target"]) - {"non-targeting"} == set(split["test_conditions"])


def test_same_config_and_seed_same_weights(run, tmp_path):
    root, cfg = run
    assert main(["train", str(cfg), "train.lr=0.002", "--out", str(tmp_path / "again")]) == 0
    from safetensors.torch import load_file

    a = load_file(str(root / "run" / "checkpoints" / "step_00000004" / "model.safetensors"))
    b = load_file(str(tmp_path / "again" / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_existing_run_needs_resume_and_same_config(run, capsys):
    root, cfg = run
    out = str(root / "run")
    assert main(["train", str(cfg), "train.lr=0.002", "--out", out]) == 2  # a usage error (RunFolderError), was 1
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(cfg), "train.lr=0.5", "train.steps=6", "--out", out, "--resume"]) == 2  # another config: a config error
    assert "train.lr" in capsys.readouterr().err
    assert main(["train", str(cfg), "train.lr=0.002", "train.steps=6", "--out", out, "--resume"]) == 0
    assert json.loads((root / "run" / "manifest.json").read_text())["resumes"]


def test_bad_configs_fail_naming_the_key():
    with pytest.raises(ConfigError, match=r"unknown top-level section\(s\) \['trian'\]\. Did you mean 'train'\?.*start with 'x-'"):
        resolve_document({**CONFIG, "trian": {}})
    resolve_document({**CONFIG, "x-common": {"steps": 1}})  # a section of YAML anchors is ignored
    with pytest.raises(ConfigError, match=r"data: unknown key 'set_sise'"):
        resolve_document({**CONFIG, "data": {"set_sise": 3}})
    with pytest.raises(ConfigError, match="no 'model' section"):
        resolve_document({"data": CONFIG["data"]})
    assert main(["train", "no_such_preset", "--out", "/tmp/never"]) == 2


def test_predict_rejects_other_data_and_missing_run(run, tmp_path, capsys):
    root, _ = run
    assert main(["predict", str(tmp_path), "--out", str(tmp_path / "p.h5ad")]) == 1
    assert "not a run directory" in capsys.readouterr().err
    bad = tmp_path / "run"
    bad.mkdir()
    for f in ("config.yaml", "split.json", "manifest.json"):
        (bad / f).write_bytes((root / "run" / f).read_bytes())
    (bad / "info.json").write_text(json.dumps({"genes": ["X", "Y"]}))
    (bad / "checkpoints").symlink_to(root / "run" / "checkpoints")
    assert main(["predict", str(bad), "--out", str(tmp_path / "p.h5ad")]) == 2  # data of other genes: bad input, as the other vocabularies below
    assert "gene names differ" in capsys.readouterr().err
    # the same genes but other atoms: the label ids would name other perturbations (only the genes were compared)
    info = json.loads((root / "run" / "info.json").read_text())
    (bad / "info.json").write_text(json.dumps({**info, "perturbations": ["ZZZ", *info["perturbations"][1:]]}))
    assert main(["predict", str(bad), "--out", str(tmp_path / "p.h5ad")]) == 2
    err = capsys.readouterr().err
    assert "trained on other vocabularies than this data's (perturbations: 1 unknown to the model" in err
    assert "1 of the model's missing here ('ZZZ')" in err


def test_train_refuses_a_model_that_fits_itself(tmp_path, capsys):
    cfg = tmp_path / "add.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "additive"}, "data": CONFIG["data"]}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "fits itself (a FittedModel)" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_trained_model_in_memory_predicts_what_its_checkpoint_predicts(tmp_path):
    """distgen run predicts with the model it just trained; distgen predict rebuilds it from the checkpoint: same cells."""
    from distgen.data import Dataset
    from distgen.pipeline.predict import predict, predict_run
    from distgen.train.run import train_model

    trained = train_model(CONFIG, tmp_path / "again")
    in_memory = predict(trained.model, trained.dataset, seed=0, preflight=False)
    predict_run(tmp_path / "again", tmp_path / "p.h5ad", seed=0)
    from_file = ad.read_h5ad(tmp_path / "p.h5ad")
    np.testing.assert_array_equal(np.asarray(from_file.X), in_memory.X.numpy())  # EMA weights, bit for bit
    assert isinstance(trained.dataset, Dataset)


def test_predict_on_a_gene_panel_writes_only_those_genes_for_pred_and_truth(run, tmp_path):
    """`distgen predict --genes FILE` (and hvg:N): both files hold exactly the panel, in the run's gene order."""
    root, _ = run
    full = ad.read_h5ad(root / "pred.h5ad") if (root / "pred.h5ad").exists() else None
    genes = json.loads((root / "run" / "info.json").read_text())["genes"]
    panel = [genes[7], genes[2], genes[11]]
    listing = tmp_path / "panel.txt"
    listing.write_text("\n".join(panel) + "\n")
    pred, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    assert main(["predict", str(root / "run"), "--out", str(pred), "--real", str(real), "--genes", str(listing)]) == 0
    p, r = ad.read_h5ad(pred), ad.read_h5ad(real)
    assert list(p.var_names) == list(r.var_names) == [genes[2], genes[7], genes[11]]
    assert p.n_obs == r.n_obs and (full is None or p.n_obs == full.n_obs)
    assert main(["predict", str(root / "run"), "--out", str(pred), "--genes", "hvg:5"]) == 0
    assert ad.read_h5ad(pred).n_vars == 5
    listing.write_text("NOT_A_GENE\n")
    assert main(["predict", str(root / "run"), "--out", str(pred), "--genes", str(listing)]) != 0
    # an empty panel failed inside torch and hvg:0 inside hvg_indices, both exit 1: now config errors naming --genes
    listing.write_text("\n")
    assert main(["predict", str(root / "run"), "--out", str(pred), "--genes", str(listing)]) == 2
    assert main(["predict", str(root / "run"), "--out", str(pred), "--genes", "hvg:0"]) == 2


def test_resume_refuses_data_changed_since_the_run_started(tmp_path, capsys):
    # a killed run resumed on a re-exported file (same cells and genes, another gene order) would mix two datasets
    from pathlib import Path

    import distgen.datasets

    src = Path(distgen.datasets.__file__).parent / "norman_k562.h5ad"
    data = tmp_path / "mine.h5ad"
    data.write_bytes(src.read_bytes())
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "dataset": str(data)}}))
    out = str(tmp_path / "run")
    assert main(["train", str(cfg), "train.steps=2", "--out", out]) == 0
    assert main(["train", str(cfg), "train.steps=4", "--out", out, "--resume"]) == 0  # same data: resumes
    a = ad.read_h5ad(data)
    a[:, np.argsort(a.var_names)[::-1]].copy().write_h5ad(data)
    capsys.readouterr()
    assert main(["train", str(cfg), "train.steps=6", "--out", out, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "changed since this run was trained" in err and "cannot resume it on other data" in err
    assert main(["predict", out, "--out", str(tmp_path / "p.h5ad")]) == 1
    err = capsys.readouterr().err
    assert "cannot predict it on other data" in err and "predict_to_disk(run.model, FILE, OUT" in err  # the way to predict another file


def test_an_hvg_panel_larger_than_asked_says_so():
    """scanpy's seurat flavour keeps every gene tied at the cut (genes alone in a dispersion bin tie at 1): hvg:5 gave 10 of
    40 genes without a word. The panel is kept (scDFM's is chosen so) and a warning says how many and why."""
    from types import SimpleNamespace

    import numpy as np
    import pytest
    import torch

    from distgen.data.preprocess import hvg_indices
    from distgen.errors import DistgenWarning
    from distgen.pipeline.predict import gene_panel

    rng = np.random.default_rng(2)
    x = np.log1p(rng.poisson(rng.gamma(0.5, 2, size=40), size=(60, 40))).astype(np.float32)
    assert len(hvg_indices(x, 5)) > 5  # the ties this test is about
    data = SimpleNamespace(data=SimpleNamespace(table=SimpleNamespace(X=torch.from_numpy(x))))
    groups = [SimpleNamespace(cells=np.arange(30), controls=np.arange(30, 60))]
    with pytest.warns(DistgenWarning, match=r"--genes hvg:5: \d+ genes are predicted, not 5"):
        kept = gene_panel(data, groups, "hvg:5")
    assert len(kept) > 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(gene_panel(data, groups, "hvg:40")) == 40  # all genes: no ties to speak of


def test_predict_checkpoint_best_takes_the_best_validation_steps_weights(run, tmp_path):
    """distgen predict RUN --checkpoint best (and distgen.load_run(RUN, checkpoint="best")): the checkpoint of the best
    validation, recorded in the manifest; the default stays the newest (last)."""
    import torch

    import distgen
    from distgen.train import load_checkpoint

    root, _ = run
    d = root / "run"
    training = json.loads((d / "manifest.json").read_text())["training"]
    assert training["monitor"] == "val_loss" and training["best_step"] in (2, 4, 6)  # an earlier test extends it to 6
    best = d / "checkpoints" / f"step_{training['best_step']:08d}"
    assert training["best_checkpoint"] == str(best)
    loaded = distgen.load_run(d, checkpoint="best")
    ema = load_checkpoint(best).ema
    assert ema is not None and all(torch.equal(loaded.model.state_dict()[k], v) for k, v in ema.items())
    assert main(["predict", str(d), "--checkpoint", "best", "--out", str(tmp_path / "best.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "best.h5ad").uns["distgen"]["provenance"]["checkpoint"] == best.name


def test_a_resume_with_no_step_left_says_so_and_how_to_continue(tmp_path, capsys):
    """A finished run resumed at its own train.steps trained nothing: the line said 'last loss n/a'."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 2, "val_every": 0}}))
    out = str(tmp_path / "run")
    assert main(["train", str(cfg), "--out", out]) == 0
    assert "last loss n/a" not in capsys.readouterr().out  # a run that trained reports its loss
    assert main(["train", str(cfg), "--out", out, "--resume"]) == 0
    said = capsys.readouterr().out
    assert "n/a" not in said and "already at step 2" in said and "train.steps" in said


def test_a_resume_past_train_steps_does_not_call_the_runs_step_its_train_steps(tmp_path, capsys):
    """Resumed at step 2 with train.steps=1 (review of the line above): it said 'already at step 2, its train.steps'."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 2, "val_every": 0}}))
    out = str(tmp_path / "run")
    assert main(["train", str(cfg), "--out", out]) == 0
    capsys.readouterr()
    with pytest.warns(DistgenWarning, match="past train.steps=1"):
        assert main(["train", str(cfg), "train.steps=1", "--out", out, "--resume"]) == 0
    said = capsys.readouterr().out
    assert "nothing trained" in said and "past train.steps=1" in said
    assert "its train.steps" not in said and "train.steps=4" in said  # the larger value to continue with: above 2
