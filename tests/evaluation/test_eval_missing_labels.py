"""Missing labels in the evaluated files are refused on every evaluate path (docs/reliability.md, "Missing labels").

A NaN, None, empty or "no value" label is never scored as a perturbation called "nan" or "NA", never
read as a control and never silently dropped; a missing cell type is never a context "nan".
"""

import numpy as np
import pandas as pd
import pytest

import distgen
from distgen.data.conditions import MissingLabelError
from distgen.evaluation import h5pair
from distgen.pipeline.evaluate import evaluate_files
from distgen.pipeline.profile_eval import evaluate_profile_files

from .synth import make_pair

METRICS = ["mse", "pearson_delta"]


def _blank(a, label, n=3, col="target", target="G2"):
    """``a`` with the first ``n`` cells of perturbation ``target`` relabelled ``label`` (NaN keeps a categorical)."""
    a = a.copy()
    values = a.obs[col].astype(str).to_numpy(dtype=object).copy()
    idx = np.flatnonzero(values == target)[:n]
    values[idx] = label
    a.obs[col] = pd.Categorical(values) if label is np.nan or label is None else values
    return a, idx


@pytest.fixture(scope="module")
def pair():
    return make_pair(seed=11, n_genes=16, n_ctrl=20, n_cells=6, combos=False)


@pytest.mark.parametrize("label", [np.nan, None, "", "NA", "nan", " null ", "<NA>"])
@pytest.mark.parametrize("side", ["pred", "real"])
def test_default_evaluate_refuses_a_missing_perturbation_label(pair, tmp_path, label, side):
    real, pred = pair
    bad, idx = _blank(real if side == "real" else pred, label)
    files = {"real": real, "pred": pred, side: bad}
    with pytest.raises(MissingLabelError) as err:
        evaluate_files(files["pred"], files["real"], metric_names=METRICS, ceiling=False, make_plots=False, progress=False,
                       baselines=[])
    msg = str(err.value)
    assert f"the {side} file" in msg and "'target'" in msg and f"3 of {bad.n_obs} cells" in msg
    assert repr(str(bad.obs_names[idx[0]])) in msg  # names a cell


@pytest.mark.parametrize("profile", ["cell-eval-0.8.2", "vcc2026"])
@pytest.mark.parametrize("label", [np.nan, "", "NA"])
def test_profiles_refuse_a_missing_perturbation_label_in_files(pair, tmp_path, profile, label):
    real, pred = pair
    if profile == "vcc2026":  # a counts profile: integer values
        real, pred = real.copy(), pred.copy()
        real.X = np.round(np.expm1(real.X)).astype(np.float32)
        pred.X = np.round(np.expm1(pred.X)).astype(np.float32)
    bad, _ = _blank(real, label)
    bad.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    with pytest.raises(MissingLabelError, match=r"the real file: .*3 of \d+ cells in obs column 'target'"):
        evaluate_profile_files(tmp_path / "pred.h5ad", tmp_path / "real.h5ad", tmp_path / "out", profile=profile)
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_fast_profile_reader_leaves_missing_labels_to_the_checking_reader(pair, tmp_path):
    real, pred = pair
    for label, name in ((np.nan, "nan"), ("", "empty"), ("NA", "na")):
        bad, _ = _blank(pred, label)
        bad.write_h5ad(tmp_path / f"{name}.h5ad")
        real.write_h5ad(tmp_path / "real.h5ad")
        assert h5pair.read_pair_fast(tmp_path / f"{name}.h5ad", tmp_path / "real.h5ad") is None
    assert h5pair.read_pair_fast(tmp_path / "real.h5ad", tmp_path / "real.h5ad") is not None  # the clean pair is read fast


def test_missing_cell_type_is_refused_not_a_context(pair):
    real, pred = pair
    real, pred = real.copy(), pred.copy()
    for a in (real, pred):
        a.obs["cell_type"] = np.where(np.arange(a.n_obs) % 2 == 0, "T", "B")
    bad, _ = _blank(real, np.nan, n=2, col="cell_type", target="T")
    with pytest.raises(MissingLabelError, match=r"the real file: .*2 of \d+ cells in obs column 'cell_type'"):
        evaluate_files(pred, bad, celltype_col="cell_type", metric_names=METRICS, ceiling=False, make_plots=False,
                       progress=False, baselines=[])


def test_python_api_refuses_missing_labels_in_anndata(pair):
    real, pred = pair
    bad, _ = _blank(pred, "", n=4)
    with pytest.raises(MissingLabelError, match="4 of"):
        distgen.evaluate(bad, real, metric_names=METRICS, ceiling=False, make_plots=False, progress=False, baselines=[])


def test_labelled_files_still_evaluate_every_cell(pair):
    real, pred = pair
    report = evaluate_files(pred, real, metric_names=METRICS, ceiling=False, make_plots=False, progress=False, baselines=[])
    assert sorted(report.table.perts) == sorted(set(real.obs["target"]) - {"non-targeting"})
