"""A held-out group is asked at its own dose (``schema.dose_col``), in memory as on disk (unseen-data round, 2026-12-06).

``distgen.predict`` asked every group at dose 1 while training sets carried the file's doses (a sci-Plex drug at 100 nM),
so a dose-aware conditioner (``dose: log``) predicted another dose than the one scored; ``predict_to_disk`` already
asked each group's own dose, so the two predictors disagreed on such a file.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.data import Dataset
from distgen.data.streaming import predict_to_disk
from distgen.pipeline.predict import predict

SCHEMA = {"perturbation_col": "drug", "control_labels": ["vehicle"], "context_cols": ["cell_line"], "dose_col": "dose",
          "perturbation_type": "chemical"}
DOSES = {("dexa", "A549"): 100.0, ("dexa", "K562"): 1000.0, ("saha", "A549"): 10.0, ("saha", "K562"): 10.0}  # held out
TRAINED = {("nutlin", "A549"): 5.0, ("nutlin", "K562"): 5.0}


@pytest.fixture(scope="module")
def sciplex(tmp_path_factory):
    """Counts of vehicle (dose 0), dexa, saha and nutlin in two cell lines, one dose per drug and line (none 1)."""
    rng = np.random.default_rng(3)
    rows = [(d, ct, 0.0 if d == "vehicle" else {**DOSES, **TRAINED}[(d, ct)]) for d in ("vehicle", "dexa", "saha", "nutlin") for ct in ("A549", "K562") for _ in range(6)]
    obs = pd.DataFrame(rows, columns=["drug", "cell_line", "dose"], index=[f"c{i}" for i in range(len(rows))])
    x = rng.poisson(3.0, (len(rows), 5)).astype(np.float32)
    path = tmp_path_factory.mktemp("doses") / "sciplex.h5ad"
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(5)])).write_h5ad(path)
    return str(path)


class DoseSpy:
    """Hands back its control cells and records the dose each (condition, context) is asked at."""

    def __init__(self, info):
        self.info, self.asked = info, {}

    def predict(self, control, control_mask, labels):
        for p, d, c in zip(labels.perturbation.tolist(), labels.dose.tolist(), labels.context.tolist()):
            key = ("+".join(self.info.perturbations[a] for a in p if a >= 0), self.info.contexts[c])
            self.asked.setdefault(key, set()).update(x for a, x in zip(p, d) if a >= 0)
        return control.clone()

    def can_predict(self, atoms):
        return [True] * len(atoms)


def test_each_group_is_asked_at_its_own_dose_in_memory_and_on_disk(sciplex, tmp_path):
    ds = Dataset.load({"dataset": sciplex, "schema": SCHEMA, "set_size": 4,
                       "split": {"kind": "random_conditions", "test_conditions": ["dexa", "saha"], "val_frac": 0.0, "seed": 0}})
    spy = DoseSpy(ds.info)
    predict(spy, ds, seed=0)
    assert spy.asked == {k: {v} for k, v in DOSES.items()}
    disk = DoseSpy(ds.info)
    predict_to_disk(disk, sciplex, tmp_path / "pred.h5ad", schema=ds.data.schema, set_size=4)
    assert {k: v for k, v in disk.asked.items() if k in DOSES} == spy.asked  # the file's every group: the held-out ones as in memory
