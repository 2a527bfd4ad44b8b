"""``distgen predict --sampling``: the trained weights sampled with other sampling settings, nothing else."""

import anndata as ad
import numpy as np
import pytest

from distgen.cli import main
from distgen.config import ConfigError
from distgen.pipeline.predict import sampling_overrides
from distgen.train.run import train_model

from .test_budgets import MODEL, TRAIN, _data, h5ad  # noqa: F401  (h5ad is a fixture)


@pytest.fixture(scope="module")
def run_dir(h5ad, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("sampling") / "run"
    train_model({"model": MODEL, "data": _data(h5ad), "train": {**TRAIN, "steps": 4}}, out)
    return out


def _predict(run_dir, out, *extra):
    assert main(["predict", str(run_dir), "--out", str(out), "--seed", "3", *extra]) == 0
    return np.asarray(ad.read_h5ad(out).X)


def test_sampling_settings_change_the_samples_not_the_weights(run_dir, tmp_path):
    base = _predict(run_dir, tmp_path / "a.h5ad")
    again = _predict(run_dir, tmp_path / "b.h5ad", "--sampling", "model.dynamics.solver.steps=2")  # the trained value: same draw
    finer = _predict(run_dir, tmp_path / "c.h5ad", "--sampling", "model.dynamics.solver.steps=8")
    np.testing.assert_array_equal(base, again)
    assert base.shape == finer.shape and not np.allclose(base, finer)


def test_only_sampling_keys_are_accepted(run_dir, tmp_path, capsys):
    assert sampling_overrides(["model.dynamics.guidance=1.0", "model.dynamics.sampler.start_step=999"])
    for bad in ("model.backbone.hidden=32", "train.steps=3", "model.dynamics", "model.dynamics.guidance_x=1"):
        with pytest.raises(ConfigError, match="--sampling changes only how a trained model samples"):
            sampling_overrides([bad])
    code = main(["predict", str(run_dir), "--out", str(tmp_path / "x.h5ad"), "--sampling", "model.backbone.hidden=32"])
    assert code == 2 and "--sampling changes only" in capsys.readouterr().err
    assert not (tmp_path / "x.h5ad").exists()
