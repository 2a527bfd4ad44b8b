"""The count round trip on held-out real data (Papalexi ECCITE-seq, raw counts): log-space metrics move by a stated amount.

The "prediction" is biological replicate 2 (real cells, log-normalised), the truth replicates 1 and
3. Each predicted cell is turned into counts at a library size drawn from the prediction's control
cells (as ``distgen predict --counts`` does) and re-normalised; the log-space metrics of the round
trip are compared with those of the original prediction. Tolerances are in docs/metrics.md.
"""

import os

import numpy as np
import pytest
import torch

from distgen.data import counts as C
from distgen.evaluation.io import eval_data
from distgen.evaluation.suite import run_metrics
from distgen.types import Cells

pytestmark = pytest.mark.slow
METRICS = ["mse", "mse_delta", "pearson_delta", "discrimination_score_l1", "overlap_at_N", "edistance"]
#: Largest allowed change of the mean over perturbations, for the ``round`` model.
TOLERANCE = {"mse": 0.01, "mse_delta": 0.01, "pearson_delta": 0.1, "discrimination_score_l1": 0.05, "overlap_at_N": 0.1,
             "edistance": 0.1}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from benchmarks.celleval2_pairs import CONTROL, PERT_COL, make_pair
    from distgen.data.layout import read
    from tests.conftest import SHARED_DATA

    root = os.environ.get("DISTGEN_SHARED_DATA", SHARED_DATA)
    if not os.path.isdir(root):
        pytest.skip("../shared/data is not present (set DISTGEN_SHARED_DATA to its path)")
    paths = make_pair("papalexi", os.path.abspath(root), str(tmp_path_factory.mktemp("papalexi")))
    out = []
    for path in paths:
        c = read(path, PERT_COL, CONTROL)
        raw = c.X.numpy().astype(np.float64)
        out.append((Cells(torch.from_numpy(C.to_lognorm(raw, 1e4)), c.conditions, c.genes, control=c.control), raw.sum(1)))
    return out


def test_round_trip_keeps_log_space_metrics_within_tolerance(pair):
    (pred, size), (real, _) = pair
    rng = np.random.default_rng(0)
    x = pred.X.numpy()
    drawn = np.where(pred.is_control, size, C.draw_sizes(size[pred.is_control], len(x), rng))
    back = Cells(torch.from_numpy(C.to_lognorm(C.to_counts(x, drawn, 1e4, "round"), 1e4)), pred.conditions, pred.genes,
                 control=pred.control)
    before, after = run_metrics(eval_data(pred, real), METRICS), run_metrics(eval_data(back, real), METRICS)
    moved = {m: abs(after.mean(m) - before.mean(m)) for m in METRICS}
    assert all(moved[m] <= TOLERANCE[m] for m in METRICS), moved
