"""The cell-eval layout edge: Cells -> file -> the same Cells; other tools' files (old column names) readable."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.data import layout
from distgen.errors import InputDataError
from distgen.types import Cells


def _cells(contexts=("x", "x", "y", "y")):
    x = torch.tensor([[0.5, 1.0], [0.0, 2.0], [1.5, 0.25], [0.0, 0.0]])
    return Cells(x, ["A+B", "control", "A", "control"], ["g0", "g1"], list(contexts))


def test_write_then_read_gives_the_same_population(tmp_path):
    cells = _cells()
    a = layout.write(cells, tmp_path / "p.h5ad", "pred")
    assert list(a.obs.columns) == [layout.PERT_COL, layout.CELLTYPE_COL, layout.KIND_COL]
    assert a.obs[layout.PERT_COL].tolist() == ["A+B", layout.CONTROL, "A", layout.CONTROL]
    assert a.obs[layout.KIND_COL].tolist() == ["pred", "control", "pred", "control"]
    assert a.obs_names.tolist() == ["pred_0", "control_0", "pred_1", "control_1"]
    back = layout.read(tmp_path / "p.h5ad")
    assert torch.equal(back.X, cells.X) and back.genes == cells.genes
    assert back.control == layout.CONTROL and back.conditions.tolist() == ["A+B", layout.CONTROL, "A", layout.CONTROL]
    assert back.contexts.tolist() == ["x", "x", "y", "y"]
    assert layout.to_anndata(_cells(("all",) * 4)).obs.columns.tolist() == [layout.PERT_COL, layout.KIND_COL]  # no contexts: no column


def test_a_batch_column_is_written_and_read_back_when_the_cells_have_batches(tmp_path):
    cells = _cells()
    batched = Cells(cells.X, cells.conditions, cells.genes, cells.contexts, ["d1", "d1", "d2", "d2"])
    a = layout.write(batched, tmp_path / "p.h5ad", "pred")
    assert list(a.obs.columns) == [layout.PERT_COL, layout.CELLTYPE_COL, layout.BATCH_COL, layout.KIND_COL]
    assert layout.read(tmp_path / "p.h5ad").batches.tolist() == ["d1", "d1", "d2", "d2"]
    assert layout.BATCH_COL not in layout.to_anndata(cells).obs.columns  # no batches ("all"): no column
    assert layout.BATCH_COL not in layout.to_anndata(batched, with_batch=False).obs.columns


def test_other_conventions_are_read_and_labels_made_canonical():
    obs = pd.DataFrame({"condition": ["B+A", "ctrl", "A+ctrl", "control"]}, index=[f"c{i}" for i in range(4)])
    a = ad.AnnData(X=np.ones((4, 2), dtype=np.float32), obs=obs)
    a.var_names = ["g0", "g1"]
    with pytest.raises(InputDataError, match=r"holds 2 usual control labels .*\['control', 'ctrl'\].*--control control"):
        layout.read(a)  # two usual control labels: which one is the control is the user's to say
    cells = layout.read(a, control="control")  # column guessed: condition
    assert cells.control == "control"
    # sorted atoms; with the control named, 'ctrl' is a perturbation alone (as cell-eval scores it) and an atom of a combination
    assert cells.conditions.tolist() == ["A+B", "ctrl", "A+ctrl", "control"]
    gears = a.copy()
    gears.obs["condition"] = ["B+A", "ctrl", "A+ctrl", "A+ctrl"]
    assert layout.read(gears).conditions.tolist() == ["A+B", "ctrl", "A", "A"]  # the control guessed (GEARS' ctrl): dropped from combinations
    assert cells.names.tolist() == ["c0", "c1", "c2", "c3"] and set(cells.contexts) == {"all"}
    with pytest.raises(ValueError, match=r"none of .* is in the obs"):
        layout.read(ad.AnnData(X=np.ones((1, 1), dtype=np.float32)))
    with pytest.raises(ValueError, match="cell-type column 'donor' is not in"):
        layout.read(a, control="control", celltype_col="donor")


def test_bad_populations_write_nothing(tmp_path):
    bad = _cells()
    nan = Cells(bad.X * float("nan"), bad.conditions, bad.genes, bad.contexts)
    no_ctrl = bad.perturbed()
    for cells, msg in ((nan, "NaN/inf"), (no_ctrl, "no control cells")):
        with pytest.raises(ValueError, match=msg):
            layout.write(cells, tmp_path / "never.h5ad")
        assert not (tmp_path / "never.h5ad").exists()


def test_read_pair_shares_column_and_control_and_uses_celltypes_when_every_file_has_them(tmp_path):
    pred, real = layout.to_anndata(_cells(), "pred"), layout.to_anndata(_cells(), "real")
    p, r, t, info = layout.read_pair(pred, real)
    assert (info.pert_col, info.control, info.celltype_col) == (layout.PERT_COL, layout.CONTROL, layout.CELLTYPE_COL)
    assert t is None and r.contexts.tolist() == ["x", "x", "y", "y"]
    no_types = real.copy()
    del no_types.obs[layout.CELLTYPE_COL]
    p, r, _, info = layout.read_pair(pred, no_types)
    assert info.celltype_col is None and set(p.contexts) == {"all"}
    with pytest.raises(ValueError, match="the training file has no control cells"):
        layout.read_pair(pred, real, train=pred[pred.obs[layout.PERT_COL] != layout.CONTROL].copy())


def test_a_condition_that_reads_back_as_the_control_is_refused(tmp_path):
    """'non-targeting ' (a trailing space) was written as a perturbation and read back as control cells."""
    cells = Cells(torch.zeros(3, 2), ["control", "non-targeting ", "A"], ["g0", "g1"])
    with pytest.raises(ValueError, match="'non-targeting ' reads as the file's control label 'non-targeting'"):
        layout.write(cells, tmp_path / "never.h5ad")
    assert not (tmp_path / "never.h5ad").exists()
