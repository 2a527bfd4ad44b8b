"""Issue 17 items 4 and "runs": ``distgen predict`` checks the run's ``config.yaml`` against the config its
checkpoint was trained with (an edited config is one line naming the key, not a size-mismatch
traceback), and refuses NaN/inf generated cells naming the condition and the checkpoint."""

import pytest
import torch
import yaml

from distgen.cli import main
from distgen.config import save_yaml
from distgen.models.generator import Generator
from distgen.pipeline.experiment import run
from distgen.train.checkpoint import NonFiniteSamplesError

DATA = {"dataset": "norman_k562", "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4}
TINY = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                  "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
        "data": DATA, "train": {"steps": 2, "sets_per_batch": 2, "progress": False},
        "evaluate": {"plots": False, "baselines": ["control"]}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pc")
    cfg = save_yaml({k: v for k, v in TINY.items() if k != "evaluate"}, root / "t.yaml")
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


def _edit(run_dir, section, key, value):
    path = run_dir / "config.yaml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    node = doc
    for k in section:
        node = node[k]
    node[key] = value
    path.write_text(yaml.safe_dump(doc))
    return original


@pytest.mark.parametrize(("section", "key", "value", "shown"), [
    (("model", "backbone"), "hidden", 32, "model.backbone.hidden: 16 -> 32"),  # would not fit the weights
    (("data",), "set_size", 8, "data.set_size: 4 -> 8"),  # would fit them, silently predicting under other settings
])
def test_edited_config_is_one_line_naming_the_key(trained, tmp_path, capsys, section, key, value, shown):
    original = _edit(trained, section, key, value)
    try:
        code = main(["predict", str(trained), "--out", str(tmp_path / "pred.h5ad")])
    finally:
        (trained / "config.yaml").write_text(original)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err and "size mismatch" not in err
    assert shown in err and "config.yaml differs from the config checkpoint" in err and "step_00000002" in err
    assert not (tmp_path / "pred.h5ad").exists()


def test_unedited_config_predicts(trained, tmp_path):
    assert main(["predict", str(trained), "--out", str(tmp_path / "pred.h5ad")]) == 0


@pytest.fixture
def nan_generator(monkeypatch):
    real = Generator.predict

    def predict(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        return torch.where(torch.arange(out.shape[-1]) == 3, torch.nan, out)

    monkeypatch.setattr(Generator, "predict", predict)


def test_non_finite_samples_are_refused_naming_condition_and_checkpoint(trained, tmp_path, capsys, nan_generator):
    code = main(["predict", str(trained), "--out", str(tmp_path / "pred.h5ad")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "generated values are NaN or inf for condition " in err and "step_00000002" in err and "--weights raw" in err
    assert not (tmp_path / "pred.h5ad").exists()


def test_run_refuses_non_finite_samples_before_writing_a_prediction(tmp_path, nan_generator):
    with pytest.raises(NonFiniteSamplesError, match=r"NaN or inf for condition .* Check checkpoint .*step_00000002"):
        run(TINY, tmp_path / "exp", progress=False, metrics=["mse"], plots=False)
    assert not (tmp_path / "exp" / "pred.h5ad").exists() and not (tmp_path / "exp" / "DONE").exists()


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensors(tmp_path, capsys):
    """Training never saves NaN weights; a checkpoint that holds them (an import, a hand edit through the checkpoint
    API) was loaded and only its NaN cells were refused, with advice about sampling steps that cannot help."""
    import shutil

    from distgen.train.checkpoint import load_checkpoint, save_checkpoint

    cfg = save_yaml({k: v for k, v in TINY.items() if k != "evaluate"}, tmp_path / "t.yaml")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    ckpt = load_checkpoint(tmp_path / "run")
    model = {k: v.clone() for k, v in ckpt.model.items()}
    model["backbone.inp.weight"][0, :3] = float("nan")
    state = {k: v for k, v in ckpt.state.items() if k not in ("format", "step", "has_ema", "files")}
    shutil.rmtree(ckpt.path)
    save_checkpoint(tmp_path / "run" / "checkpoints", ckpt.step, model, ckpt.optimizer, ckpt.rng, state, ckpt.ema)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--out", str(tmp_path / "pred.h5ad")]) == 1
    err = capsys.readouterr().err
    assert "holds NaN or inf weights in 1 tensor(s): backbone.inp.weight (3 values)" in err and "step_00000002" in err
    assert not (tmp_path / "pred.h5ad").exists()


def test_predicting_from_a_checkpoint_written_after_the_loss_diverged_warns(tmp_path, capsys):
    cfg = save_yaml({**{k: v for k, v in TINY.items() if k != "evaluate"}, "train": {**TINY["train"], "steps": 4, "lr": 10.0}},
                    tmp_path / "t.yaml")
    from distgen.errors import DivergenceWarning

    with pytest.warns(DivergenceWarning, match="training diverged"):
        assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert "DIVERGED at step 2" in capsys.readouterr().out
    with pytest.warns(DivergenceWarning, match=r"step_00000004 was written at step 4, after the run's training loss diverged at step 2"):
        assert main(["predict", str(tmp_path / "run"), "--out", str(tmp_path / "pred.h5ad")]) == 0
