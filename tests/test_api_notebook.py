"""The Python API as a notebook uses it (notebook user round, 2026-12-07): objects between the calls, cells re-run.

``distgen.predict(..., out=)`` wrote over any file (the training data it had just read, a run folder's own
``pred.h5ad``, someone else's file; ``out`` and ``real`` the same path) where ``distgen predict`` refuses each; ``predict``
and ``fit`` re-seeded the caller's global torch random state (``build`` already left it as it was).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

import distgen
from distgen.errors import InputDataError, OutputPathError

DATA = {"hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}, "set_size": 4}
TINY = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8},
                  "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                  "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
        "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny generator fitted on a copy of the bundled Norman file, loaded from its path."""
    from distgen.data import bundled

    root = tmp_path_factory.mktemp("nb")
    path = root / "cells.h5ad"
    bundled.norman_k562().write_h5ad(path)
    doc = {**TINY, "data": {**DATA, "dataset": str(path)}}
    data = distgen.load_data(**doc["data"])
    model = distgen.build(doc, data)
    distgen.fit(model, data, config=doc)
    return root, doc, data, model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_predict_out_never_writes_over_the_data_it_reads(fitted):
    root, _, data, model = fitted
    before = _digest(root / "cells.h5ad")
    for kw in ({"out": root / "cells.h5ad"}, {"real": root / "cells.h5ad"}):  # was: the training file replaced by the prediction
        with pytest.raises(OutputPathError, match=r"cells\.h5ad.*which distgen\.predict reads"):
            distgen.predict(model, data, max_cells=4, **kw, overwrite=True)
    assert _digest(root / "cells.h5ad") == before


def test_predict_out_refuses_another_file_a_folder_and_one_path_twice(fitted):
    root, _, data, model = fitted
    other = root / "notes.h5ad"
    other.write_text("mine")
    with pytest.raises(OutputPathError, match=r"exists and is not a previous pred output.*overwrite=True"):
        distgen.predict(model, data, out=other, max_cells=4)
    assert other.read_text() == "mine"
    with pytest.raises(OutputPathError, match=r"is a folder"):  # was an IsADirectoryError after the whole prediction
        distgen.predict(model, data, out=root, max_cells=4)
    with pytest.raises(OutputPathError, match=r"out and real are the same file"):
        distgen.predict(model, data, out=root / "same.h5ad", real=root / "same.h5ad", max_cells=4)
    assert not (root / "same.h5ad").exists()
    # a cell re-run writes over its own earlier prediction; overwrite=True over another file
    first = distgen.predict(model, data, out=root / "pred.h5ad", real=root / "real.h5ad", max_cells=4)
    again = distgen.predict(model, data, out=root / "pred.h5ad", real=root / "real.h5ad", max_cells=4, seed=1)
    assert not torch.equal(first.X, again.X)
    assert np.array_equal(np.asarray(ad.read_h5ad(root / "pred.h5ad").X), again.X.numpy())
    distgen.predict(model, data, out=other, max_cells=4, overwrite=True)
    assert ad.read_h5ad(other).n_obs == len(again)


def test_predict_out_refuses_a_run_folder_s_own_file(fitted, tmp_path):
    _, doc, data, model = fitted
    run = tmp_path / "run"
    distgen.fit(distgen.build(doc, data), data, config=doc, run_dir=run)
    with pytest.raises(OutputPathError, match=r"metrics\.csv, a file of the train run folder"):
        distgen.predict(model, data, out=run / "metrics.csv", max_cells=4, overwrite=True)
    # a distgen run folder owns its pred.h5ad (a previous prediction: without the run check it was replaced as one)
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "experiment.yaml").write_text("model: {}\n")
    distgen.predict(model, data, out=tmp_path / "pred.h5ad", max_cells=4)
    (exp / "pred.h5ad").write_bytes((tmp_path / "pred.h5ad").read_bytes())
    before = _digest(exp / "pred.h5ad")
    with pytest.raises(OutputPathError, match=r"pred\.h5ad, a file of the experiment run folder"):
        distgen.predict(model, data, out=exp / "pred.h5ad", max_cells=4, seed=3)
    assert _digest(exp / "pred.h5ad") == before


def test_predict_and_fit_leave_the_caller_s_random_state_as_it_was(fitted):
    _, doc, data, model = fitted
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    distgen.predict(model, data, max_cells=4)
    assert torch.equal(torch.rand(3), expected)  # was the stream of the last group's seed, whatever the caller had seeded
    torch.manual_seed(5)
    distgen.fit(distgen.build(doc, data), data, config=doc)
    assert torch.equal(torch.rand(3), expected)
    # and the results still do not depend on it
    torch.manual_seed(1)
    a = distgen.predict(model, data, max_cells=4)
    torch.manual_seed(2)
    assert torch.equal(distgen.predict(model, data, max_cells=4).X, a.X)


def test_fit_interrupted_restores_the_caller_s_random_state_too(fitted):
    _, doc, data, _ = fitted

    def stop(trainer, step):
        raise KeyboardInterrupt

    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    with pytest.raises(KeyboardInterrupt):
        distgen.fit(distgen.build(doc, data), data, config=doc, callbacks=[stop])
    assert torch.equal(torch.rand(2), expected)


def test_evaluate_names_what_it_takes_for_a_wrong_object(fitted):
    _, _, data, model = fitted
    pred = distgen.predict(model, data, max_cells=4)
    for bad in (pred.X.numpy(), pred.X, data):
        with pytest.raises(TypeError, match=r"evaluate: pred is Cells \(distgen\.predict\), an AnnData or an \.h5ad path, got"):
            distgen.evaluate(bad, data.capped(4))
    with pytest.raises(TypeError, match=r"evaluate: truth is a Dataset \(distgen\.load_data\), Cells, an AnnData or an \.h5ad path, got ndarray"):
        distgen.evaluate(pred, pred.X.numpy())


def test_a_missing_control_label_in_python_names_the_keyword(fitted, tmp_path):
    _, _, data, model = fitted
    distgen.predict(model, data, out=tmp_path / "p.h5ad", real=tmp_path / "r.h5ad", max_cells=4)
    with pytest.raises(InputDataError, match=r"pass --control LABEL; control='LABEL' in Python"):
        distgen.evaluate(tmp_path / "p.h5ad", tmp_path / "r.h5ad", control="ctrl", metric_names=["mse"], baselines=[],
                         ceiling=False, make_plots=False, progress=False)


def test_a_split_of_conditions_on_data_with_one_condition_says_to_hold_out_a_context():
    # Kang PBMC (control vs stimulated, 7 cell types) with the default split: was "lower test_frac", which cannot help
    with pytest.raises(InputDataError, match=r"one perturbed condition \('stimulated'\).*'kind': 'held_out_context', 'test_contexts': \['B'\]"):
        distgen.load_data("kang_pbmc", hvg=32)


def test_a_dataset_shows_itself_in_one_line(fitted):
    _, _, data, _ = fitted
    text = repr(data)
    assert "\n" not in text and len(text) < 300  # was the whole AnnData and every split index: 79 lines
    n = len(data.data.is_control)
    assert re.fullmatch(rf"Dataset\('.*cells\.h5ad': {n} cells x {data.info.n_genes} genes, \d+ perturbations, 1 context; split 'combo_seen2': "
                        rf"train {data.split.train.numel()}, val {data.split.val.numel()}, test {data.split.test.numel()} cells, "
                        rf"{len(data.split.test_conditions)} held-out conditions\)", text), text
    assert repr(data.capped(4)).endswith(", at most 4 cells per group)")


def test_a_capped_prediction_scored_against_the_whole_truth_is_warned_about(fitted):
    from distgen.errors import DistgenWarning

    _, _, data, model = fitted
    capped = distgen.predict(model, data, max_cells=10)
    kw = {"metric_names": ["mse"], "baselines": [], "ceiling": False, "make_plots": False, "progress": False}
    # was scored without a word: 10 generated cells a group against all 100 real ones (and their ceiling and baselines)
    with pytest.warns(DistgenWarning, match=r"at most 10 generated cells a group where the truth has up to 100.*data\.capped\(10\)"):
        distgen.evaluate(capped, data, **kw)
    with pytest.warns(DistgenWarning, match=r"the truth has at most 10 cells a group where the prediction has up to 100.*max_cells=10"):
        distgen.evaluate(distgen.predict(model, data), data.capped(10), **kw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DistgenWarning)
        distgen.evaluate(capped, data.capped(10), **kw)
        distgen.evaluate(distgen.predict(model, data), data, **kw)


def test_predict_out_named_like_a_bundled_dataset_is_not_taken_for_its_data_file(fitted, tmp_path, monkeypatch):
    # a bundled name is no file (``distgen predict``'s read_files leaves it out); out='norman_k562' in the
    # working folder, once written, was refused on the cell's re-run as "the data file 'norman_k562', which distgen.predict reads"
    _, doc, _, _ = fitted
    doc = {**doc, "data": {**doc["data"], "dataset": "norman_k562"}}
    bundled_data = distgen.load_data(**doc["data"])
    model = distgen.build(doc, bundled_data)
    distgen.fit(model, bundled_data, config=doc)
    monkeypatch.chdir(tmp_path)
    for seed in (0, 1):  # the cell run twice: the second replaces the first's prediction
        cells = distgen.predict(model, bundled_data, out="norman_k562", max_cells=4, seed=seed)
        assert np.array_equal(np.asarray(ad.read_h5ad(tmp_path / "norman_k562").X), cells.X.numpy())


def test_predict_refusing_its_data_file_names_the_python_keyword(fitted):
    # the refusal of out= the data file said "(--overwrite included)", a flag the Python call has not
    root, _, data, model = fitted
    with pytest.raises(OutputPathError, match=r"\(overwrite=True included\)") as err:
        distgen.predict(model, data, out=root / "cells.h5ad", max_cells=4, overwrite=True)
    assert "--overwrite" not in str(err.value)


def test_fit_and_predict_leave_numpy_s_and_python_s_random_state_alone(fitted):
    # distgen draws from torch's generators and seeded numpy Generators only; the global ones are the caller's
    import random

    _, doc, data, _ = fitted
    np.random.seed(11)
    random.seed(11)
    expected = (np.random.rand(3).tolist(), random.random())
    np.random.seed(11)
    random.seed(11)
    model = distgen.build(doc, data)
    distgen.fit(model, data, config=doc)
    distgen.predict(model, data, max_cells=4)
    assert (np.random.rand(3).tolist(), random.random()) == expected


def test_predict_guards_the_data_file_after_the_notebook_changes_its_working_folder(fitted, tmp_path, monkeypatch):
    # a Dataset loaded from a relative path kept the path as written, and the data-file check read it from
    # the new working folder: out='../nb0/cells.h5ad' with overwrite=True replaced the training file, and a prediction of
    # the same name in the new folder was refused on its cell's re-run as the data file
    root, doc, _, model = fitted
    monkeypatch.chdir(root)
    data = distgen.load_data(**{**doc["data"], "dataset": "cells.h5ad"})
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    before = _digest(root / "cells.h5ad")
    with pytest.raises(OutputPathError, match=r"which distgen\.predict reads"):
        distgen.predict(model, data, out=os.path.relpath(root / "cells.h5ad", here), max_cells=4, overwrite=True)
    assert _digest(root / "cells.h5ad") == before
    for seed in (0, 1):  # another cells.h5ad, in the new folder: written, then replaced by the cell's re-run
        cells = distgen.predict(model, data, out="cells.h5ad", max_cells=4, seed=seed)
        assert np.array_equal(np.asarray(ad.read_h5ad(here / "cells.h5ad").X), cells.X.numpy())
