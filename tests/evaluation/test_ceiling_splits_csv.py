"""calibration.csv holds the ceiling's split-by-split values (sources ``ceiling_split_<i>``) from which summary.json's
``ceiling_band`` is recomputed, and the report reads them without taking a split for a baseline."""

import math

import numpy as np
import pandas as pd
import pytest

from distgen.evaluation import score
from tests.evaluation.test_score import METRICS, _population


def test_calibration_csv_holds_each_ceiling_split_and_they_recompute_the_band(tmp_path):
    truth, pred = _population(0), _population(1, noise=0.05)
    rep = score(pred, truth, metrics=METRICS, seed=2, ceiling_splits=4)
    rep.write(tmp_path / "eval", make_plots=False)
    calib = pd.read_csv(tmp_path / "eval" / "calibration.csv", dtype={"perturbation": str})
    splits = sorted(s for s in calib["source"].unique() if s.startswith("ceiling_split_"))
    assert splits == [f"ceiling_split_{i}" for i in range(4)]
    for m in METRICS:
        wide = calib[(calib.metric == m) & calib.source.isin(splits)].pivot(index="source", columns="perturbation", values="value")
        stack = wide.loc[splits].to_numpy(dtype=float)
        every = np.isfinite(stack).all(0)
        means = stack[:, every].mean(1)
        band = rep.metrics[m]["ceiling_band"]
        assert band["n_splits"] == 4
        assert means.mean() == pytest.approx(band["mean"], rel=1e-12)
        assert means.std(ddof=1) == pytest.approx(band["std"], rel=1e-9)
        assert (means.min(), means.max()) == pytest.approx((band["min"], band["max"]), rel=1e-12)
        # the per-perturbation ceiling is their mean
        ceil = calib[(calib.metric == m) & (calib.source == "ceiling")].set_index("perturbation")["value"]
        assert wide.loc[splits].mean(0).to_numpy() == pytest.approx(ceil[wide.columns].to_numpy(), rel=1e-12)


def test_the_report_does_not_read_a_ceiling_split_as_a_baseline(tmp_path):
    from distgen.report.inputs import load_eval_dir

    truth, pred, bad = _population(0), _population(1, noise=0.05), _population(2, shift=-1.0)
    score(pred, truth, {"shifted": bad}, metrics=METRICS, seed=2, ceiling_splits=3).write(tmp_path / "eval", make_plots=False)
    inputs = load_eval_dir(tmp_path / "eval")
    names = [r.name for r in inputs.references]
    assert names == ["shifted", "ceiling"]
    assert not math.isnan(inputs.references[1].table.values["mse"][0])


@pytest.mark.parametrize("name", ["ceiling", "ceiling_split_0", "interpolated_duplicate"])
def test_a_reference_named_like_a_calibration_source_is_refused(name):
    """calibration.csv keys its tables by source: a baseline named ``ceiling`` (or ``ceiling_split_0``) was overwritten by
    the ceiling's table (its split's) in the file, without a word. Refused now, naming the reserved names."""
    from distgen.errors import UsageError

    truth, pred, bad = _population(0), _population(1, noise=0.05), _population(2, shift=-1.0)
    with pytest.raises(UsageError, match=rf"reference {name!r}.*calibration.csv.*rename"):
        score(pred, truth, {name: bad}, metrics=METRICS, ceiling_splits=2, interpolated=name == "interpolated_duplicate")
