"""``distgen.load_run``: a trained run folder back in Python (model, data, config), predicting what ``distgen predict`` writes."""

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
import yaml

import distgen
from distgen.cli import main
from distgen.config import ConfigError
from distgen.data import layout

CONFIG = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
              "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
    "data": {"dataset": "norman_k562", "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8, "hvg": 64},
    "train": {"steps": 2, "sets_per_batch": 2, "progress": False, "val_every": 0, "ema_decay": 0.9, "seed": 3},
    "predict": {"max_cells_per_condition": 20},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("load_run")
    cfg = root / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    assert main(["predict", str(root / "run"), "--out", str(root / "pred.h5ad")]) == 0
    return root


def test_a_loaded_run_predicts_what_distgen_predict_wrote(trained):
    run = distgen.load_run(trained / "run")
    assert (run.seed, run.max_cells, run.run_dir) == (3, 20, trained / "run")
    assert run.config["model"]["backbone"]["name"] == "mlp" and not run.model.training
    saved = json.loads((trained / "run" / "info.json").read_text())
    assert list(run.data.info.genes) == saved["genes"]  # the run's data: section (hvg: 64 + the perturbed genes), read again
    assert list(run.data.split.test_conditions) == json.loads((trained / "run" / "split.json").read_text())["test_conditions"]
    pred = distgen.predict(run.model, run.data, seed=run.seed, max_cells=run.max_cells)
    written = ad.read_h5ad(trained / "pred.h5ad")
    assert list(written.var_names) == list(pred.genes) and list(written.obs["target"]) == [
        layout.CONTROL if c == pred.control else c for c in pred.conditions]  # the file names controls as cell-eval does
    np.testing.assert_allclose(np.asarray(written.X), pred.X.numpy(), atol=1e-6)
    raw = distgen.load_run(trained / "run", weights="raw")  # the trained weights, not their average
    assert any(not torch.equal(a, b) for a, b in zip(raw.model.state_dict().values(), run.model.state_dict().values(), strict=True))


def test_a_distgen_run_folder_is_found_through_its_train_folder_and_a_fitted_one_says_how_to_refit(trained, tmp_path):
    exp = tmp_path / "exp"
    (exp / "train").mkdir(parents=True)
    for name in ("config.yaml", "split.json", "manifest.json", "info.json"):
        (exp / "train" / name).write_bytes((trained / "run" / name).read_bytes())
    (exp / "train" / "checkpoints").symlink_to(trained / "run" / "checkpoints")
    assert distgen.load_run(exp).run_dir == exp / "train"
    fitted = tmp_path / "fitted"
    fitted.mkdir()
    (fitted / "experiment.yaml").write_text(yaml.safe_dump({"model": {"name": "additive"}}))
    with pytest.raises(ConfigError, match=r"model 'additive', which fits itself .* distgen.fit\(model, data, config=doc\)"):
        distgen.load_run(fitted)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distgen.load_run(tmp_path / "nothing")


def test_distgen_predict_takes_a_distgen_run_folder_as_load_run_does(trained, tmp_path, capsys):
    exp = tmp_path / "exp"  # the layout distgen run --out writes: the trained run in train/
    (exp / "train").mkdir(parents=True)
    for name in ("config.yaml", "split.json", "manifest.json", "info.json"):
        (exp / "train" / name).write_bytes((trained / "run" / name).read_bytes())
    (exp / "train" / "checkpoints").symlink_to(trained / "run" / "checkpoints")
    assert main(["predict", str(exp), "--out", str(tmp_path / "pred.h5ad")]) == 0  # was: "not a run directory", exit 1
    assert main(["predict", str(exp / "train"), "--out", str(tmp_path / "pred_train.h5ad")]) == 0
    by_exp, by_train = ad.read_h5ad(tmp_path / "pred.h5ad"), ad.read_h5ad(trained / "pred.h5ad")
    assert list(by_exp.obs_names) == list(by_train.obs_names)
    np.testing.assert_array_equal(np.asarray(by_exp.X), np.asarray(by_train.X))  # the same run, seed and cap
    np.testing.assert_array_equal(np.asarray(ad.read_h5ad(tmp_path / "pred_train.h5ad").X), np.asarray(by_train.X))
    fitted = tmp_path / "fitted"
    fitted.mkdir()
    (fitted / "experiment.yaml").write_text(yaml.safe_dump({"model": {"name": "additive"}}))
    capsys.readouterr()
    assert main(["predict", str(fitted), "--out", str(tmp_path / "f.h5ad")]) == 2  # the refit recipe, as load_run says
    assert "which fits itself" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nothing"), "--out", str(tmp_path / "n.h5ad")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "f.h5ad").exists() and not (tmp_path / "n.h5ad").exists()


def test_distgen_predict_help_names_both_folders(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out folder of distgen train, or of distgen run" in text


@pytest.mark.parametrize("device, words", [("gpu0", r"device: 'gpu0' is not a device .*use auto, cpu, cuda or cuda:N"),
                                           pytest.param("cuda", r"device='cuda' but CUDA is not available here; use device=auto or cpu",
                                                        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present"))])
def test_a_device_load_run_cannot_use_is_a_config_error_naming_it(trained, device, words):
    """load_run(device='cuda') without CUDA ended in torch's 'AssertionError: Torch not compiled with CUDA enabled', and
    'gpu0' in a RuntimeError (hostile-input round, 2026-12-06)."""
    with pytest.raises(ConfigError, match=words):
        distgen.load_run(trained / "run", device=device)
    assert next(distgen.load_run(trained / "run", device="cpu").model.parameters()).device.type == "cpu"


def test_a_python_fit_folder_of_a_built_model_loads_back_as_a_run(tmp_path):
    """distgen.fit(model, data, run_dir=) of a model distgen.build made writes the run folder distgen train writes: load_run
    gives back a model that predicts what the fitted one does. Before, the folder held checkpoints and no config.yaml, and
    load_run could only say how to load the weights by hand (hostile-input round, 2026-12-06)."""
    import warnings

    doc = distgen.load_config(CONFIG)
    data = distgen.load_data(**doc["data"])
    model = distgen.build(doc, data)
    doc["model"]["backbone"]["hidden"] = 32  # an edit after build: the folder records what the model was built from
    distgen.fit(model, data, config=doc, run_dir=tmp_path / "fit", steps=3)
    for name in ("config.yaml", "split.json", "info.json", "manifest.json", "data_record.json"):
        assert (tmp_path / "fit" / name).is_file(), name
    saved = yaml.safe_load((tmp_path / "fit" / "config.yaml").read_text())
    assert saved["model"]["backbone"]["hidden"] == 16 and saved["train"]["steps"] == 3
    assert json.loads((tmp_path / "fit" / "manifest.json").read_text())["training"]["steps_done"] == 3
    run = distgen.load_run(tmp_path / "fit")
    with warnings.catch_warnings():
        warnings.simplefilter("error", distgen.errors.DistgenRuntimeWarning)  # loaded weights: no "never trained" warning
        assert torch.equal(distgen.predict(run.model, run.data, max_cells=4).X, distgen.predict(model, data, max_cells=4).X)
    distgen.fit(model, data, config=doc, run_dir=tmp_path / "fit", steps=5, resume=tmp_path / "fit")  # the folder goes on
    manifest = json.loads((tmp_path / "fit" / "manifest.json").read_text())
    assert manifest["training"]["steps_done"] == 5 and len(manifest["resumes"]) == 1
    resumed = manifest["resumes"][0]  # what distgen train records of a resume: the checkpoint's step, the settings changed
    assert resumed["step"] == 3 and Path(resumed["checkpoint"]).parent == tmp_path / "fit" / "checkpoints"
    assert any("train.steps" in c and "3" in c and "5" in c for c in resumed["changed"]), resumed["changed"]
    assert yaml.safe_load((tmp_path / "fit" / "config.yaml").read_text())["train"]["steps"] == 5
    assert torch.equal(distgen.predict(distgen.load_run(tmp_path / "fit").model, data, max_cells=4).X,
                       distgen.predict(model, data, max_cells=4).X)


def test_a_python_fit_folder_of_a_model_built_otherwise_is_told_how_to_load_its_weights(tmp_path):
    """A model distgen.build did not make (its config unknown) leaves checkpoints, metrics and a manifest; load_run says
    how to load the weights into the model built as before, and that recipe works."""
    import warnings

    from distgen.models.generator import build_model
    from distgen.train.checkpoint import load_checkpoint

    doc = distgen.load_config(CONFIG)
    data = distgen.load_data(**doc["data"])
    torch.manual_seed(0)
    model = build_model(doc["model"], data.info, data.seen_perturbations())
    distgen.fit(model, data, config=doc, run_dir=tmp_path / "fit", steps=3)
    assert not (tmp_path / "fit" / "config.yaml").exists()
    with pytest.raises(FileNotFoundError, match=r"holds checkpoints but no config\.yaml: distgen\.fit\(\.\.\., run_dir=\).*load_checkpoint\("):
        distgen.load_run(tmp_path / "fit")
    again = distgen.build(doc, data)
    ckpt = load_checkpoint(tmp_path / "fit", weights_only=True)
    again.load_state_dict({**ckpt.model, **(ckpt.ema or {})})
    with warnings.catch_warnings():
        warnings.simplefilter("error", distgen.errors.DistgenRuntimeWarning)  # loaded weights: no "never trained" warning
        assert torch.equal(distgen.predict(again, data, max_cells=4).X, distgen.predict(model, data, max_cells=4).X)


def test_predict_checkpoint_best_of_a_run_that_never_validated_is_refused(trained, tmp_path, capsys):
    """val_every 0: no step was judged best; --checkpoint best is a usage error naming the fix, not the last weights."""
    from distgen.train.checkpoint import NoBestCheckpointError

    assert main(["predict", str(trained / "run"), "--checkpoint", "best", "--out", str(tmp_path / "p.h5ad")]) == 2
    assert "never validated" in capsys.readouterr().err and not (tmp_path / "p.h5ad").exists()
    with pytest.raises(NoBestCheckpointError, match="never validated"):
        distgen.load_run(trained / "run", checkpoint="best")


def test_counts_of_a_fitted_run_name_the_config_key_that_writes_them(tmp_path, capsys):
    """``distgen evaluate --profile vcc2026`` of a run's log-normalised pair says to write counts with ``distgen predict
    --counts``, which refuses a fitted model's run (not saved) with the refit recipe: that recipe did not say how to get
    the run's pair in raw counts (the run's ``evaluate: {counts: MODEL}``, as the Bayesian plugin's runs need)."""
    fitted = tmp_path / "fitted"
    fitted.mkdir()
    (fitted / "experiment.yaml").write_text(yaml.safe_dump({"model": {"name": "bayes_hier"}}))
    argv = ["predict", str(fitted), "--out", str(tmp_path / "c.h5ad"), "--real", str(tmp_path / "r.h5ad"), "--counts", "nb"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "which fits itself" in err and "evaluate: {counts: nb}" in err
