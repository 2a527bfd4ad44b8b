"""Shared by the pipeline tests that need a trained run and its predictions on disk (a tiny generator, 2 steps)."""

import os
import shutil

import pytest

from distgen.cli import main
from distgen.config import save_yaml

DATA = {"dataset": "norman_k562", "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4}
TINY = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                  "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
        "data": DATA, "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}
#: The cheapest `distgen evaluate` options: one metric, no figures, ceiling or baselines.
EVAL = ["--metrics", "mse", "--no-plots", "--no-ceiling", "--baselines", "", "--quiet"]


def without_write_rights() -> list[str]:
    """The prefix that runs a command unable to write into read-only folders (root writes anywhere: drop the capabilities;
    CI runs as root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root writes into read-only folders and setpriv is not there to drop that right")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A folder holding ``run/`` (``distgen train`` of TINY) and its ``pred.h5ad`` / ``real.h5ad`` (``distgen predict``)."""
    root = tmp_path_factory.mktemp("out")
    cfg = save_yaml(TINY, root / "t.yaml")
    assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
    assert main(["predict", str(root / "run"), "--out", str(root / "pred.h5ad"), "--real", str(root / "real.h5ad")]) == 0
    return root
