"""``distgen run`` refuses, before training, held-out cells the evaluation cannot score: a context whose truth holds a
single control cell (refused by the evaluation after the whole training), held-out groups of one cell each (scored NaN
after it). Only ``data.schema.min_cells: 1`` lets such a file load."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import distgen.pipeline.experiment as experiment
from distgen.errors import InputDataError


def _file(path, n_ctrl_b: int, n: int = 4) -> str:
    rng = np.random.default_rng(0)
    labels, contexts = [], []
    for ctx, n_ctrl in (("A", 6), ("B", n_ctrl_b)):
        for p, k in (("NT", n_ctrl), ("G0", n), ("G1", n), ("G0+G1", n)):
            labels += [p] * k
            contexts += [ctx] * k
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


def test_held_out_groups_of_one_cell_each_are_refused_before_training(tmp_path, monkeypatch):
    # trained, then every metric NaN ("a one-cell group"), exit 0
    monkeypatch.setattr(experiment, "train_model", lambda *a, **k: pytest.fail("trained before the refusal"))
    with pytest.raises(InputDataError, match=r"every held-out group has fewer than 2 cells .*G0\+G1 @ A: 1"):
        experiment.run(_doc(_file(tmp_path / "one.h5ad", n_ctrl_b=3, n=1)), tmp_path / "exp")


def test_two_control_cells_pass_to_training(tmp_path, monkeypatch):
    class Trained(Exception):
        pass

    def trained(*a, **k):
        raise Trained

    monkeypatch.setattr(experiment, "train_model", trained)
    with pytest.raises(Trained):
        experiment.run(_doc(_file(tmp_path / "two.h5ad", n_ctrl_b=2)), tmp_path / "exp")


def test_a_cap_of_one_cell_per_group_names_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "train_model", lambda *a, **k: pytest.fail("trained before the refusal"))
    doc = {**_doc(_file(tmp_path / "cap.h5ad", n_ctrl_b=3)), "predict": {"max_cells_per_condition": 1}}
    with pytest.raises(InputDataError, match=r"predict\.max_cells_per_condition=1 \(--max-cells\) keeps that many per group"):
        experiment.run(doc, tmp_path / "exp")
