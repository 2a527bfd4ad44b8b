"""A run records what each statistic was fitted on: the training manifest (``data.provenance``) and ``eval/summary.json``."""

import json

from distgen.cli import main
from distgen.config import save_yaml

from .conftest import EVAL, TINY


def test_the_training_manifest_says_the_genes_were_selected_on_training_cells(made):
    manifest = json.loads((made / "run" / "manifest.json").read_text())
    split = json.loads((made / "run" / "split.json").read_text())
    prov = manifest["data"]["provenance"]
    assert prov["fitted_on"]["hvg"] == f"train ({len(split['train'])} cells)"  # TINY selects 32 genes
    assert prov["fitted_on"]["model"] == prov["fitted_on"]["baselines"] == "train"
    assert "every control cell is a training cell" in prov["controls"]  # no holdout_controls in TINY
    assert main(["evaluate", "--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad"), "--out",
                 str(made / "ev"), *EVAL]) == 0


def test_a_run_summary_records_the_provenance(tmp_path):
    doc = {**TINY, "data": {**TINY["data"], "split": {**TINY["data"]["split"], "holdout_controls": 0.2}},
           "evaluate": {"metrics": ["mse"], "plots": False, "ceiling": False, "baselines": ["control"]}}
    cfg = save_yaml(doc, tmp_path / "t.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    split = json.loads((tmp_path / "run" / "train" / "split.json").read_text())
    prov = summary["provenance"]
    assert prov["fitted_on"]["hvg"] == f"train ({len(split['train'])} cells)"
    assert "control cells out for test" in prov["controls"]
