"""A prediction from a file (``distgen predict --data``, ``predict_to_disk``) labels a combination with its atoms in the
order the file writes them (``MAP2K6+KLF1`` stays ``MAP2K6+KLF1``), so cell-eval, which matches labels as written, pairs
it with the user's own truth file; a condition the file writes two ways keeps the sorted label (distgen reads it as one
condition either way)."""

import anndata as ad
import numpy as np
import pandas as pd

from distgen.data import PerturbationSchema, layout
from distgen.data.streaming import predict_to_disk
from distgen.models.baselines.control import ControlBaseline

SCHEMA = {"perturbation_col": "condition", "control_labels": ["ctrl"]}


def _file(path, labels):
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(10)]
    rows = [c for c in labels for _ in range(8)]
    x = rng.poisson(3.0, (len(rows), len(genes))).astype(np.float32)
    ad.AnnData(X=x, obs=pd.DataFrame({"condition": rows}, index=[f"c{i}" for i in range(len(rows))]),
               var=pd.DataFrame(index=genes)).write_h5ad(path)
    return path


def _labels(path):
    return set(ad.read_h5ad(path).obs[layout.PERT_COL].astype(str)) - {layout.CONTROL}


def test_a_prediction_from_a_file_writes_each_combination_as_the_file_does(tmp_path):
    data = _file(tmp_path / "d.h5ad", ["ctrl", "MAP2K6", "KLF1", "MAP2K6+KLF1", "G3 + G1", "G2+ctrl", "G4+G2+G4", "G5+G6", "G6+G5"])
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    predict_to_disk(ControlBaseline(), data, pred, set_size=4, schema=PerturbationSchema(**SCHEMA), real=real)
    written = {"MAP2K6", "KLF1", "MAP2K6+KLF1", "G3+G1", "G2", "G4+G2", "G5+G6"}  # G5+G6 / G6+G5: one condition, sorted
    assert _labels(pred) == _labels(real) == written
    back = layout.read(pred)
    assert {"KLF1+MAP2K6", "G1+G3", "G2+G4", "G5+G6"} <= set(back.conditions)  # read back order-free, as before


def test_a_runs_streamed_split_keeps_the_sorted_label_as_the_in_memory_run_writes_it(tmp_path):
    from distgen.data.disk_split import disk_split
    from distgen.data.streaming import DiskCells

    data = _file(tmp_path / "d.h5ad", ["ctrl", "MAP2K6", "KLF1", "MAP2K6+KLF1", "G1", "G2"])
    disk = DiskCells(data, PerturbationSchema(**SCHEMA))
    split = disk_split(disk, kind="random_conditions", test_conditions=["MAP2K6+KLF1"], val_frac=0.0, seed=0)
    pred, real = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    predict_to_disk(ControlBaseline(), disk, pred, set_size=4, split=split, real=real)
    assert _labels(pred) == _labels(real) == {"KLF1+MAP2K6"}
