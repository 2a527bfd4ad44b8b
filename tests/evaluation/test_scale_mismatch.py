"""Issue 17 item 6: prediction and truth on different value scales are a clear error, not an mse in the billions."""

import numpy as np
import pytest

from distgen.cli import main
from distgen.evaluation.io import ScaleMismatchError, value_scale
from distgen.pipeline.evaluate import evaluate_files, load_pair

from .synth import CONTROL, make_pair


@pytest.fixture(scope="module")
def pair():
    return make_pair(seed=2, n_genes=30, n_ctrl=30, n_cells=6, combos=False)


def _with_x(adata, x):
    out = adata.copy()
    out.X = np.asarray(x, dtype=np.float32)
    return out


def test_value_scale():
    assert value_scale(np.array([[0.0, 1.5], [2.25, 0.5]]))[0] == "log"
    assert value_scale(np.array([[0.0, 3.0], [12.0, 1.0]])) == ("counts", 12.0)
    assert value_scale(np.array([[0.5, 3000.25]]))[0] == "normalized"
    assert value_scale(np.zeros((3, 2)))[0] == "empty"  # says nothing: never a mismatch


@pytest.mark.parametrize(("side", "transform", "words"), [
    # small raw counts (max 25: under the "raw counts above 30" check) against log-normalised truth
    ("pred", lambda x: np.minimum(np.round(np.expm1(x)), 25), r"pred cells are raw counts \(integers\) \(max 25\).*apply "
     r"scanpy.pp.normalize_total then scanpy.pp.log1p to the pred cells"),
    # normalised, never logged
    ("pred", np.expm1, r"pred cells are normalised but not log-transformed.*apply scanpy.pp.log1p to the pred cells"),
    # the truth is the odd one out
    ("real", lambda x: np.minimum(np.round(np.expm1(x)), 25), r"real cells are raw counts.*to the real cells"),
])
def test_a_scale_mismatch_is_refused_with_the_fix(pair, side, transform, words):
    real, pred = pair
    if side == "pred":
        pred = _with_x(pred, transform(pred.X))
    else:
        real = _with_x(real, transform(real.X))
    with pytest.raises(ScaleMismatchError, match=words):
        load_pair(pred, real, "target", CONTROL)
    with pytest.raises(ScaleMismatchError):
        evaluate_files(pred, real, pert_col="target", control=CONTROL, baselines=[], metric_names=["mse"], ceiling=False, progress=False)


def test_the_same_scale_on_both_sides_is_scored(pair):
    real, pred = pair
    data, _ = load_pair(pred, real, "target", CONTROL)
    assert data.n_perts == 10


def test_cli_scale_mismatch_is_one_line_exit_2(pair, tmp_path, capsys):
    real, pred = pair
    real.write_h5ad(tmp_path / "real.h5ad")
    _with_x(pred, np.expm1(pred.X)).write_h5ad(tmp_path / "pred.h5ad")
    code = main(["evaluate", "--pred", str(tmp_path / "pred.h5ad"), "--real", str(tmp_path / "real.h5ad"), "--out", str(tmp_path / "ev"),
                 "--pert-col", "target", "--control", CONTROL, "--metrics", "mse", "--no-plots", "--quiet", "--baselines", ""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "normalised but not log-transformed" in err and "scanpy.pp.log1p" in err
    assert not (tmp_path / "ev" / "metrics.csv").exists()


def test_a_diverging_model_is_scored_with_a_note_not_refused(pair):
    # a generator that blows up on some cells writes log-space values above any real log expression;
    # from a file that is a scale mismatch, from a model generated in this process it is the model's result
    import torch

    from distgen.data import layout
    from distgen.evaluation import score

    real, pred = pair
    pred_c, real_c, _, _ = layout.read_pair(pred, real, "target", CONTROL)
    x = pred_c.X.clone()
    x[~torch.from_numpy(pred_c.is_control), 0] = 24.0  # one gene diverges in every generated cell
    wild = type(pred_c)(X=x, conditions=pred_c.conditions, contexts=pred_c.contexts, batches=pred_c.batches, genes=pred_c.genes,
                        control=pred_c.control)
    with pytest.raises(ScaleMismatchError):
        score(wild, real_c, {}, metrics=["mse"], ceiling=False)
    report = score(wild, real_c, {}, metrics=["mse"], ceiling=False, generated=True)
    assert any("predictions reach 24" in n and "diverges" in n for n in report.summary["notes"])
    calm = score(pred_c, real_c, {}, metrics=["mse"], ceiling=False, generated=True)
    assert not any("diverges" in n for n in calm.summary["notes"])
    assert report.summary["metrics"]["mse"]["model"] > calm.summary["metrics"]["mse"]["model"]


def test_the_scale_checks_read_rows_spread_over_the_file_not_its_first_2000():
    # files sorted by group: 2,500 cells of one kind first, then 1,000 of another; the checks read only the first 2,000
    # rows and judged the file by the first group alone
    from distgen.evaluation.io import check_counts, check_scale

    rng = np.random.default_rng(0)
    low = rng.poisson(2.0, (2500, 20)).astype(np.float32)  # integers, none above 30
    high = rng.poisson(60.0, (1000, 20)).astype(np.float32)  # integers above 30: raw counts
    logged = np.log1p(high).astype(np.float32)  # fractional
    assert value_scale(np.concatenate([low, high]))[1] > 30  # the maximum of the whole file, not of its first group
    with pytest.raises(ValueError, match="look like raw counts"):  # every value of the first 2,000 rows is <= 30
        check_scale(np.concatenate([low, high]), "pred")
    with pytest.raises(ValueError, match="fractional or negative"):  # the first 2,000 rows are integers
        check_counts(np.concatenate([low, logged]), "pred")
