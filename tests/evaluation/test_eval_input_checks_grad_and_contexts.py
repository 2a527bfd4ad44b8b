"""Evaluation inputs: a prediction tensor that requires grad, a per-context scale mismatch's file side,
and which pairs the loaders compare after ``normalization.check_files``."""

import warnings

import numpy as np
import pytest
import torch

from distgen.types import Cells

CONDS = ["control"] * 6 + ["A"] * 6 + ["B"] * 6
GENES = [f"g{j}" for j in range(8)]
COUNTS = np.random.default_rng(1).poisson(3, (18, 8)).astype(np.float32)


def test_check_holds_prediction_does_not_warn_on_a_tensor_that_requires_grad():
    """First in this file: torch says "Converting a tensor with requires_grad=True to a scalar" once per process."""
    from distgen.evaluation.io import ScaleMismatchError, check_holds_prediction

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_holds_prediction(torch.ones(4, 3, requires_grad=True))
        with pytest.raises(ScaleMismatchError, match="only zeros"):
            check_holds_prediction(torch.zeros(4, 3, requires_grad=True))


def test_counts_scale_prediction_that_requires_grad_is_scored_as_its_values():
    """``eval_data(scale='counts')`` raised numpy's RuntimeError on a tensor that requires grad (``check_counts``)."""
    from distgen.evaluation.io import eval_data

    truth = Cells(torch.from_numpy(COUNTS), CONDS, GENES)
    x = torch.from_numpy(COUNTS + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = eval_data(Cells(x.clone().requires_grad_(), CONDS, GENES), truth, scale="counts")
    plain = eval_data(Cells(x, CONDS, GENES), truth, scale="counts")
    assert torch.equal(data.pred.X, plain.pred.X) and not data.pred.X.requires_grad


def test_distgen_evaluate_of_a_prediction_that_requires_grad_equals_its_detached_values():
    """``distgen.evaluate(Cells)`` crashed in the summary digests (``x.numpy()``) and ``check_holds_prediction``'s
    ``float()`` warned "Converting a tensor with requires_grad=True to a scalar"."""
    import distgen

    truth = Cells(torch.from_numpy(np.log1p(COUNTS)), CONDS, GENES)
    x = torch.from_numpy(np.log1p(COUNTS + 1))
    kw = dict(ceiling=False, metric_names=["mse"], baselines=[], progress=False, make_plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = distgen.evaluate(Cells(x.clone().requires_grad_(), CONDS, GENES), truth, **kw)
    want = distgen.evaluate(Cells(x, CONDS, GENES), truth, **kw)
    assert got.summary["metrics"]["mse"]["model"] == want.summary["metrics"]["mse"]["model"] > 0
    assert got.summary["pred_digests"] == want.summary["pred_digests"]


def _context_pair(tmp_path):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    n, g = 60, 20
    obs = pd.DataFrame({"target_gene": (["non-targeting"] * 10 + ["A"] * 10 + ["B"] * 10) * 2,
                        "celltype": ["c1"] * 30 + ["c2"] * 30}, index=[f"c{i}" for i in range(n)])
    counts = rng.poisson(3, (n, g)).astype(np.float32)
    logn = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    var = pd.DataFrame(index=[f"g{j}" for j in range(g)])
    ad.AnnData(logn.copy(), obs=obs, var=var).write_h5ad(tmp_path / "real.h5ad")
    x = logn.copy()
    x[30:] = counts[30:]  # context c2 of the prediction holds raw counts; its log values are in a layer
    pred = ad.AnnData(x, obs=obs, var=var)
    pred.layers["logcounts"] = logn
    pred.write_h5ad(tmp_path / "pred.h5ad")
    return tmp_path / "pred.h5ad", tmp_path / "real.h5ad"


def test_a_per_context_scale_mismatch_keeps_its_side_and_names_the_layer(tmp_path):
    """``evaluate --profile --celltype-col``: the context's refusal was re-raised as a plain InputDataError, so
    ``scale_hints`` could not name the layer holding the log values; ``score(by_context=True)`` kept the side but did not
    name the context."""
    import distgen
    from distgen.evaluation.io import PairScaleError
    from distgen.pipeline.profile_eval import evaluate_profile_files

    pred, real = _context_pair(tmp_path)
    with pytest.raises(PairScaleError) as err:
        evaluate_profile_files(pred, real, tmp_path / "out", profile="cell-eval-0.8.2", celltype_col="celltype")
    assert err.value.side == "pred" and "context 'c2'" in str(err.value) and "adata.layers['logcounts']" in str(err.value)
    with pytest.raises(PairScaleError) as err:
        distgen.evaluate(pred, real, None, celltype_col="celltype", ceiling=False, metric_names=["mse"], baselines=[],
                         progress=False, make_plots=False)
    assert err.value.side == "pred" and "context 'c2'" in str(err.value) and "adata.layers['logcounts']" in str(err.value)


def _cells(x, conds=CONDS):
    return Cells(torch.from_numpy(np.asarray(x, dtype=np.float32)), conds, GENES)


@pytest.mark.parametrize("scale,generated,scales,pair", [
    ("lognorm", (), ("pred", "real"), True),
    ("lognorm", ("pred",), ("real",), False),
    ("counts", (), (), True),
    ("counts", ("pred",), (), False),
])
def test_check_files_records_what_it_compared(scale, generated, scales, pair):
    """``check_files`` says which files' scale it checked and whether it compared the pair; the loaders read that."""
    from distgen.evaluation.normalization import check_files

    x = np.log1p(COUNTS) if scale == "lognorm" else COUNTS
    got = check_files({"pred": _cells(x), "real": _cells(x)}, scale, generated)
    assert (got.scales, got.pair, got.notes) == (scales, pair, [])


@pytest.mark.parametrize("pair", [True, False])
def test_load_pair_and_load_contexts_compare_what_check_files_did_not(monkeypatch, tmp_path, pair):
    """The loaders read ``FileChecks`` (``info.checks``) instead of restating ``check_files``' rule."""
    import distgen.evaluation.normalization as N
    import distgen.pipeline.profile_eval as P

    pred, real = _context_pair(tmp_path)
    import anndata as ad

    p = ad.read_h5ad(pred)
    p.X = p.layers["logcounts"]
    p.write_h5ad(pred)
    seen, checked = [], []
    real_eval, real_files = P.eval_data, N.check_files
    monkeypatch.setattr(P, "eval_data", lambda *a, **k: seen.append(k["check_pred_scale"]) or real_eval(*a, **k))
    monkeypatch.setattr(P, "check_scale", lambda x, side: checked.append(side))
    monkeypatch.setattr(N, "check_files", lambda *a, **k: N.FileChecks([], ("real",), pair) if real_files(*a, **k) else None)
    P.load_pair(pred, real)
    assert seen == [not pair]
    P.load_contexts(pred, real, "celltype")
    assert checked == ["pred"]
