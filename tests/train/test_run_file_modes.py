"""Every file of a trained run folder is readable by whom the umask allows, as a plain ``open`` would make it.

safetensors' ``save_file`` (0.8) creates its file ``0600`` whatever the umask: a run's weights, optimizer state and data
record were readable by their owner only, so on a shared cluster a colleague (or a job under a service account) could not
predict from the run although its ``config.yaml`` and ``split.json`` were readable.
"""

import os
import shutil
import stat

import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.data.bundled import path as bundled_path

CONFIG = {
    "model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
              "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
              "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}},
    "data": {"schema": {"perturbation_col": "condition", "context_cols": ["cell_type"]}, "hvg": 32,
             "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4},
    "train": {"steps": 2, "sets_per_batch": 2, "progress": False, "ema_decay": 0.9},
}


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_every_file_of_a_run_folder_follows_the_umask(tmp_path, umask):
    data = tmp_path / "train.h5ad"
    shutil.copy(bundled_path("norman_k562.h5ad"), data)
    config = {**CONFIG, "data": {**CONFIG["data"], "dataset": str(data)}}
    assert main(["train", str(save_yaml(config, tmp_path / "run.yaml")), "--out", str(tmp_path / "run")]) == 0
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"model.safetensors", "ema.safetensors", "optimizer.safetensors", "rng.safetensors",
            "data_record.safetensors", "data_record.json", "config.yaml"} <= names, sorted(names)
    readable = 0o444 & ~umask  # the read bits a plain open() gives under this umask
    wrong = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) & 0o444 != readable}
    assert not wrong, f"files whose read bits differ from {oct(readable)}: {wrong}"
