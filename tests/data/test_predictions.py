"""write_predictions / write_ground_truth: the cell-eval layout, checked against cell-eval itself."""

import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.data import PerturbationData, make_split, write_ground_truth, write_predictions


def _pair(data, split):
    test = split.test.numpy()
    pert = test[~data.is_control[test]]
    ctrl = np.flatnonzero(data.is_control)
    g = torch.Generator().manual_seed(0)
    cells = data.table.X[pert] + 0.05 * torch.rand(len(pert), data.info.n_genes, generator=g)
    pred = write_predictions(
        cells, data.conditions[pert].tolist(), data.table.X[ctrl], data.info.genes,
        contexts=data.contexts[pert].tolist(), control_contexts=data.contexts[ctrl].tolist(), data=data,
    )
    real = write_ground_truth(data, test, ctrl)
    return pred, real, pert, ctrl


def test_layout_and_round_trip(tiny_adata, tiny_schema, tmp_path):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    split = make_split(data, "random_conditions", seed=0)
    pred, real, pert, ctrl = _pair(data, split)
    for a in (pred, real):
        assert list(a.var_names) == list(data.info.genes)
        assert a.n_obs == len(pert) + len(ctrl)
        assert (a.obs["target"] == "non-targeting").sum() == len(ctrl)
        assert set(a.obs["celltype"]) == {"ct1", "ct2"}
    assert set(pred.obs["target"]) == set(real.obs["target"]) == {*split.test_conditions, "non-targeting"}
    np.testing.assert_allclose(real.X[: len(pert)], data.table.X[pert].numpy())
    path = tmp_path / "p.h5ad"
    write_predictions(pred.X[: len(pert)], pred.obs["target"][: len(pert)].tolist(), data.table.X[ctrl], data.info.genes, path=path)
    back = ad.read_h5ad(path)
    np.testing.assert_allclose(back.X, pred.X)
    assert list(back.obs["target"]) == list(pred.obs["target"])


def test_cell_eval_accepts_the_pair(tiny_adata, tiny_schema):
    pytest.importorskip("cell_eval")
    from cell_eval._types import PerturbationAnndataPair

    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    pred, real, *_ = _pair(data, make_split(data, "combo_seen2", seed=0))
    pair = PerturbationAnndataPair(real=real, pred=pred, pert_col="target", control_pert="non-targeting")
    assert set(pair.perts) == set(real.obs["target"]) - {"non-targeting"}


def test_bad_prediction_input_writes_nothing(tiny_adata, tiny_schema, tmp_path):
    data = PerturbationData.from_anndata(tiny_adata, tiny_schema)
    x = torch.zeros(4, data.info.n_genes)
    ctrl = data.table.X[:3]
    path = tmp_path / "never.h5ad"
    cases = [
        ({"cells": x, "conditions": ["A", "A", "Z", "A"]}, KeyError, "unknown perturbation 'Z'"),
        ({"cells": x, "conditions": ["A"] * 4, "genes": list(reversed(data.info.genes))}, ValueError, "gene names differ"),
        ({"cells": x * float("nan"), "conditions": ["A"] * 4}, ValueError, "NaN/inf"),
        ({"cells": x[:, :3], "conditions": ["A"] * 4}, ValueError, r"\[N, G=15\]"),
        ({"cells": x, "conditions": ["A"] * 3}, ValueError, "3 condition labels for 4 cells"),
        ({"cells": x, "conditions": ["A"] * 4, "control_cells": ctrl[:0]}, ValueError, "no control cells"),
        # generated cells labelled as a control were written as control cells, pooled with the real ones
        ({"cells": x, "conditions": ["A", "A", "control", "A"], "data": None}, ValueError, "'control' is a control label"),
        ({"cells": x, "conditions": ["A", "non-targeting ", "A", "A"], "data": None}, ValueError, "'non-targeting ' is a control label"),
    ]
    for kw, err, msg in cases:
        args = {"control_cells": ctrl, "genes": data.info.genes, "data": data, "path": path} | kw
        with pytest.raises(err, match=msg):
            write_predictions(**args)
        assert not os.path.exists(path)


@pytest.mark.slow
@pytest.mark.celleval
def test_cell_eval_run_cli(tmp_path):
    """The real ``cell-eval run`` on a Norman combo split: results for the held-out pair (~30 s: numba)."""
    pytest.importorskip("cell_eval")
    import distgen.datasets as D

    data = PerturbationData.from_anndata(D.norman_k562(), D.NORMAN_SCHEMA)
    split = make_split(data, "combo_seen2", seed=0)
    pred, real, *_ = _pair(data, split)
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    exe = os.path.join(os.path.dirname(sys.executable), "cell-eval")
    out = tmp_path / "out"
    subprocess.run(
        [exe, "run", "-ap", str(tmp_path / "pred.h5ad"), "-ar", str(tmp_path / "real.h5ad"), "--pert-col", "target", "--profile", "minimal",
         "--num-threads", "1", "-o", str(out)],
        check=True, capture_output=True,
    )
    res = pd.read_csv(out / "results.csv")
    assert list(res["perturbation"]) == list(split.test_conditions)
    assert (res["pearson_delta"] > 0.9).all()  # predictions are the truth plus small noise
