"""A prediction file records how it was made (``uns["distgen"]["provenance"]``), enough to make the same cells again.

Before, ``distgen predict RUN --seed 5 --max-cells 3 --out p.h5ad`` wrote a file that said nothing of its seed,
checkpoint, weights or cap: a prediction met later could not be reproduced from what it holds.
"""

import anndata as ad
import numpy as np

import distgen
from distgen.cli import main


def _provenance(path):
    return dict(ad.read_h5ad(path).uns["distgen"]["provenance"])


def test_distgen_predict_records_its_seed_checkpoint_and_options(made, tmp_path):
    rec = _provenance(made / "pred.h5ad")
    assert rec["seed"] == 0 and rec["checkpoint"] == "step_00000002" and rec["weights"] == "ema" and rec["part"] == "test"
    assert rec["max_cells"] == 500 and rec["run"] == str(made / "run") and "sampling" not in rec and "genes" not in rec
    out = tmp_path / "p.h5ad"
    assert main(["predict", str(made / "run"), "--out", str(out), "--seed", "5", "--max-cells", "3", "--weights", "raw",
                 "--sampling", "model.dynamics.solver.steps=2"]) == 0
    rec = _provenance(out)
    assert (rec["seed"], rec["max_cells"], rec["weights"], rec["sampling"]) == (5, 3, "raw", "model.dynamics.solver.steps=2")
    again = tmp_path / "again.h5ad"  # the record alone makes the same cells
    assert main(["predict", rec["run"], "--out", str(again), "--seed", str(rec["seed"]), "--max-cells", str(rec["max_cells"]),
                 "--weights", rec["weights"], "--checkpoint", str(made / "run" / "checkpoints" / rec["checkpoint"]),
                 "--sampling", *rec["sampling"].split()]) == 0
    np.testing.assert_array_equal(ad.read_h5ad(out).X, ad.read_h5ad(again).X)


def test_the_python_predict_records_its_seed_and_cap(made, tmp_path):
    run = distgen.load_run(made / "run")
    distgen.predict(run.model, run.data, seed=7, max_cells=4, out=tmp_path / "p.h5ad", real=tmp_path / "r.h5ad")
    rec = _provenance(tmp_path / "p.h5ad")
    assert (rec["seed"], rec["max_cells"], rec["part"]) == (7, 4, "test") and rec["model"] == type(run.model).__name__
    assert "provenance" not in ad.read_h5ad(tmp_path / "r.h5ad").uns["distgen"]  # the truth is not a model's output


def test_distgen_run_records_the_seed_of_its_predictions(tmp_path):
    from distgen.config import save_yaml

    cfg = save_yaml({"model": {"name": "additive"}, "train": {"seed": 4},
                     "data": {"dataset": "norman_k562", "hvg": 32, "split": {"kind": "combo_seen2", "seed": 0, "test_frac": 0.9}},
                     "evaluate": {"plots": False, "ceiling": False, "baselines": [], "metrics": ["mse"], "counts": "round"}},
                    tmp_path / "c.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "exp")]) == 0
    rec = _provenance(tmp_path / "exp" / "pred.h5ad")
    assert (rec["seed"], rec["model"], rec["max_cells"]) == (4, "additive", 500)
    assert _provenance(tmp_path / "exp" / "pred_counts.h5ad") == {**rec, "counts": "round",  # the bundled file's sizes
                                                                  "library_sizes": "measured: obs['ncounts']"}


def test_an_evaluation_records_the_predictions_provenance_and_its_own_seed(made, tmp_path):
    """summary.json says how the scored prediction was made (both readers: anndata's, and h5py's for a profile)."""
    import json

    from distgen.data.layout import read_pair
    from distgen.evaluation.h5pair import read_pair_fast

    rec = _provenance(made / "pred.h5ad")
    assert read_pair_fast(made / "pred.h5ad", made / "real.h5ad")[2].provenance == rec
    assert read_pair(made / "pred.h5ad", made / "real.h5ad")[3].provenance == rec
    assert read_pair(made / "real.h5ad", made / "real.h5ad")[3].provenance == {}  # a file that records none
    out = tmp_path / "ev"
    assert main(["evaluate", "--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad"), "--out", str(out), "--seed", "3",
                 "--metrics", "mse", "--no-plots", "--ceiling-splits", "1", "--baselines", "", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pred_provenance"] == rec and summary["seed"] == 3
    out = tmp_path / "profile"
    assert main(["evaluate", "--pred", str(made / "pred.h5ad"), "--real", str(made / "real.h5ad"), "--out", str(out),
                 "--profile", "cell-eval-0.8.2", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["pred_provenance"] == rec
