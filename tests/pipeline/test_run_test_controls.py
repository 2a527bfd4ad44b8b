"""``distgen run`` refuses a held-out context whose truth holds a single control cell before training (the evaluation
refused it after the whole training; only ``data.schema.min_cells: 1`` lets such a file load)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen.pipeline.experiment as experiment
from distgen.errors import InputDataError


def _file(path, n_ctrl_b: int) -> str:
    rng = np.random.default_rng(0)
    labels, contexts = [], []
    for ctx, n_ctrl in (("A", 6), ("B", n_ctrl_b)):
        for p, n in (("NT", n_ctrl), ("G0", 4), ("G1", 4), ("G0+G1", 4)):
            labels += [p] * n
            contexts += [ctx] * n
    a = ad.AnnData(rng.poisson(4.0, (len(labels), 12)).astype(np.float32),
                   obs=pd.DataFrame({"perturbation": labels, "cell_type": contexts}, index=[f"c{i}" for i in range(len(labels))]))
    a.var_names = [f"G{i}" for i in range(12)]
    a.write_h5ad(path)
    return str(path)


def _doc(dataset: str) -> dict:
    return {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                      "backbone": {"name": "mlp", "hidden": 16, "depth": 1}, "dynamics": {"name": "flow_matching"}},
            "data": {"dataset": dataset, "set_size": 2, "split": {"kind": "combo_seen2", "test_conditions": ["G0+G1"]},
                     "schema": {"perturbation_col": "perturbation", "control_labels": ["NT"], "context_cols": ["cell_type"],
                                "min_cells": 1}},
            "train": {"steps": 1, "sets_per_batch": 2, "progress": False}}


def test_a_held_out_context_with_one_control_cell_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "train_model", lambda *a, **k: pytest.fail("trained before the refusal"))
    doc = _doc(_file(tmp_path / "one.h5ad", n_ctrl_b=1))
    with pytest.raises(InputDataError, match=r"context 'B' has 1 control cell\(s\) for its held-out groups \(data\.schema\.min_cells=1"):
        experiment.run(doc, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()  # nothing was written


def test_two_control_cells_pass_to_training(tmp_path, monkeypatch):
    class Trained(Exception):
        pass

    def trained(*a, **k):
        raise Trained

    monkeypatch.setattr(experiment, "train_model", trained)
    with pytest.raises(Trained):
        experiment.run(_doc(_file(tmp_path / "two.h5ad", n_ctrl_b=2)), tmp_path / "exp")
