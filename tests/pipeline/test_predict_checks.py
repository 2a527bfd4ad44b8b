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
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err and "size mismatch" not in err
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
