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
