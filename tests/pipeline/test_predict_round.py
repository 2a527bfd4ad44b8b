"""The prediction round (docs/reliability.md, "Prediction round, 2026-12-06"): ``distgen predict`` outputs, seeds and
messages, on a tiny generator trained 2 steps on synthetic raw counts (40 genes, two cell types)."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.config import save_yaml
from distgen.data.layout import truth_digest

GENES = [f"G{i}" for i in range(40)]


def _counts(path, seed=0, empty_controls=0):
    """Raw counts: per cell type A and B, 40 controls and 12 cells of P1, P2, P3 and P1+P2 (each lifts 3 genes)."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(1.0, 1.0, len(GENES)) + 0.05
    rows, labels, types = [], [], []
    for ct in ("A", "B"):
        for lab in ["control"] * 40 + [p for p in ("P1", "P2", "P3", "P1+P2") for _ in range(12)]:
            rate = base.copy()
            for atom in ([] if lab == "control" else lab.split("+")):
                rate[int(atom[1:]) * 3 : int(atom[1:]) * 3 + 3] *= 4.0
            rows.append(rng.poisson(rate / rate.sum() * rng.uniform(1000, 4000)))
            labels.append(lab)
            types.append(ct)
    x = np.asarray(rows, dtype=np.float32)
    x[:empty_controls] = 0
    obs = pd.DataFrame({"condition": labels, "cell_type": types}, index=[f"c{i}" for i in range(len(labels))])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=GENES)).write_h5ad(path)
    return path


def train_tiny(root, data, out="run"):
    """A tiny generator (onehot, MLP 16x1, one Euler step) trained 2 steps on the counts file ``data`` into ``root / out``,
    ``P1+P2`` held out (its cells in both cell types); returns ``root``."""
    cfg = {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 16, "depth": 1},
                     "dynamics": {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 1}}},
           "data": {"dataset": str(data), "schema": {"perturbation_col": "condition", "control_labels": ["control"], "context_cols": ["cell_type"],
                                                     "perturbation_type": "chemical"},
                    "split": {"kind": "combo_seen2", "test_conditions": ["P1+P2"]}, "set_size": 4},
           "train": {"steps": 2, "sets_per_batch": 2, "progress": False}}
    assert main(["train", str(save_yaml(cfg, root / f"{out}.yaml")), "--out", str(root / out)]) == 0
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("round")
    return train_tiny(root, _counts(root / "train.h5ad"))


def test_an_output_that_is_an_input_file_is_refused_even_with_overwrite(run, tmp_path, capsys):
    """``--out new.h5ad --data new.h5ad`` was refused as "not a previous prediction ... pass --overwrite", and with
    ``--overwrite`` replaced the user's file by its prediction; ``--real`` onto the run's training file alike."""
    mine = _counts(tmp_path / "new.h5ad", seed=1)
    before = mine.read_bytes()
    assert main(["predict", str(run / "run"), "--data", str(mine), "--out", str(mine), "--overwrite"]) == 1
    assert "--data" in capsys.readouterr().err and mine.read_bytes() == before
    train = run / "train.h5ad"
    before = train.read_bytes()
    assert main(["predict", str(run / "run"), "--out", str(tmp_path / "p.h5ad"), "--real", str(train), "--overwrite"]) == 1
    assert "training file" in capsys.readouterr().err and train.read_bytes() == before and not (tmp_path / "p.h5ad").exists()
    assert main(["predict", str(run / "run"), "--data", str(mine), "--out", str(tmp_path / "q.h5ad"), "--real", str(train), "--overwrite"]) == 1
    assert train.read_bytes() == before


def test_a_data_prediction_is_replaced_by_its_own_rerun(run, tmp_path):
    """The chunked writer marks generated rows ``predicted`` (the in-memory one ``pred``): a rerun of ``--data`` onto its
    own earlier output was refused as someone else's file (exit 1)."""
    out = tmp_path / "p.h5ad"
    for _ in range(2):
        assert main(["predict", str(run / "run"), "--data", str(run / "train.h5ad"), "--out", str(out), "--real", str(tmp_path / "r.h5ad")]) == 0


def test_a_data_prediction_into_folders_not_yet_made_leaves_only_its_two_files(run, tmp_path):
    """``--out new/a/p.h5ad`` was an h5py error (exit 1, naming ``p.h5ad.partial``) where the in-memory path makes the folder."""
    out, real = tmp_path / "new" / "a" / "p.h5ad", tmp_path / "new" / "b" / "r.h5ad"
    assert main(["predict", str(run / "run"), "--data", str(run / "train.h5ad"), "--out", str(out), "--real", str(real)]) == 0
    assert sorted(p.name for p in (tmp_path / "new").rglob("*") if p.is_file()) == ["p.h5ad", "r.h5ad"]


def test_a_data_prediction_and_its_truth_are_one_pair(run, tmp_path, capsys):
    """Both files record the truth's fingerprint (``truth_digest`` of the truth as read back), as ``write_pair`` does, so a
    prediction beside another truth (a kill between the two renames, files mixed up) is refused by ``distgen evaluate``."""
    p1, r1, p2, r2 = (tmp_path / n for n in ("p1.h5ad", "r1.h5ad", "p2.h5ad", "r2.h5ad"))
    other = _counts(tmp_path / "other.h5ad", seed=2)
    assert main(["predict", str(run / "run"), "--data", str(run / "train.h5ad"), "--out", str(p1), "--real", str(r1)]) == 0
    assert main(["predict", str(run / "run"), "--data", str(other), "--out", str(p2), "--real", str(r2)]) == 0
    pred, real = ad.read_h5ad(p1), ad.read_h5ad(r1)
    assert pred.uns["distgen"]["truth"] == real.uns["distgen"]["truth"] == truth_digest(real)
    capsys.readouterr()
    evaluate = ["--no-plots", "--metrics", "mse", "--no-ceiling", "--baselines", "", "--quiet"]
    assert main(["evaluate", "--pred", str(p2), "--real", str(r1), "--out", str(tmp_path / "e"), *evaluate]) == 2
    assert "another truth" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(p2), "--real", str(r2), "--out", str(tmp_path / "e2"), *evaluate]) == 0


def test_a_truth_that_fails_leaves_neither_file(run, tmp_path):
    """``predict_to_disk`` wrote the prediction, then the truth: a failure in the truth left a new prediction beside the
    earlier truth. Now neither path changes and no temp file is left."""
    from distgen.data.disk import DiskCells
    from distgen.data.disk_predict import predict_to_disk
    from distgen.data.record import DataRecord
    from distgen.pipeline.predict import open_run

    loaded = open_run(run / "run", None, "ema", "cpu", [], need_data=False, read_data=False)
    schema = DataRecord.load(run / "run").schema

    class Breaks:
        scale = "lognorm"

        def generated(self, x, group, start):
            return x

        def real(self, x, rows):
            if not controls[rows].all():  # the truth's perturbed cells (the prediction writes only control rows through it)
                raise OSError("disk full")
            return x

    controls = (ad.read_h5ad(run / "train.h5ad").obs["condition"].astype(str) == "control").to_numpy()

    out, real = tmp_path / "p.h5ad", tmp_path / "r.h5ad"
    out.write_bytes(b"earlier prediction")
    real.write_bytes(b"earlier truth")
    with pytest.raises(OSError, match="disk full"):
        predict_to_disk(loaded.model, DiskCells(run / "train.h5ad", schema), out, 4, real=real, values=Breaks())
    assert out.read_bytes() == b"earlier prediction" and real.read_bytes() == b"earlier truth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5ad", "r.h5ad"]


def test_a_seed_beyond_64_bits_is_refused_before_any_work(run, tmp_path, capsys):
    """``--seed 99999999999999999999999`` predicted every group and then stopped with an internal error writing the
    provenance (HDF5 has no such integer); the Python API alike."""
    import distgen
    from distgen.config import ConfigError

    out = tmp_path / "p.h5ad"
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(run / "run"), "--out", str(out), "--seed", str(10**23)])
    assert stop.value.code == 2 and "--seed" in capsys.readouterr().err and not out.exists()
    assert main(["predict", str(run / "run"), "--out", str(out), "--seed", str(2**63 - 1)]) == 0
    loaded = distgen.load_run(run / "run")
    with pytest.raises(ConfigError, match="64-bit"):
        distgen.predict(loaded.model, loaded.data, seed=2**70)


def test_unknown_labels_are_named_as_text_and_scanpy_stays_quiet(run, tmp_path, capsys):
    """An unseen cell type was named ``np.str_('C')``; a file with empty control cells also printed scanpy's raw
    ``UserWarning: Some cells have zero counts`` (distgen's own warning says which cells) on every normalised read."""
    a = ad.read_h5ad(run / "train.h5ad")
    a.obs["cell_type"] = a.obs["cell_type"].astype(str).replace({"B": "C"})
    a.write_h5ad(tmp_path / "c.h5ad")
    assert main(["predict", str(run / "run"), "--data", str(tmp_path / "c.h5ad"), "--out", str(tmp_path / "p.h5ad")]) == 2
    err = capsys.readouterr().err
    assert "unknown context 'C'" in err and "np.str_" not in err
    empty = _counts(tmp_path / "empty.h5ad", seed=3, empty_controls=3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["predict", str(run / "run"), "--data", str(empty), "--out", str(tmp_path / "q.h5ad"), "--counts", "poisson"]) == 0
    assert not [w for w in seen if "Some cells have zero counts" in str(w.message)]
    assert [w for w in seen if "3 of the 80 control cells" in str(w.message)]  # distgen's own warning, naming them


def test_predict_to_disk_refuses_to_write_over_the_file_it_reads(run, tmp_path):
    """``predict_to_disk(model, "new.h5ad", "new.h5ad")`` replaced the file with its prediction; a folder as ``out`` was an
    ``IsADirectoryError`` after every group was generated."""
    from distgen.data.disk_predict import predict_to_disk
    from distgen.data.record import DataRecord
    from distgen.errors import OutputPathError
    from distgen.pipeline.predict import open_run

    loaded = open_run(run / "run", None, "ema", "cpu", [], need_data=False, read_data=False)
    schema = DataRecord.load(run / "run").schema
    mine = _counts(tmp_path / "new.h5ad", seed=4)
    before = mine.read_bytes()
    for out, real in ((mine, None), (tmp_path / "p.h5ad", mine), (tmp_path, None)):
        with pytest.raises(OutputPathError):
            predict_to_disk(loaded.model, mine, out, 4, schema=schema, real=real)
    assert mine.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["new.h5ad"]


def test_an_input_under_another_name_is_refused_as_an_output(run, tmp_path, capsys):
    """A hard link of the data read was taken for another file (paths were compared resolved, not as files): the same
    check a case-insensitive file system (macOS, Windows) needs, where ``Data.h5ad`` is ``data.h5ad`` and the output's
    rename replaced the data read."""
    import os

    from distgen.data.disk_predict import predict_to_disk
    from distgen.data.record import DataRecord
    from distgen.errors import OutputPathError
    from distgen.pipeline.predict import open_run

    mine = _counts(tmp_path / "new.h5ad", seed=5)
    other = tmp_path / "other.h5ad"
    os.link(mine, other)
    assert main(["predict", str(run / "run"), "--data", str(mine), "--out", str(other), "--overwrite"]) == 1
    assert "--data" in capsys.readouterr().err
    loaded = open_run(run / "run", None, "ema", "cpu", [], need_data=False, read_data=False)
    with pytest.raises(OutputPathError, match="is the file predicted from"):
        predict_to_disk(loaded.model, mine, other, 4, schema=DataRecord.load(run / "run").schema)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.h5ad", "other.h5ad"]
