"""Metrics on differential-expression tables of real and predicted cells (each against its own controls).

Definitions follow cell-eval 0.8.2: significance is ``fdr < 0.05``; top-gene lists are the
significant genes ranked by ``|log2 fold change|`` (descending, ties in gene order). Where cell-eval
returns 0 for an undefined overlap (no significant genes) we do the same, and say so in docs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from distgen.capabilities import CORRELATION, FRACTION, MetricCapabilities
from distgen.evaluation.de import DEResult, differential_expression
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics.base import Metric, MetricResult
from distgen.evaluation.metrics.stats import average_precision_rows, roc_auc_rows, spearman_rows

FDR = 0.05


def de_tables(data: EvalData) -> tuple[DEResult, DEResult]:
    """``(real, pred)`` DE tables, computed once per ``EvalData``."""
    log1p = bool(data.cache.get("log1p", True))
    progress = bool(data.cache.get("progress", False))
    real = data.cached("de/real", lambda: differential_expression(data.real, log1p, progress))
    pred = data.cached("de/pred", lambda: differential_expression(data.pred, log1p, progress))
    return real, pred


def top_rank(de: DEResult, fdr: float = FDR) -> tuple[Tensor, Tensor]:
    """``(sig [P, G], rank [P, G])``: rank of each significant gene by ``|lfc|`` (float32, descending, stable).

    The rank is int32 (a gene count fits; compared with the int64 thresholds exactly): the overlap metrics keep it in the
    ``EvalData`` cache per side, half the memory of the int64 ``argsort`` order."""
    sig = de.significant(fdr)
    key = torch.where(sig, de.lfc.to(torch.float32).abs(), torch.tensor(-1.0))
    order = torch.argsort(-key, dim=-1, stable=True)
    positions = torch.arange(key.shape[-1], dtype=torch.int32, device=order.device).expand_as(order).contiguous()
    rank = torch.empty(order.shape, dtype=torch.int32, device=order.device).scatter_(-1, order, positions)
    return sig, rank


class _Overlap(Metric):
    def __init__(self, k: int | None = None, fdr: float = FDR) -> None:
        if k is not None and k < 1:
            raise ValueError(f"k must be a positive number of genes or None (all significant genes), got {k}")
        self.k = k
        self.fdr = fdr

    kind: ClassVar[str] = "overlap"

    def compute(self, data: EvalData) -> MetricResult:
        real, pred = de_tables(data)
        # the ten overlap / precision metrics rank the same two tables: once per side and threshold (read-only after; keys
        # end with the side, as the tables': another prediction of the same truth keeps only the "/real" ones,
        # calibration.real_side_cache)
        sig_r, rank_r = data.cached(f"de/top_rank/{self.fdr!r}/real", lambda: top_rank(real, self.fdr))
        sig_p, rank_p = data.cached(f"de/top_rank/{self.fdr!r}/pred", lambda: top_rank(pred, self.fdr))
        n = (sig_r if self.kind == "overlap" else sig_p).sum(-1)
        k_eff = n if self.k is None else n.clamp(max=self.k)
        hit = (sig_r & (rank_r < k_eff[:, None]) & sig_p & (rank_p < k_eff[:, None])).sum(-1)
        val = torch.where(k_eff > 0, hit / k_eff.clamp_min(1), torch.zeros(hit.shape, dtype=torch.float64))
        if not bool(sig_r.any()) or not bool(sig_p.any()):
            val = torch.zeros_like(val, dtype=torch.float64)  # cell-eval: no significant genes anywhere -> 0
        return MetricResult(val.to(torch.float64))


def _overlap(kind: str, k: int | None) -> type[_Overlap]:
    label = "N" if k is None else str(k)
    name = f"{kind}_at_{label}"
    what = "recall of the real" if kind == "overlap" else "precision of the predicted"
    doc = f"Top-{label} DE gene {what} significant genes (by |log2 FC|), as cell-eval's {name}."
    caps = MetricCapabilities(higher_is_better=True, celleval=name, bounds=FRACTION)

    def __init__(self: _Overlap, k: int | None = k, fdr: float = FDR) -> None:
        _Overlap.__init__(self, k, fdr)

    cls = type(f"{kind.title()}At{label}", (_Overlap,), {"__doc__": doc, "capabilities": caps, "kind": kind, "__init__": __init__,
                                                        "__module__": __name__})
    return cls


OverlapAtN = _overlap("overlap", None)
OverlapAt50 = _overlap("overlap", 50)
OverlapAt100 = _overlap("overlap", 100)
OverlapAt200 = _overlap("overlap", 200)
OverlapAt500 = _overlap("overlap", 500)
PrecisionAtN = _overlap("precision", None)
PrecisionAt50 = _overlap("precision", 50)
PrecisionAt100 = _overlap("precision", 100)
PrecisionAt200 = _overlap("precision", 200)
PrecisionAt500 = _overlap("precision", 500)


class DEDirectionMatch(Metric):
    """Fraction of the real significant genes whose predicted log fold change has the same sign."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="de_direction_match", bounds=FRACTION)

    def __init__(self, fdr: float = FDR) -> None:
        self.fdr = fdr

    def compute(self, data: EvalData) -> MetricResult:
        real, pred = de_tables(data)
        sig = real.significant(self.fdr)
        same = torch.sign(real.lfc.to(torch.float32)) == torch.sign(pred.lfc.to(torch.float32))
        n = sig.sum(-1)
        val = (same & sig).sum(-1) / n.clamp_min(1)
        val = torch.where(n > 0, val.to(torch.float64), torch.full(val.shape, float("nan"), dtype=torch.float64))
        return MetricResult.from_values(val, "no significant DE genes in the real cells")


class DESpearmanLFC(Metric):
    """Spearman correlation of real and predicted log fold changes over the real significant genes."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="de_spearman_lfc_sig", bounds=CORRELATION)

    def __init__(self, fdr: float = FDR) -> None:
        self.fdr = fdr

    def compute(self, data: EvalData) -> MetricResult:
        real, pred = de_tables(data)
        sig = real.significant(self.fdr)
        lr, lp = real.lfc.to(torch.float32).to(torch.float64), pred.lfc.to(torch.float32).to(torch.float64)
        out = torch.full((data.n_perts,), float("nan"), dtype=torch.float64)
        reasons: dict[int, str] = {}
        for p in range(data.n_perts):
            m = sig[p]
            if int(m.sum()) < 2:
                reasons[p] = "fewer than 2 significant DE genes in the real cells"
                continue
            out[p] = spearman_rows(lr[p, m][None], torch.nan_to_num(lp[p, m], nan=0.0)[None])[0]
            if torch.isnan(out[p]):
                reasons[p] = "log fold changes are constant over the significant genes"
        return MetricResult(out, reasons)


class DESigGenesRecall(Metric):
    """Fraction of the real significant genes that are also significant in the prediction."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="de_sig_genes_recall", bounds=FRACTION)

    def __init__(self, fdr: float = FDR) -> None:
        self.fdr = fdr

    def compute(self, data: EvalData) -> MetricResult:
        real, pred = de_tables(data)
        sr, sp = real.significant(self.fdr), pred.significant(self.fdr)
        n = sr.sum(-1)
        val = ((sr & sp).sum(-1) / n.clamp_min(1)).to(torch.float64)
        val = torch.where(n > 0, val, torch.full_like(val, float("nan")))
        return MetricResult.from_values(val, "no significant DE genes in the real cells")


class DESpearmanSignificant(Metric):
    """Spearman correlation, across perturbations, of the numbers of significant genes (one global value)."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="de_spearman_sig", min_perturbations=2,
                                      per_perturbation=False, bounds=CORRELATION)

    def __init__(self, fdr: float = FDR) -> None:
        self.fdr = fdr

    def compute(self, data: EvalData) -> MetricResult:
        real, pred = de_tables(data)
        nr = real.significant(self.fdr).sum(-1).to(torch.float64)
        npred = pred.significant(self.fdr).sum(-1).to(torch.float64)
        keep = nr > 0  # cell-eval: perturbations with at least one real significant gene
        # cell-eval: no significant genes anywhere counts as perfect agreement (1.0)
        value = float(spearman_rows(nr[keep][None], npred[keep][None])[0]) if bool(keep.any()) else 1.0
        return MetricResult.from_values(torch.full((data.n_perts,), value, dtype=torch.float64),
                                        "fewer than 2 perturbations with real DE genes, or constant counts")


class _DEAUC(Metric):
    method: ClassVar[str] = "roc"

    def __init__(self, fdr: float = FDR) -> None:
        self.fdr = fdr

    def compute(self, data: EvalData) -> MetricResult:
        real, pred = de_tables(data)
        labels = real.significant(self.fdr)
        q = torch.nan_to_num(pred.fdr, nan=1.0).to(torch.float32).clamp(1e-10, 1.0)
        scores = -torch.log10(q)
        val = roc_auc_rows(labels, scores) if self.method == "roc" else average_precision_rows(labels, scores)
        return MetricResult.from_values(val, "real genes are all significant or all not significant")


class DEROCAUC(_DEAUC):
    """ROC AUC of predicted -log10 FDR for recovering the real significant genes."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="roc_auc", bounds=FRACTION)
    method: ClassVar[str] = "roc"


class DEPRAUC(_DEAUC):
    """Average precision of predicted -log10 FDR for recovering the real significant genes."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="pr_auc", bounds=FRACTION)
    method: ClassVar[str] = "pr"
