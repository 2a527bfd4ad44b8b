"""cell-eval2's expression metrics: ``expr_*``, ``delta_*`` and the perturbation discrimination score ``pds_*``.

Every metric here compares pseudobulk profiles in cell-eval2's *expression comparator* space:

* raw counts on both sides (``vcc2026``, cell-eval2's v2 default): ``bulk_lognorm``, the group-sum
  profile ``log1p(bulk_target_sum * sum_cells y_g / sum_cells sum_g y_g)`` with ``bulk_target_sum =
  5e4``; its sampling noise is the delete-one jackknife of that profile (``jackknife_noise``);
* log-normalised input: the per-cell mean ``mean_cells X`` (``lognorm``), noise ``tr(Sigma) / n``.

Deltas are taken against the REAL control (``control_source="real"``, v2) or each side's own
(``"pred"``, cell-eval 0.7.6 and 0.8.2). Each perturbation's own target gene (a gene named like
the perturbation label) is excluded where cell-eval2 excludes it (``expr_mse_unbiased*``,
``expr_distance_unbiased``, ``pds_*``). Definitions and conventions: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.capabilities import CORRELATION, FRACTION, NONNEGATIVE, UNBOUNDED, MetricCapabilities
from distgen.evaluation.de import log1p_
from distgen.evaluation.evaldata import EvalData, Population, segment_sums
from distgen.evaluation.metrics.base import Metric, MetricResult
from distgen.evaluation.metrics.celleval2_settings import Settings, check_control_source_read, own_gene_columns, settings_for
from distgen.evaluation.metrics.discrimination import FEWER_THAN_TWO, check_single_condition
from distgen.evaluation.metrics.stats import pearson_rows

PRED_TRACE_CAP_K = 1.0  #: cell-eval2's cap on the prediction's noise correction, in units of the real one


# --- pseudobulk profiles and their sampling noise ----------------------------------------------------------


def group_sums(pop: Population) -> tuple[Tensor, Tensor]:
    """``([P, G] perturbation sums, [G] control sums)`` in float64."""
    return segment_sums(pop.X, pop.offsets), pop.control.to(torch.float64).sum(0)


def bulk_lognorm(sums: Tensor, bulk_target_sum: float) -> Tensor:
    """``log1p(bulk_target_sum * sums / sums.sum(-1))`` per row (0 for an all-zero row)."""
    tot = sums.sum(-1, keepdim=True)
    scale = torch.where(tot > 0, bulk_target_sum / torch.where(tot > 0, tot, torch.ones_like(tot)), torch.zeros_like(tot))
    return torch.log1p(sums * scale)


def jackknife_noise(cells: Tensor, bulk_target_sum: float, chunk: int = 2048) -> float:
    """Delete-one jackknife variance of the ``bulk_lognorm`` profile of ``cells [n, G]`` counts, summed over genes.

    ``C = (n - 1) / n * sum_g sum_i (V_ig - mean_i V_ig)^2`` with ``V_i`` the profile without cell
    ``i`` (minus the full one); 0 for fewer than 2 cells or no counts (cell-eval2's ``jk``).
    """
    n = cells.shape[0]
    if n < 2:
        return 0.0
    x = cells.to(torch.float64)
    total = x.sum(0)
    tot = float(total.sum())
    if tot <= 0.0:
        return 0.0
    lib = x.sum(1)
    base = log1p_(bulk_target_sum * total / tot)
    s1 = torch.zeros_like(total)
    s2 = torch.zeros_like(total)
    for s in range(0, n, chunk):
        y = x[s : s + chunk]
        r = tot - lib[s : s + chunk]
        if bool((r < 0).any()):
            raise ValueError("negative leave-one-out library size: the input is not counts")
        empty = r <= 0
        v = total[None] - y  # in place from here: (bulk * (total - y) / r).log1p() - base, one buffer
        log1p_(v.mul_(bulk_target_sum).div_(torch.where(empty, torch.ones_like(r), r)[:, None]))
        if bool(empty.any()):
            v[empty] = 0.0
        v.sub_(base)
        s1 += v.sum(0)
        s2 += v.mul_(v).sum(0)
    q = s2 - s1.pow(2) / n
    return max((n - 1) / n * float(q.sum()), 0.0)


def trace_noise(cells: Tensor) -> float:
    """``tr(Sigma) / n`` of the per-cell mean of ``cells [n, G]`` (unbiased covariance; 0 below 2 cells)."""
    n = cells.shape[0]
    if n < 2:
        return 0.0
    x = cells.to(torch.float64)
    mean = x.mean(0)
    tr = (x.pow(2).sum() - n * mean.pow(2).sum()) / (n - 1)
    return float(tr) / n


@dataclass
class Profiles:
    """Pseudobulk profiles of both sides in one comparator space, with their noise terms.

    ``pred, real [P, G]`` (NaN rows for perturbations without cells), ``real_ctrl, pred_ctrl [G]``,
    ``noise_pred, noise_real [P]`` and ``noise_ctrl`` (the real control's), ``comparator``.
    """

    pred: Tensor
    real: Tensor
    pred_ctrl: Tensor
    real_ctrl: Tensor
    noise_pred: Tensor
    noise_real: Tensor
    noise_ctrl: float
    comparator: str


def _noise(pop: Population, comparator: str, bulk_target_sum: float) -> Tensor:
    out = torch.zeros(pop.n_perts, dtype=torch.float64)
    bounds = pop.offsets.tolist()
    for p in range(pop.n_perts):
        cells = pop.X[bounds[p] : bounds[p + 1]]  # each noise term converts its block to float64
        out[p] = jackknife_noise(cells, bulk_target_sum) if comparator == "bulk_lognorm" else trace_noise(cells)
    return out


def profiles(data: EvalData, s: Settings, noise: bool = False) -> Profiles:
    """The comparator-space profiles of ``data`` under settings ``s`` (cached; noise on first request)."""
    key = f"ce2/profiles/{s.comparator(data)}"
    prof = data.cache.get(key)
    if prof is None:
        comparator = s.comparator(data)
        sides = {}
        for which in ("real", "pred"):
            pop = data.population(which)
            if comparator == "bulk_lognorm":
                sums, ctrl = group_sums(pop)
                means = bulk_lognorm(torch.cat([sums, ctrl[None]]), s.bulk_target_sum)
            else:
                means = torch.cat([data.means(which), data.control_mean(which)[None]])
            means[:-1][pop.counts == 0] = float("nan")
            sides[which] = means
        empty = torch.zeros(0)
        prof = Profiles(pred=sides["pred"][:-1], real=sides["real"][:-1], pred_ctrl=sides["pred"][-1], real_ctrl=sides["real"][-1],
                        noise_pred=empty, noise_real=empty, noise_ctrl=float("nan"), comparator=comparator)
        data.cache[key] = prof
    if noise and prof.noise_pred.numel() == 0:
        prof.noise_pred = _noise(data.pred, prof.comparator, s.bulk_target_sum)
        prof.noise_real = _noise(data.real, prof.comparator, s.bulk_target_sum)
        ctrl_pop = Population(X=data.real.control, offsets=torch.tensor([0, data.real.control.shape[0]]), control=data.real.control)
        prof.noise_ctrl = float(_noise(ctrl_pop, prof.comparator, s.bulk_target_sum)[0])
    return prof


def _scored(data: EvalData, prof: Profiles) -> Tensor:
    """``[P]`` bool: perturbations with predicted and real cells (the rows cell-eval2 scores)."""
    return (data.pred.counts > 0) & (data.real.counts > 0)


# --- the jackknife-corrected squared distances -----------------------------------------------------------


def _row_divisor(cols: Tensor, n_genes: int) -> Tensor:
    """Genes summed per row: ``G - 1`` where the row's own gene is excluded, else ``G``."""
    return torch.where(cols >= 0, n_genes - 1, n_genes).to(torch.float64)


def _drop_own(summed: Tensor, a: Tensor, b: Tensor, cols: Tensor) -> Tensor:
    """``summed`` minus each row's own-gene squared difference ``(a[p, g_p] - b[p, g_p])^2``."""
    out = summed.clone()
    rows = (cols >= 0).nonzero().flatten()
    if rows.numel():
        c = cols[rows]
        out[rows] -= (a[rows, c] - b[rows, c]).pow(2)
    return out


def across_perturbation_budget(pred: Tensor, cols: Tensor, w: Tensor) -> float:
    """cell-eval2's cap on the total noise correction a prediction may claim (its issue #348).

    ``sum_g sum_p w_p (mu_pg - mean_p mu_pg)^2`` over genes with at least 2 retained rows, each row's
    own gene left out, in the weighted shifted two-pass form.
    """
    n_rows, n_genes = pred.shape
    dev = pred - pred.mean(0)
    s1 = (dev * w[:, None]).sum(0)
    s2 = (dev * dev * w[:, None]).sum(0)
    wsum = torch.full((n_genes,), float(w.sum()), dtype=torch.float64)
    cnt = torch.full((n_genes,), float(n_rows), dtype=torch.float64)
    for k in (cols >= 0).nonzero().flatten().tolist():
        c = int(cols[k])
        v = dev[k, c]
        s1[c] -= w[k] * v
        s2[c] -= w[k] * v * v
        wsum[c] -= w[k]
        cnt[c] -= 1.0
    ok = (cnt >= 2.0) & (wsum > 0.0)
    if not bool(ok.any()):
        return 0.0
    ss = s2[ok] - s1[ok].pow(2) / wsum[ok]
    return float(ss.clamp_min(0.0).sum())


def unbiased_mse(data: EvalData, s: Settings, capped: bool) -> Tensor:
    """``[P]`` ``(|mu_pred - mu_real|^2 - C_pred - C_real) / |G_p|`` (``capped``: ``C_pred`` bounded as cell-eval2)."""
    prof = profiles(data, s, noise=True)
    keep = _scored(data, prof)
    out = torch.full((data.n_perts,), float("nan"), dtype=torch.float64)
    if not bool(keep.any()):
        return out
    idx = keep.nonzero().flatten()
    n_genes = len(data.genes)
    cols = own_gene_columns(data)[idx]
    pred, real = prof.pred[idx], prof.real[idx]
    pred_term, real_term = prof.noise_pred[idx], prof.noise_real[idx]
    if capped:
        pred_term = torch.minimum(pred_term, PRED_TRACE_CAP_K * real_term)
        w = 1.0 / _row_divisor(cols, n_genes)
        claim = float((pred_term * w).sum())
        if claim > 0.0:
            ratio = across_perturbation_budget(pred, cols, w) / claim
            if ratio < 1.0:
                pred_term = pred_term * ratio
    summed = (pred - real).pow(2).sum(-1) - pred_term - real_term
    summed = _drop_own(summed, pred, real, cols)
    out[idx] = summed / _row_divisor(cols, n_genes)
    return out


def unbiased_distance(data: EvalData, s: Settings) -> Tensor:
    """``[P]`` ``(|mu_real - mu_ctrl|^2 - C_real - C_ctrl) / |G_p|``: the real effect size, noise removed."""
    prof = profiles(data, s, noise=True)
    out = torch.full((data.n_perts,), float("nan"), dtype=torch.float64)
    idx = (data.real.counts > 0).nonzero().flatten()
    n_genes = len(data.genes)
    cols = own_gene_columns(data)[idx]
    real = prof.real[idx]
    ctrl = prof.real_ctrl[None].expand_as(real)
    summed = (real - ctrl).pow(2).sum(-1) - prof.noise_real[idx] - prof.noise_ctrl
    out[idx] = _drop_own(summed, real, ctrl, cols) / _row_divisor(cols, n_genes)
    return out


class _CE2(Metric):
    """A cell-eval2 metric computed under one preset's settings (``preset``: ``v2``, ``vcc2026``, ...)."""

    #: whether a value reads a control of the prediction (else ``control_source`` warns: ``check_control_source_read``)
    reads_control_source: ClassVar[bool] = True

    def __init__(self, preset: str = "v2", control_source: str | None = None) -> None:
        self.settings = settings_for(preset, control_source)
        check_control_source_read(self, control_source)


def _caps(hib: bool, diagnostic: bool = False, bounds: tuple[float, float] = UNBOUNDED, **_notes: Any) -> MetricCapabilities:
    """Capabilities of a cell-eval2 metric (keyword notes, e.g. its cell-eval 0.8.2 name, document the code only;
    ``level="global"``: one value for the whole evaluation). The noise-corrected (``*_unbiased*``) quantities declare no
    ``bounds``: subtracting the sampling noise can take a squared distance below 0."""
    return MetricCapabilities(higher_is_better=hib, diagnostic=diagnostic, per_perturbation=_notes.get("level") != "global",
                              bounds=bounds)


class ExprMSEUnbiased(_CE2):
    """Mean squared error of the profiles per gene with both sides' sampling noise removed (jackknife)."""

    capabilities = _caps(False)
    reads_control_source: ClassVar[bool] = False

    def compute(self, data: EvalData) -> MetricResult:
        return MetricResult.from_values(unbiased_mse(data, self.settings, capped=False), "no predicted or real cells")


class ExprMSEUnbiasedCapped(_CE2):
    """``expr_mse_unbiased`` with the prediction's noise correction capped (<= the real one, <= its spread)."""

    capabilities = _caps(False)
    reads_control_source: ClassVar[bool] = False

    def compute(self, data: EvalData) -> MetricResult:
        return MetricResult.from_values(unbiased_mse(data, self.settings, capped=True), "no predicted or real cells")


class ExprDistanceUnbiased(_CE2):
    """Squared distance per gene of the real profile from the real control, sampling noise removed."""

    capabilities = _caps(True, diagnostic=True)
    reads_control_source: ClassVar[bool] = False

    def compute(self, data: EvalData) -> MetricResult:
        return MetricResult.from_values(unbiased_distance(data, self.settings), "no real cells")


class ExprMSEUnbiasedCappedNorm(_CE2):
    """``sum_p expr_mse_unbiased_capped / sum_p expr_distance_unbiased`` (one value: a ratio of sums; 1 = predicting the control)."""

    capabilities = _caps(False, level="global", aggregate="ratio_of_sums")
    reads_control_source: ClassVar[bool] = False

    def compute(self, data: EvalData) -> MetricResult:
        num, den = unbiased_mse(data, self.settings, capped=True), unbiased_distance(data, self.settings)
        ok = torch.isfinite(num) & torch.isfinite(den)
        d = float(den[ok].sum())
        value = float(num[ok].sum()) / d if bool(ok.any()) and d > 0 else float("nan")
        if not bool(ok.any()):
            why = "no perturbation has both expr_mse_unbiased_capped and expr_distance_unbiased (cell-eval2 refuses such a pair)"
        elif not d > 0:  # the noise correction exceeds the real effects: no measurable aggregate effect at this depth
            why = (f"the sum of expr_distance_unbiased over {int(ok.sum())} perturbations is {d!r}, not positive: the real "
                   "cells carry no measurable aggregate effect beyond their sampling noise, so the ratio of sums is undefined "
                   "(cell-eval2 refuses such a pair)")
        else:
            why = "the ratio of sums is not finite"
        return MetricResult.from_values(torch.full((data.n_perts,), value if math.isfinite(value) else float("nan"), dtype=torch.float64), why)


class ExprRealMassRatio(_CE2):
    """``sum_g expm1(real profile) / target``: 1 under ``bulk_lognorm`` by construction (a diagnostic)."""

    capabilities = _caps(True, diagnostic=True)
    reads_control_source: ClassVar[bool] = False

    def compute(self, data: EvalData) -> MetricResult:
        prof = profiles(data, self.settings)
        target = self.settings.bulk_target_sum if prof.comparator == "bulk_lognorm" else self.settings.target_sum
        if target is None:
            return MetricResult(torch.full((data.n_perts,), float("nan"), dtype=torch.float64),
                                dict.fromkeys(range(data.n_perts), "no normalisation target (target_sum is None)"))
        return MetricResult.from_values(torch.expm1(prof.real).sum(-1) / float(target), "no real cells")


class _PlainError(_CE2):
    kind: ClassVar[str] = "mse"
    delta: ClassVar[bool] = False

    def compute(self, data: EvalData) -> MetricResult:
        prof = profiles(data, self.settings)
        pred, real = prof.pred, prof.real
        if self.delta:
            ctrl = prof.real_ctrl if self.settings.control_source == "real" else prof.pred_ctrl
            pred, real = pred - ctrl, real - prof.real_ctrl
        d = pred - real
        val = d.pow(2).mean(-1) if self.kind == "mse" else d.abs().mean(-1)
        return MetricResult.from_values(val, "no predicted or real cells")


class ExprMSE(_PlainError):
    """Mean squared error of the predicted and real profiles (comparator space)."""

    capabilities = _caps(False, bounds=NONNEGATIVE, celleval_v1="mse")
    kind: ClassVar[str] = "mse"
    reads_control_source: ClassVar[bool] = False  # the profiles, no delta


class ExprMAE(_PlainError):
    """Mean absolute error of the predicted and real profiles (comparator space)."""

    capabilities = _caps(False, bounds=NONNEGATIVE, celleval_v1="mae")
    kind: ClassVar[str] = "mae"
    reads_control_source: ClassVar[bool] = False  # the profiles, no delta


class DeltaMSE(_PlainError):
    """Mean squared error of the deltas from control (the predicted one against ``control_source``'s control)."""

    capabilities = _caps(False, bounds=NONNEGATIVE, celleval_v1="mse_delta")
    kind: ClassVar[str] = "mse"
    delta: ClassVar[bool] = True


class DeltaMAE(_PlainError):
    """Mean absolute error of the deltas from control."""

    capabilities = _caps(False, bounds=NONNEGATIVE, celleval_v1="mae_delta")
    kind: ClassVar[str] = "mae"
    delta: ClassVar[bool] = True


class DeltaPearson(_CE2):
    """Pearson correlation over genes of the predicted and real deltas (v2: -1 for a constant predicted delta)."""

    capabilities = _caps(True, bounds=CORRELATION, celleval_v1="pearson_delta")

    def compute(self, data: EvalData) -> MetricResult:
        prof = profiles(data, self.settings)
        ctrl = prof.real_ctrl if self.settings.control_source == "real" else prof.pred_ctrl
        dp, dr = prof.pred - ctrl, prof.real - prof.real_ctrl
        r = pearson_rows(dp, dr)
        reasons: dict[int, str] = {}
        if self.settings.version == "v2":
            flat_real = dr.amax(-1) == dr.amin(-1)
            flat_pred = dp.amax(-1) == dp.amin(-1)
            r = torch.where(flat_pred & ~flat_real, torch.full_like(r, -1.0), r)
            for p in flat_real.nonzero().flatten().tolist():
                r[p] = float("nan")
                reasons[p] = "the real delta is constant over genes (outside the reference gate)"
        for p in torch.isnan(r).nonzero().flatten().tolist():
            reasons.setdefault(p, "no predicted or real cells")
        return MetricResult(r, reasons)


# --- perturbation discrimination score ---------------------------------------------------------------------


def _distances(pred: Tensor, real: Tensor, metric: str) -> Tensor:
    """``[P, Q]`` cell-eval2 distances between effect rows (cosine: ``clip(1 - cos, 0, 2)``, zero norm -> 1)."""
    if metric == "l2":
        d2 = pred.pow(2).sum(-1)[:, None] + real.pow(2).sum(-1)[None] - 2.0 * pred @ real.T
        return d2.clamp_min(0.0).sqrt()
    if metric == "l1":
        return torch.cdist(pred, real, p=1)
    if metric == "cosine":
        sim = pred @ real.T
        denom = pred.pow(2).sum(-1).sqrt()[:, None] * real.pow(2).sum(-1).sqrt()[None]
        cos = torch.where(denom != 0, sim / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(sim))
        return (1.0 - cos).clamp(0.0, 2.0)
    raise ValueError(f"distance must be 'l1', 'l2' or 'cosine', got {metric!r}")


def _drop_gene_row(row: Tensor, pred: Tensor, real: Tensor, metric: str, i: int, col: int) -> Tensor:
    """Row ``i`` of the distance matrix recomputed without gene ``col`` (cell-eval2's row-scope exclusion)."""
    a, b = pred[i, col], real[:, col]
    if metric == "l1":
        return (row - (b - a).abs()).clamp_min(0.0)
    if metric == "l2":
        return (row.pow(2) - (b - a).pow(2)).clamp_min(0.0).sqrt()
    dot = pred[i] @ real.T - a * b
    npd = math.sqrt(max(float(pred[i] @ pred[i] - a * a), 0.0))
    nre = (real.pow(2).sum(-1) - b * b).clamp_min(0.0).sqrt()
    denom = npd * nre
    cos = torch.where(denom != 0, dot / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(dot))
    return (1.0 - cos).clamp(0.0, 2.0)


def match_rank(row: Tensor, j: int, tie_policy: str) -> float:
    """Rank of entry ``j`` in ``row``: ``midrank`` (ties share their mean position) or numpy's ``argsort`` position."""
    if tie_policy == "position":
        import numpy as np

        return float(np.flatnonzero(np.argsort(row.cpu().numpy()) == j)[0])
    m = row[j]
    if torch.isnan(m):
        n_less = int((~torch.isnan(row)).sum())
        return n_less + (row.numel() - n_less - 1) / 2.0
    return int((row < m).sum()) + (int((row == m).sum()) - 1) / 2.0


def discrimination(data: EvalData, s: Settings, metric: str) -> Tensor:
    """``[P]`` cell-eval2's PDS: ``1 - rank / D`` of the real effect of the same perturbation among all real effects."""
    prof = profiles(data, s)
    real_ok = data.real.counts > 0
    real_eff = prof.real[real_ok] - prof.real_ctrl
    ctrl = prof.real_ctrl if s.control_source == "real" else prof.pred_ctrl
    out = torch.full((data.n_perts,), float("nan"), dtype=torch.float64)
    rows = ((data.pred.counts > 0) & real_ok).nonzero().flatten()
    pos = torch.cumsum(real_ok.long(), 0) - 1  # column of each perturbation among the real effects
    pred_eff = prof.pred[rows] - ctrl
    n = int(real_ok.sum())
    denom = n if s.rank_denominator == "n" else n - 1
    cols_all = own_gene_columns(data)
    if s.exclude_target_gene and s.exclusion_scope == "panel":
        drop = cols_all[real_ok]
        keep = torch.ones(len(data.genes), dtype=torch.bool)
        keep[drop[drop >= 0]] = False
        d = _distances(pred_eff[:, keep], real_eff[:, keep], metric)
    else:
        d = _distances(pred_eff, real_eff, metric)
        if s.exclude_target_gene:
            for i, p in enumerate(rows.tolist()):
                if int(cols_all[p]) >= 0:
                    d[i] = _drop_gene_row(d[i], pred_eff, real_eff, metric, i, int(cols_all[p]))
    for i, p in enumerate(rows.tolist()):
        rank = match_rank(d[i], int(pos[p]), s.tie_policy)
        out[p] = 1.0 if denom <= 0 else 1.0 - rank / denom
    return out


#: Why a PDS is NaN when the panel-scope exclusion leaves no gene (cell-eval2 refuses such a pair).
PANEL_EMPTY = ("every measured gene is the target of some perturbation ({n} genes): the panel-scope exclusion leaves no gene "
               "to compare effects on, every distance is 0 and the rank is the same for any prediction (cell-eval2 refuses "
               "such a pair; pass --no-target-genes if the labels name no gene)")


class _PDS(_CE2):
    """``single_condition``: ``"nan"`` (a rank among one real effect is NaN with the reason) or ``"reference"``
    (cell-eval2's 1.0, which the reference profiles report with a note that it is trivial)."""

    capabilities = MetricCapabilities(higher_is_better=True, min_perturbations=2, bounds=FRACTION)
    distance: ClassVar[str] = "cosine"

    def __init__(self, preset: str = "v2", control_source: str | None = None, single_condition: str = "nan") -> None:
        super().__init__(preset, control_source)
        self.single_condition = check_single_condition(single_condition)

    def compute(self, data: EvalData) -> MetricResult:
        values = discrimination(data, self.settings, self.distance)
        s = self.settings
        if s.exclude_target_gene and s.exclusion_scope == "panel":
            cols = own_gene_columns(data)[data.real.counts > 0]
            if len(data.genes) and int(torch.unique(cols[cols >= 0]).numel()) == len(data.genes):
                return MetricResult.from_values(torch.full_like(values, float("nan")), PANEL_EMPTY.format(n=len(data.genes)))
        if int((data.real.counts > 0).sum()) < 2 and self.single_condition == "nan":  # a rank among one: no information
            return MetricResult.from_values(torch.full_like(values, float("nan")), FEWER_THAN_TWO)
        return MetricResult.from_values(values, "no predicted or real cells")


class PDSCosine(_PDS):
    """Perturbation discrimination score by cosine distance of deltas (cell-eval2; v2: ties midranked, targets panel-excluded)."""

    capabilities = MetricCapabilities(higher_is_better=True, min_perturbations=2, bounds=FRACTION)  # cell-eval 0.8.2: discrimination_score_cosine
    distance: ClassVar[str] = "cosine"


class PDSL1(_PDS):
    """Perturbation discrimination score by L1 distance of deltas (cell-eval2)."""

    capabilities = MetricCapabilities(higher_is_better=True, min_perturbations=2, bounds=FRACTION)  # cell-eval 0.8.2: discrimination_score_l1
    distance: ClassVar[str] = "l1"


class PDSL2(_PDS):
    """Perturbation discrimination score by L2 distance of deltas (cell-eval2)."""

    capabilities = MetricCapabilities(higher_is_better=True, min_perturbations=2, bounds=FRACTION)  # cell-eval 0.8.2: discrimination_score_l2
    distance: ClassVar[str] = "l2"
