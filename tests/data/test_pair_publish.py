"""A kill between the two renames of ``predict_to_disk``'s prediction and truth, over a pair written before truth
fingerprints: the new truth (which records one) beside the earlier prediction (which records none) was scored, since
``check_pair`` checks only files that both record it (prediction round, left over). ``publish_pair`` now writes a marker
(``pair_marker``) before the renames and removes it after; ``check_pair`` refuses a half-new pair while it is there."""

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from distgen.data import PerturbationSchema, layout
from distgen.data.disk import DiskCells
from distgen.data.disk_predict import predict_to_disk
from distgen.models.baselines.control import ControlBaseline
from distgen.types.layout import MismatchedPair, pair_marker

SCHEMA = PerturbationSchema(perturbation_col="perturbation", context_cols=("cell_type",))


def _file(path, seed):
    rng = np.random.default_rng(seed)
    rows = [(c, t) for c in ("control", "A", "B") for t in ("ct1", "ct2") for _ in range(6)]
    obs = pd.DataFrame(rows, columns=["perturbation", "cell_type"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(2.0, (len(rows), 8)).astype(np.float32)
    ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(8)])).write_h5ad(path)
    return path


def _predict(src, pred, real):
    return predict_to_disk(ControlBaseline(), DiskCells(src, SCHEMA), pred, set_size=4, real=real)


@pytest.fixture
def old_pair(tmp_path):
    """A prediction and truth of one file, without the truth record (as distgen wrote them before truth fingerprints)."""
    pred, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    _predict(_file(tmp_path / "a.h5ad", 0), pred, real)
    for path in (pred, real):
        with h5py.File(path, "a") as f:
            del f["uns"]["distgen"]["truth"]
    return tmp_path, pred, real


def _killed_after(n, monkeypatch):
    """``ChunkedWriter._publish`` stopping the process (KeyboardInterrupt) after ``n`` renames."""
    done = []
    publish = layout.ChunkedWriter._publish

    def stop(self):
        if len(done) == n:
            raise KeyboardInterrupt
        publish(self)
        done.append(self.path)

    monkeypatch.setattr(layout.ChunkedWriter, "_publish", stop)


def test_a_kill_between_the_renames_over_an_older_pair_is_refused(old_pair, monkeypatch):
    root, pred, real = old_pair
    _killed_after(1, monkeypatch)  # the truth renamed, the prediction not
    with pytest.raises(KeyboardInterrupt):
        _predict(_file(root / "b.h5ad", 5), pred, real)
    assert "truth" in ad.read_h5ad(real).uns["distgen"] and "truth" not in ad.read_h5ad(pred).uns["distgen"]
    with pytest.raises(MismatchedPair, match="being renamed into place when it stopped"):  # was read as one pair
        layout.read_pair(pred, real)


def test_a_kill_before_the_renames_keeps_the_older_pair_readable(old_pair, monkeypatch):
    root, pred, real = old_pair
    _killed_after(0, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _predict(_file(root / "b.h5ad", 5), pred, real)
    layout.read_pair(pred, real)  # both files the earlier ones: one pair


def test_a_finished_pair_leaves_no_marker(tmp_path):
    pred, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    _predict(_file(tmp_path / "a.h5ad", 0), pred, real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5ad", "p.h5ad", "r.h5ad"]
    assert not (tmp_path / pair_marker(pred)).exists()
    layout.read_pair(pred, real)


def test_write_pair_killed_between_its_renames_over_an_older_pair_is_refused(old_pair, monkeypatch):
    """The in-memory writer (``distgen predict RUN --out --real``) renames the prediction, then the truth."""
    import os

    from distgen import atomic

    _, pred, real = old_pair
    cells = layout.read_pair(pred, real)
    renames = []

    def replace(src, dst):  # the marker's own write renames too: count the two files' renames only
        if str(dst).endswith(".h5ad"):
            if renames:
                raise KeyboardInterrupt
            renames.append(dst)
        os.rename(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    real_cells = cells[1]
    with pytest.raises(KeyboardInterrupt):
        layout.write_pair(real_cells, real_cells, pred, real)
    monkeypatch.undo()
    assert "truth" in ad.read_h5ad(pred).uns["distgen"] and "truth" not in ad.read_h5ad(real).uns["distgen"]
    with pytest.raises(MismatchedPair, match="being renamed into place when it stopped"):
        layout.read_pair(pred, real)
