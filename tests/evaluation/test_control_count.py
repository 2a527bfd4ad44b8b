"""One control cell in a file is refused, as a one-cell perturbation is left unscored (docs/metrics.md, "Bad input").

Every delta (mse_delta, pearson_delta, the DE tests) is taken from the control mean; from one cell it is that
cell's noise: the tester's mse_delta went 0.038 -> 1.89 with no note.
"""

import numpy as np
import pytest

from distgen.pipeline.evaluate import evaluate_files
from distgen.pipeline.profile_eval import load_pair

from .synth import CONTROL, make_pair

KW = {"baselines": [], "metric_names": ["mse_delta"], "ceiling": False, "make_plots": False, "progress": False}


@pytest.fixture(scope="module")
def pair():
    return make_pair(seed=8, n_genes=16, n_ctrl=12, n_cells=5, combos=False)


def _keep_controls(a, n):
    ctrl = np.flatnonzero(a.obs["target"].astype(str).to_numpy() == CONTROL)
    keep = np.ones(a.n_obs, bool)
    keep[ctrl[n:]] = False
    return a[keep].copy()


@pytest.mark.parametrize("side", ["pred", "real"])
def test_one_control_cell_is_refused_on_either_side(pair, side):
    real, pred = pair
    files = {"real": real, "pred": pred}
    files[side] = _keep_controls(files[side], 1)
    with pytest.raises(ValueError, match=rf"the {side} file has only 1 control cell\(s\); at least 2 are needed"):
        evaluate_files(files["pred"], files["real"], **KW)
    with pytest.raises(ValueError, match=rf"the {side} file has only 1 control cell"):
        load_pair(files["pred"], files["real"], "target", CONTROL)  # --profile


def test_one_control_cell_of_one_context_is_refused_naming_it(pair):
    real, pred = pair
    real, pred = real.copy(), pred.copy()
    for a in (real, pred):
        a.obs["celltype"] = np.where(np.arange(a.n_obs) % 2 == 0, "T", "B")
    ctrl_b = np.flatnonzero((pred.obs["target"].astype(str) == CONTROL).to_numpy() & (pred.obs["celltype"] == "B").to_numpy())
    keep = np.ones(pred.n_obs, bool)
    keep[ctrl_b[1:]] = False
    with pytest.raises(ValueError, match=r"the pred file has only 1 control cell\(s\) of context 'B'"):
        evaluate_files(pred[keep].copy(), real, **KW)


def test_two_control_cells_are_scored(pair):
    real, pred = pair
    report = evaluate_files(_keep_controls(pred, 2), real, **KW)
    assert np.isfinite(report.table.values["mse_delta"]).all()
