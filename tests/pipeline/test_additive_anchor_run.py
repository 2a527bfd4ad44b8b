"""``model.anchor: additive`` in a saved run: the per-atom effects fitted before training are in the
checkpoint, and ``distgen predict RUN`` restores them (without them it could not predict)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from distgen.cli import main
from distgen.models.baselines.additive import AdditiveBaseline
from distgen.pipeline.predict import load_run_model
from distgen.train.run import train_model

MODEL = {"name": "generator", "anchor": "additive", "conditioner": {"name": "onehot", "dim": 8},
         "backbone": {"name": "mlp", "hidden": 16, "depth": 1}, "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}}


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory):
    """Log-scale cells of control, singles A / B / C and pairs A+B, B+C (25 cells each)."""
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(8)]
    shift = {"A": 0, "B": 1, "C": 2}
    rows, xs = [], []
    for cond in ("control", "A", "B", "C", "A+B", "B+C"):
        x = rng.gamma(2.0, 0.5, (25, len(genes)))
        for atom in cond.split("+"):
            if atom in shift:
                x[:, shift[atom]] += 1.5
        xs.append(x)
        rows += [cond] * 25
    obs = pd.DataFrame({"condition": rows}, index=[f"c{i}" for i in range(len(rows))])
    path = tmp_path_factory.mktemp("additive") / "combos.h5ad"
    ad.AnnData(np.log1p(np.concatenate(xs)).astype(np.float32), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return str(path)


def test_the_fitted_effects_travel_with_the_checkpoint_and_predict_restores_them(h5ad, tmp_path):
    data = {"dataset": h5ad, "schema": {"perturbation_col": "condition", "control_labels": ["control"]},
            "split": {"kind": "combo_seen2", "seed": 0, "test_conditions": ["A+B"]}, "set_size": 8}
    train = {"steps": 4, "sets_per_batch": 2, "progress": False, "checkpoint_every": 1000}
    run = train_model({"model": MODEL, "data": data, "train": train}, tmp_path / "run")
    singles = AdditiveBaseline().fit(run.dataset.train_table).singles
    want = torch.zeros(run.dataset.info.n_perturbations, run.dataset.info.n_genes)
    for atom, effect in singles.items():
        want[atom] = effect.float()
    assert sorted(singles) == [0, 1, 2] and want.abs().max() > 0.5
    ckpt = next((tmp_path / "run" / "checkpoints").glob("step_*"))
    saved = load_file(str(ckpt / "model.safetensors"))
    assert torch.allclose(saved["anchor.effects"], want, atol=1e-6)
    if (ckpt / "ema.safetensors").exists():  # the EMA of a constant is the constant
        assert torch.allclose(load_file(str(ckpt / "ema.safetensors"))["anchor.effects"], want, atol=1e-6)
    loaded = load_run_model(tmp_path / "run", run.dataset, None, "ema", torch.device("cpu"))
    assert torch.allclose(loaded.anchor.effects, want, atol=1e-6) and loaded.anchor.fitted[:3].all()
    out = tmp_path / "pred.h5ad"
    assert main(["predict", str(tmp_path / "run"), "--out", str(out), "--seed", "1"]) == 0  # no "call prepare(train)" error
    pred = ad.read_h5ad(out)
    assert "A+B" in set(pred.obs["target"].astype(str)) and np.isfinite(np.asarray(pred.X)).all()


def test_the_training_control_mean_travels_with_the_checkpoint(h5ad, tmp_path):
    data = {"dataset": h5ad, "schema": {"perturbation_col": "condition", "control_labels": ["control"]},
            "split": {"kind": "combo_seen2", "seed": 0, "test_conditions": ["A+B"]}, "set_size": 8}
    train = {"steps": 4, "sets_per_batch": 2, "progress": False, "checkpoint_every": 1000}
    run = train_model({"model": {**MODEL, "anchor_reference": "training"}, "data": data, "train": train}, tmp_path / "run")
    table = run.dataset.train_table
    want = table.X[table.labels.is_control].double().mean(0).float()  # one context: the mean of every training control cell
    raw = ad.read_h5ad(h5ad)
    assert torch.allclose(want, torch.tensor(np.asarray(raw.X[raw.obs["condition"].to_numpy() == "control"]).mean(0)), atol=1e-5)
    ckpt = next((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert torch.allclose(load_file(str(ckpt / "model.safetensors"))["anchor.control"][0], want, atol=1e-6)
    loaded = load_run_model(tmp_path / "run", run.dataset, None, "ema", torch.device("cpu"))
    assert loaded.anchor.reference == "training" and bool(loaded.anchor.control_fitted.all())
    assert torch.allclose(loaded.anchor.control[0], want, atol=1e-6)
    out = tmp_path / "pred.h5ad"
    assert main(["predict", str(tmp_path / "run"), "--out", str(out), "--seed", "1"]) == 0  # no "call prepare(train)" error
    assert np.isfinite(np.asarray(ad.read_h5ad(out).X)).all()


def test_a_checkpoint_with_the_former_anchor_key_names_still_loads_and_predicts_the_same(h5ad, tmp_path):
    """Runs trained before the anchor became its own module saved ``anchor_effects`` / ``anchor_control`` ...:
    reading the checkpoint renames them (``distgen.train.checkpoint.RENAMED_KEYS``)."""
    import json

    from safetensors.torch import save_file

    from distgen.train.checkpoint import file_digest

    data = {"dataset": h5ad, "schema": {"perturbation_col": "condition", "control_labels": ["control"]},
            "split": {"kind": "combo_seen2", "seed": 0, "test_conditions": ["A+B"]}, "set_size": 8}
    train = {"steps": 4, "sets_per_batch": 2, "progress": False, "checkpoint_every": 1000}
    run = train_model({"model": {**MODEL, "anchor_reference": "training"}, "data": data, "train": train}, tmp_path / "run")
    new = tmp_path / "new.h5ad"
    assert main(["predict", str(tmp_path / "run"), "--out", str(new), "--seed", "3"]) == 0
    ckpt = next((tmp_path / "run" / "checkpoints").glob("step_*"))
    state = json.loads((ckpt / "state.json").read_text())
    old_names = {"anchor.effects": "anchor_effects", "anchor.fitted": "anchor_fitted",
                 "anchor.control": "anchor_control", "anchor.control_fitted": "anchor_control_fitted"}
    for name in ("model.safetensors", "ema.safetensors"):
        if not (ckpt / name).exists():
            continue
        weights = load_file(str(ckpt / name))
        assert set(old_names) <= set(weights)
        save_file({old_names.get(k, k): v for k, v in weights.items()}, str(ckpt / name))  # as the former code wrote it
        state["files"][name] = {"sha256": file_digest(ckpt / name), "bytes": (ckpt / name).stat().st_size}
    (ckpt / "state.json").write_text(json.dumps(state))
    loaded = load_run_model(tmp_path / "run", run.dataset, None, "ema", torch.device("cpu"))
    assert bool(loaded.anchor.fitted[:3].all()) and bool(loaded.anchor.control_fitted.all())
    old = tmp_path / "old.h5ad"
    assert main(["predict", str(tmp_path / "run"), "--out", str(old), "--seed", "3"]) == 0
    assert np.array_equal(np.asarray(ad.read_h5ad(old).X), np.asarray(ad.read_h5ad(new).X))
