"""The cell-eval2 layout: column ``target`` with ``non-targeting`` controls, the value scale in ``uns``, old files still read."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.data import layout
from distgen.types import Cells


def _cells(x=None):
    x = torch.rand(9, 4) if x is None else x
    return Cells(x, ["A"] * 3 + ["B+C"] * 3 + ["control"] * 3, ["g1", "g2", "g3", "g4"])


def test_written_files_use_cell_eval2_names_and_record_their_scale(tmp_path):
    a = layout.write(_cells(), tmp_path / "p.h5ad", "pred")
    back = ad.read_h5ad(tmp_path / "p.h5ad")
    for f in (a, back):
        assert "target" in f.obs.columns and "target_gene" not in f.obs.columns
        assert set(f.obs["target"]) == {"A", "B+C", "non-targeting"}
        assert f.uns["distgen"]["scale"] == "lognorm" and f.uns["distgen"]["pert_col"] == "target"
    counts = layout.write(_cells(torch.randint(0, 9, (9, 4)).float()), tmp_path / "c.h5ad", "pred", scale="counts")
    assert counts.uns["distgen"]["scale"] == "counts"
    with pytest.raises(ValueError, match="scale must be one of"):
        layout.to_anndata(_cells(), scale="log2")


def test_write_predictions_records_the_scale():
    x = np.random.default_rng(0).poisson(3.0, (6, 4)).astype(np.float32)
    a = layout.write_predictions(x, ["A"] * 6, x[:3], ["g1", "g2", "g3", "g4"], scale="counts")
    assert a.uns["distgen"]["scale"] == "counts" and "target" in a.obs.columns


def test_old_files_with_target_gene_are_still_read(tmp_path):
    x = np.random.default_rng(1).random((6, 3)).astype(np.float32)
    old = ad.AnnData(X=x, obs=pd.DataFrame({"target_gene": ["A", "A", "B", "B", "non-targeting", "non-targeting"]},
                                           index=[f"c{i}" for i in range(6)]), var=pd.DataFrame(index=["g1", "g2", "g3"]))
    old.write_h5ad(tmp_path / "old.h5ad")
    cells = layout.read(tmp_path / "old.h5ad")
    assert sorted(set(cells.conditions[~cells.is_control])) == ["A", "B"] and cells.control == "non-targeting"
    new = layout.write(Cells(torch.rand(6, 3), ["A", "A", "B", "B", "control", "control"], ["g1", "g2", "g3"]), tmp_path / "new.h5ad")
    assert new.uns["distgen"]["pert_col"] == "target"
    *_, info = layout.read_pair(tmp_path / "new.h5ad", tmp_path / "new.h5ad")
    assert info.pert_col == "target" and info.scales == {"real": "lognorm", "pred": "lognorm"}
    # an old file (no target column) beside a new one: name the column both have
    *_, info = layout.read_pair(tmp_path / "old.h5ad", tmp_path / "old.h5ad")
    assert info.pert_col == "target_gene" and info.scales == {}


def test_files_at_different_recorded_scales_are_refused_with_the_fix(tmp_path):
    layout.write(_cells(), tmp_path / "log.h5ad", "pred")
    layout.write(_cells(torch.randint(0, 9, (9, 4)).float()), tmp_path / "counts.h5ad", "real", scale="counts")
    with pytest.raises(ValueError, match=r"different value scales.*--counts"):
        layout.read_pair(tmp_path / "log.h5ad", tmp_path / "counts.h5ad")


def test_a_counts_profile_on_log_files_says_to_predict_counts(tmp_path):
    from distgen.pipeline.evaluate import load_pair

    layout.write(_cells(), tmp_path / "p.h5ad", "pred")
    layout.write(_cells(), tmp_path / "r.h5ad", "real")
    with pytest.raises(ValueError, match="distgen predict --counts"):
        load_pair(tmp_path / "p.h5ad", tmp_path / "r.h5ad", scale="counts")
    data, info = load_pair(tmp_path / "p.h5ad", tmp_path / "r.h5ad")
    assert data.n_perts == 2 and info.pert_col == "target"
