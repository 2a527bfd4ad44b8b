"""Files normalised differently, or scaled/centred, are refused with the right diagnosis (docs/reliability.md, "Scales must agree").

The pairs are built here from raw counts with the preprocessing a user would run (normalize_total to a
target, then natural or base-2 log), so the expected signatures are known without distgen's code.
"""

import glob
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.cli import main
from distgen.data import layout
from distgen.evaluation.io import ScaleMismatchError
from distgen.evaluation.normalization import check_same_normalization, signature
from distgen.pipeline.evaluate import evaluate_files
from distgen.pipeline.profile_eval import load_pair

CONTROL = "non-targeting"
METRICS = ["mse"]


def _counts(seed=0, n_genes=40, n_ctrl=30, n_per=10, perts=("A", "B", "C")):
    rng = np.random.default_rng(seed)
    base = rng.gamma(1.0, 2.0, n_genes)
    xs, labels = [rng.poisson(base, (n_ctrl, n_genes))], [CONTROL] * n_ctrl
    for i, p in enumerate(perts):
        eff = np.ones(n_genes)
        eff[rng.choice(n_genes, 5, replace=False)] = 3.0 + i
        xs.append(rng.poisson(base * eff, (n_per, n_genes)))
        labels += [p] * n_per
    counts = np.concatenate(xs).astype(np.float64)
    counts[counts.sum(1) == 0, 0] = 1  # no empty cell
    obs = pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))])
    return counts, obs, [f"G{i}" for i in range(n_genes)]


def _file(counts, obs, genes, target=1e4, log=np.log1p):
    norm = counts / counts.sum(1, keepdims=True) * target if target else counts
    a = ad.AnnData(X=log(norm).astype(np.float32), obs=obs.copy())
    a.var_names = genes
    return a


@pytest.fixture(scope="module")
def raw():
    real = _counts(0)
    pred = _counts(1)
    return real, pred


def _pair(raw, pred_kw=None, real_kw=None):
    (rc, ro, g), (pc, po, _) = raw
    return _file(pc, po, g, **(pred_kw or {})), _file(rc, ro, g, **(real_kw or {}))


@pytest.mark.parametrize(("pred_kw", "words"), [
    ({"target": 1e6}, r"pred cells are normalised to 1e6 per cell then log1p but the real cells are normalised to 1e4.*target_sum=1e4"),
    ({"log": lambda v: np.log2(1 + v)}, r"pred cells are normalised to 1e4 per cell then log2\(1 \+ x\) but the real cells are .*1e4 per cell then log1p"),
    ({"target": None}, r"pred cells are log1p of raw counts, not normalised .* but the real cells are normalised to 1e4"),
])
def test_a_different_normalisation_is_refused_naming_both(raw, pred_kw, words):
    pred, real = _pair(raw, pred_kw)
    with pytest.raises(ScaleMismatchError, match=words):
        evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    with pytest.raises(ScaleMismatchError, match=words):
        load_pair(pred, real, "target", CONTROL)  # --profile (log-scale profiles)


def test_cpm_refused_from_the_cli_in_one_line(raw, tmp_path, capsys):
    pred, real = _pair(raw, {"target": 1e6})
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    code = main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--out", str(tmp_path / "ev"),
                 "--metrics", "mse", "--no-plots", "--quiet", "--baselines", ""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "1e6" in err and "1e4" in err
    assert not (tmp_path / "ev" / "metrics.csv").exists()


@pytest.mark.parametrize("kw", [{}, {"target": 1e6, "log": lambda v: np.log2(1 + v)}, {"target": None}])
def test_the_same_normalisation_on_both_sides_is_scored(raw, kw):
    pred, real = _pair(raw, kw, kw)
    report = evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    assert np.isfinite(report.table.values["mse"]).all()


def test_totals_within_rounding_agree_and_gene_subsets_are_not_compared(raw):
    pred, real = _pair(raw, {"target": 1e4 * (1 + 1e-4)})  # rounding of a target: the same
    check_same_normalization(pred.X, real.X)
    # only some genes kept after normalising: the totals are no longer constant, nothing can be read off
    pred, real = _pair(raw, {"target": 1e6})
    assert signature(pred[:, :20].X) is None
    check_same_normalization(pred[:, :20].X, real[:, :20].X)


def _scanpy_log(counts, obs, genes, base=None, keep=20):
    """What scanpy.pp.normalize_total + scanpy.pp.log1p(base=...) leave, then an HVG-like subset of ``keep`` genes."""
    norm = counts / counts.sum(1, keepdims=True) * 1e4
    x = np.log1p(norm) if base is None else np.log1p(norm) / np.log(base)
    a = ad.AnnData(X=x[:, :keep].astype(np.float32), obs=obs.copy())
    a.var_names = genes[:keep]
    a.uns["log1p"] = {} if base is None else {"base": base}  # scanpy's record (anndata drops a None value)
    return a


def test_a_log_base_the_files_record_differently_is_refused_by_every_reader(raw, tmp_path):
    # log2 against the natural log on a gene subset: the values alone show nothing (no constant totals), every score
    # was off by the factor (mse about 20x on the Norman K562 pair), with no note; scanpy's records tell
    (rc, ro, g), (pc, po, _) = raw
    pred, real = _scanpy_log(pc, po, g, base=2), _scanpy_log(rc, ro, g)
    assert signature(pred.X) is None and signature(real.X) is None  # not vacuous: the value checks cannot see it
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    said = r"the pred file records scanpy's log1p with base=2 .* but the real file with the natural log \(base=None\)"
    for p, r in ((pred, real), (str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"))):  # AnnData, then the h5py reader
        with pytest.raises(ScaleMismatchError, match=said):
            evaluate_files(p, r, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
        with pytest.raises(ScaleMismatchError, match=said):
            load_pair(p, r, "target", CONTROL)  # --profile (log-scale profiles)
    from distgen.pipeline.evaluate import evaluate

    with pytest.raises(ScaleMismatchError, match=said):
        evaluate(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    # the same base on both sides, or a record on one side only: scored
    for p, r in ((_scanpy_log(pc, po, g, base=2), _scanpy_log(rc, ro, g, base=2)), (pred, _file(rc, ro, g)[:, :20].copy())):
        assert load_pair(p, r, "target", CONTROL)[0].n_perts == 3


def test_real_log_normalised_files_are_never_flagged():
    """No false alarm on real log-normalised data: bundled and shared files against their own cells (halves)."""
    from tests.conftest import SHARED_DATA

    files = sorted(glob.glob(os.path.join(os.path.dirname(layout.__file__), "..", "datasets", "*.h5ad")))
    root = os.environ.get("DISTGEN_SHARED_DATA", SHARED_DATA)
    files += sorted(glob.glob(os.path.join(root, "*", "*.h5ad"))) if os.path.isdir(root) else []
    seen = 0
    for f in files:
        a = ad.read_h5ad(f)
        for x in [a.X, *a.layers.values()]:
            x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
            x = np.asarray(x, dtype=np.float32)
            if np.all(x == np.floor(x)):  # raw counts: normalised here with every gene kept, the case the check reads
                x = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
                kept = x.sum(1) > 0
                assert signature(x[kept])[0] == "ln" and signature(x[kept])[1] == pytest.approx(1e4, rel=1e-4), f
            order = np.random.default_rng(0).permutation(len(x))
            half = len(x) // 2
            check_same_normalization(x[order[:half]], x[order[half:]])
            seen += 1
    assert seen >= 2  # at least the two bundled files


# ---------------------------------------------------------------------------------------------- negative values
def _zscore(x):
    x = np.asarray(x, dtype=np.float64)
    return ((x - x.mean(0)) / np.maximum(x.std(0), 1e-6)).astype(np.float32)


@pytest.mark.parametrize("side", ["pred", "real"])
def test_scaled_values_are_refused_as_scaled_not_as_unlogged(raw, side):
    pred, real = _pair(raw)
    target = pred if side == "pred" else real
    target.X = _zscore(target.X)
    with pytest.raises(ScaleMismatchError, match=rf"the {side} cells hold \d+ negative value.*scaled or centred") as err:
        evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    assert "apply scanpy.pp.log1p" not in str(err.value)
    assert "model's predictions" not in str(err.value)  # z-scores: about half the values below 0, not a model's output
    with pytest.raises(ScaleMismatchError, match="scaled or centred"):
        load_pair(pred, real, "target", CONTROL)


@pytest.mark.parametrize("side", ["pred", "real"])
def test_one_negative_value_anywhere_is_refused(raw, side):
    pred, real = _pair(raw)
    target = pred if side == "pred" else real
    x = target.X.copy()
    x[-1, -1] = -0.5  # the very last value: past any sample of rows
    target.X = x
    with pytest.raises(ScaleMismatchError, match=rf"the {side} cells hold 1 negative value\(s\) \(min -0.5\)"):
        evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)


def test_a_few_negative_predictions_of_another_model_say_how_to_score_them_as_generated(raw):
    # another tool's model (a regression head) outputs a few values just below 0: refused as "scaled or centred" only,
    # the user had no way to score them as the model's output, which distgen's own predictions get
    pred, real = _pair(raw)
    x = pred.X.copy()
    x[::7, 3] = -0.02
    pred.X = x
    with pytest.raises(ScaleMismatchError, match=r"If they are a model's predictions \(\d\.\d+% of the values are below 0.*"
                                                 r"adata\.uns\['distgen'\] = \{'kind': 'pred'\}"):
        evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    pred.uns["distgen"] = {"kind": "pred"}  # what the error says to do
    report = evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    assert any("below 0" in n and "scored as generated" in n for n in report.summary["notes"])
    assert np.isfinite(report.table.values["mse"]).all()


def test_negative_counts_are_refused_as_scaled_under_a_counts_profile(raw, tmp_path):
    (rc, ro, g), (pc, po, _) = raw
    pred = ad.AnnData(X=pc.astype(np.float32), obs=po.copy())
    real = ad.AnnData(X=rc.astype(np.float32), obs=ro.copy())
    pred.var_names = real.var_names = g
    x = real.X.copy()
    x[-1, 0] = -3
    real.X = x
    with pytest.raises(ScaleMismatchError, match=r"the real cells hold 1 negative value.*raw counts are never negative.*scaled or centred"):
        load_pair(pred, real, "target", CONTROL, scale="counts")


def test_negative_values_a_model_generated_are_scored_with_a_note(raw):
    # distgen's layout records a prediction file's kind: a model's signed output (an anchored generator) is its result
    from distgen.types import Cells

    pred, real = _pair(raw)
    cells = layout.read(pred, "target", CONTROL, name="pred")
    x = cells.X.clone()
    x[~cells.is_control, 0] = -0.25
    gen = layout.to_anndata(Cells(x, cells.conditions, cells.genes, control=CONTROL), "pred", pert_col="target", control=CONTROL)
    assert gen.uns["distgen"]["kind"] == "pred"
    report = evaluate_files(gen, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)
    assert any("below 0" in n and "scored as generated" in n for n in report.summary["notes"])
    gen.uns["distgen"]["kind"] = "real"  # the same values in a file that is not a model's prediction
    with pytest.raises(ScaleMismatchError, match="negative"):
        evaluate_files(gen, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)


def _generated(a):
    """``a`` marked as a model's predictions, as the refusal of a few negatives says to do."""
    a = a.copy()
    a.uns["distgen"] = {"kind": "pred"}
    return a


def _eval(pred, real):
    return evaluate_files(pred, real, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False, progress=False)


@pytest.mark.parametrize(("pred_kw", "transform"), [
    ({"log": lambda v: np.log2(1 + v)}, None),  # log2(1 + x) of the same normalised counts: 1.44 times log1p
    ({}, _zscore),  # z-scored log1p values: about half below 0
    ({"target": None, "log": lambda v: v}, None),  # raw counts
])
def test_a_prediction_marked_as_generated_must_still_be_on_the_truths_scale(raw, pred_kw, transform):
    # marking a file as a model's output (uns['distgen']['kind'] = 'pred') turned off the pred-vs-truth scale check too:
    # log2, z-scored or count predictions against a log1p truth were scored, with only a note
    pred, real = _pair(raw, pred_kw=pred_kw)
    if transform is not None:
        pred.X = transform(pred.X)
    with pytest.raises(ScaleMismatchError, match=r"marked as a model's predictions.*control cells .* not on the real control cells' scale"):
        _eval(_generated(pred), real)
    with pytest.raises(ScaleMismatchError, match=r"marked as a model's predictions"):
        load_pair(_generated(pred), real, "target", CONTROL)


def test_a_prediction_marked_as_generated_with_small_negatives_and_noise_on_the_truths_scale_is_scored(raw):
    pred, real = _pair(raw)
    rng = np.random.default_rng(3)
    x = pred.X + rng.normal(0, 0.05, pred.X.shape).astype(np.float32)  # a generator's noise: off the log grid, some values below 0
    assert (x < 0).any()
    pred.X = x
    report = _eval(_generated(pred), real)
    assert any("below 0" in n and "scored as generated" in n for n in report.summary["notes"])
    assert np.isfinite(report.table.values["mse"]).all()


def test_a_generated_prediction_read_on_its_own_is_checked_against_the_truth_it_is_given(raw):
    # distgen.evaluate reading the pred file on its own (truth given as Cells) compares it with that truth
    pred, real = _pair(raw, pred_kw={"log": lambda v: np.log2(1 + v)})
    truth = layout.read(real, "target", CONTROL, name="real")
    with pytest.raises(ScaleMismatchError, match=r"marked as a model's predictions"):
        import distgen

        distgen.evaluate(_generated(pred), truth, baselines=[], metric_names=METRICS, ceiling=False, make_plots=False,
                         progress=False, pert_col="target", control=CONTROL)


def test_a_diverged_generated_prediction_is_scored_by_a_profile_as_by_the_default_evaluation(raw, tmp_path):
    # a briefly trained model's predictions (distgen run's pred.h5ad, uns['distgen']['kind'] == 'pred') that reach 21 in log
    # space: the default evaluation scored them with a note, `--profile cell-eval-0.8.2` (pooled or --celltype-col) refused
    # them as "normalised but not log-transformed: apply scanpy.pp.log1p to the pred cells", log1p of log values
    pred, real = _pair(raw)
    x = pred.X.copy()
    x[(pred.obs["target"] != CONTROL).to_numpy(), :3] = 21.0  # generated cells only: the controls are measured ones
    pred.X = x
    pred, real = _generated(pred), real.copy()
    default = _eval(pred, real)
    assert any("predictions reach 21" in n for n in default.summary["notes"])
    data, info = load_pair(pred, real, "target", CONTROL)
    assert any("predictions reach 21" in n for n in info.notes)
    assert data.n_perts == 3
    for name, a in (("pred", pred), ("real", real)):
        a.obs["celltype"] = np.where(np.arange(a.n_obs) % 2 == 0, "T", "B")
        a.write_h5ad(tmp_path / f"{name}.h5ad")
    for extra in ([], ["--celltype-col", "celltype"]):
        out = tmp_path / f"ev{len(extra)}"
        code = main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--out", str(out),
                     "--profile", "cell-eval-0.8.2", "--quiet", *extra])
        assert code == 0, extra
        assert len(pd.read_csv(out / "metrics.csv")) == 3 * (1 + len(extra) // 2)  # every perturbation (of each context)
        assert "predictions reach 21" in (out / "summary.json").read_text()


def test_load_pair_compares_the_two_scales_once(raw, monkeypatch):
    """``read_files`` (``check_files``) compares the pair's scales; ``eval_data`` compared the same files again (align only
    reorders genes, which no scale decision reads): 4 ``value_scale`` calls for a log pair, now 2. A model's
    log-space predictions (``uns['distgen']['kind'] == 'pred'``), which ``check_files`` does not compare, are scored with
    the 'predictions reach' note (``_generated``), at no more calls."""
    import distgen.evaluation.io as io

    calls = []
    scale = io.value_scale
    monkeypatch.setattr(io, "value_scale", lambda x: calls.append(1) or scale(x))
    pred, real = _pair(raw)
    assert load_pair(pred, real, "target", CONTROL)[0].n_perts == 3
    assert len(calls) == 2
    calls.clear()
    pred.uns["distgen"] = {"kind": "pred"}
    assert load_pair(pred, real, "target", CONTROL)[0].n_perts == 3
    assert len(calls) == 2
