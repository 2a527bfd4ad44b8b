"""Numerical extremes in files to evaluate (the numerical-extremes round of 2026-12-06, docs/reliability.md): a truth and a
prediction logged twice alike, a perturbation whose every gene is its own target, a diverged prediction (1e30 in every
gene) whose distances to every real effect tie at float precision. Each was scored without a word before."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from distgen.cli import main
from distgen.errors import EXIT_USAGE
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics.discrimination import NO_GENE_LEFT, DiscriminationCosine, DiscriminationL1, DiscriminationL2

CONTROL = "non-targeting"


def _pair(seed: int = 0, n_genes: int = 30) -> tuple[ad.AnnData, ad.AnnData]:
    """(pred, real) log-normalised over ``n_genes`` genes: 40 controls, 4 perturbations x 25 cells each lowering its gene."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    mu = rng.gamma(1.5, 3.0, n_genes)
    labels = [CONTROL] * 40 + [p for p in ("G0", "G1", "G2", "G3") for _ in range(25)]

    def file(noise: float) -> ad.AnnData:
        rates = np.stack([mu * np.where(np.array(genes) == lab, 0.1, 1.0) for lab in labels])
        x = rng.poisson(rates).astype(np.float64)
        x = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)
        x = np.clip(x + noise * rng.normal(size=x.shape) * (x > 0), 0, None)
        a = ad.AnnData(x.astype(np.float32), obs=pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))]))
        a.var_names = genes
        return a

    return file(0.2), file(0.0)


def _evaluate(tmp_path, pred, real):
    pp, rp = tmp_path / "pred.h5ad", tmp_path / "real.h5ad"
    pred.write_h5ad(pp)
    real.write_h5ad(rp)
    return main(["evaluate", "--pred", str(pp), "--real", str(rp), "--out", str(tmp_path / "ev"), "--no-plots", "--quiet",
                 "--overwrite", "--baselines", "", "--no-ceiling"])


def test_a_truth_and_prediction_logged_twice_alike_are_refused(tmp_path, capsys):
    # both log1p(log-normalised): every range and pairing check passed, and every score was read on the squeezed scale
    pred, real = _pair()
    assert _evaluate(tmp_path, pred, real) == 0
    pred.X, real.X = np.log1p(pred.X), np.log1p(real.X)
    assert _evaluate(tmp_path, pred, real) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "the real cells were log-transformed 2 times" in err and "adata.X = np.expm1(adata.X)" in err


def _eval_data(pred: torch.Tensor, real: torch.Tensor, genes: list[str], perts: list[str]) -> EvalData:
    """An EvalData of one cell-pair per perturbation: ``pred``/``real`` [P, G] means, each repeated over 3 cells."""
    from distgen.evaluation.io import eval_data
    from distgen.types import Cells

    def cells(x: torch.Tensor) -> Cells:
        rows = torch.cat([torch.zeros(3, x.shape[1]), x.repeat_interleave(3, 0)])
        rows = rows + 1e-3 * torch.arange(rows.shape[0])[:, None] % 3  # not one value: 3 cells
        conds = np.array(["control"] * 3 + [p for p in perts for _ in range(3)], dtype=object)
        return Cells(rows.float(), conds, tuple(genes), np.array(["all"] * len(conds), dtype=object),
                     np.array(["b"] * len(conds), dtype=object), "control")

    return eval_data(cells(pred), cells(real), check_pred_scale=False)


def test_a_perturbation_whose_every_gene_is_its_target_has_no_discrimination_score():
    # a panel of only the targets: every gene left out, every distance 0, and the own effect ranked first (1.0) whatever
    # was predicted
    g = torch.Generator().manual_seed(0)
    real = torch.rand(3, 2, generator=g) * 3
    pred = torch.rand(3, 2, generator=g) * 3  # unrelated to the truth
    data = _eval_data(pred, real, ["A", "B"], ["A", "A+B", "B"])
    for metric in (DiscriminationL1(), DiscriminationL2(), DiscriminationCosine()):
        res = metric.compute(data)
        both = data.perts.index("A+B")
        assert np.isnan(float(res.values[both])) and res.reasons[both] == NO_GENE_LEFT
        assert all(np.isfinite(float(res.values[i])) for i in range(3) if i != both)


@pytest.mark.parametrize("metric", [DiscriminationL1, DiscriminationL2])
def test_a_prediction_as_far_from_every_real_effect_ranks_at_chance_not_first(metric):
    # a diverged model's 1e30 in every gene: its distance to every real effect is the same float, and the strict "closer"
    # count ranked it first (1.0, a perfect score); ties now count half (a midrank)
    g = torch.Generator().manual_seed(1)
    real = torch.rand(5, 40, generator=g) * 3
    pred = real + 0.05 * torch.rand(5, 40, generator=g)
    pred[2] = 1e30
    data = _eval_data(pred, real, [f"g{i}" for i in range(40)], ["P0", "P1", "P2", "P3", "P4"])
    res = metric().compute(data)
    assert float(res.values[2]) == pytest.approx(1 - 0.5 * 4 / 5)  # four ties, half each, among five real effects
    assert all(float(res.values[i]) == 1.0 for i in (0, 1, 3, 4))  # the others are as before


def _past_float32(a: ad.AnnData) -> ad.AnnData:
    """``a`` as float64 with 1e300 in 5 cells of perturbation G0 (a diverged model's file): inf in distgen's float32 table."""
    x = np.asarray(a.X, dtype=np.float64).copy()
    rows = np.flatnonzero(a.obs["target"].to_numpy() == "G0")[:5]
    x[rows, :5] = 1e300
    a = a.copy()
    a.X = x
    return a


def _said(caught) -> tuple[list[str], list[str]]:
    """(distgen's warnings, any other warning that reached the user: numpy's RuntimeWarning among them)."""
    from distgen.errors import DistgenWarning

    ours = [str(w.message) for w in caught if issubclass(w.category, DistgenWarning)]
    return ours, [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, DistgenWarning)]


@pytest.mark.parametrize("side", ["pred", "real"])
def test_values_past_float32_in_a_file_are_one_warning_naming_the_perturbation(tmp_path, side):
    """1e300 in a float64 file became inf with numpy's "overflow encountered in cast" (a RuntimeWarning naming a line of
    distgen/data/layout.py) printed beside distgen's NaN/inf warning. Now the group is NaN with distgen's one warning, which
    names it and says how a finite number became inf; nothing else is printed."""
    import warnings

    import pandas as pd

    pred, real = _pair()
    pred, real = (_past_float32(pred), real) if side == "pred" else (pred, _past_float32(real))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _evaluate(tmp_path, pred, real) == 0
    ours, others = _said(caught)
    assert others == []
    (said,) = [w for w in ours if "NaN or inf" in w]
    assert "1 perturbation(s) (G0)" in said and "float32's range" in said and said.startswith(
        "the prediction" if side == "pred" else "the truth")
    rows = pd.read_csv(tmp_path / "ev" / "metrics.csv").set_index("perturbation")
    assert np.isnan(rows.loc["G0", "mse"]) and np.isfinite(rows.drop(index="G0")["mse"]).all()


def test_values_past_float32_through_the_api_and_a_profile(tmp_path):
    """The Python API reading an AnnData beside Cells (``pipeline.evaluate.evaluate``'s own reader) says the same, and a
    reference profile, which refuses NaN or inf, refuses it naming float32's range, without numpy's warning."""
    import warnings

    from distgen.data import layout
    from distgen.errors import InputDataError
    from distgen.pipeline.evaluate import evaluate
    from distgen.pipeline.profile_eval import evaluate_profile_files

    pred, real = _pair()
    pred = _past_float32(pred)
    truth = layout.read(real, name="real")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate(pred, truth, baselines=[], ceiling=False, progress=False, make_plots=False, metric_names=["mse"])
    ours, others = _said(caught)
    assert others == [] and any("(G0)" in w and "float32's range" in w for w in ours)
    assert np.isnan(report.table.values["mse"][report.table.perts.index("G0")])
    pred.write_h5ad(tmp_path / "pred.h5ad")
    real.write_h5ad(tmp_path / "real.h5ad")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(InputDataError, match=r"G0.*float32's range"):
        warnings.simplefilter("always")
        evaluate_profile_files(str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), str(tmp_path / "prof"), "cell-eval-0.8.2",
                               progress=False)
    assert _said(caught)[1] == []
