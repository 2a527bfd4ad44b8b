"""distgen under a caller's ``torch.set_default_dtype(torch.float64)`` (a notebook's habit).

Before, a model built then held float64 parameters and the first product with the float32 data failed inside
torch (``mat1 and mat2 must have the same dtype``): ``distgen.predict_run`` from a trained run, ``distgen.build``
then ``distgen.fit``. Now building, training and sampling run in float32 whatever the default (the run's weights
are float32), give what they give under the float32 default, and leave the caller's default as it was.
"""

import anndata as ad
import numpy as np
import torch
import yaml

import distgen
from distgen.cli import main
from distgen.pipeline.predict import predict_run

CONFIG = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
              "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
              "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}}},
    "data": {"dataset": "norman_k562", "hvg": 64, "split": {"kind": "combo_seen2", "seed": 0}, "set_size": 8},
    "train": {"steps": 2, "sets_per_batch": 2, "progress": False},
}




def test_predict_from_a_run_under_a_float64_default(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    predict_run(tmp_path / "run", tmp_path / "p32.h5ad", max_cells=10)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        predict_run(tmp_path / "run", tmp_path / "p64.h5ad", max_cells=10)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(previous)
    a, b = ad.read_h5ad(tmp_path / "p32.h5ad"), ad.read_h5ad(tmp_path / "p64.h5ad")
    assert np.array_equal(np.asarray(a.X), np.asarray(b.X))


def _build_fit_predict():
    data = distgen.load_data("norman_k562", split={"kind": "combo_seen2", "seed": 0}, hvg=64, set_size=8)
    model = distgen.build(CONFIG, data)
    distgen.fit(model, data, steps=2, sets_per_batch=2, progress=False)
    return model, distgen.predict(model, data, max_cells=10)


def test_build_fit_predict_under_a_float64_default():
    model32, cells32 = _build_fit_predict()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model64, cells64 = _build_fit_predict()
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(previous)
    assert all(p.dtype == torch.float32 for p in model64.parameters())
    s32, s64 = model32.state_dict(), model64.state_dict()
    assert all(torch.equal(s32[k], s64[k]) for k in s32)
    assert np.array_equal(np.asarray(cells32.X), np.asarray(cells64.X))
