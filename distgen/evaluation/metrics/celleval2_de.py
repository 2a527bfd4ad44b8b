"""cell-eval2's DE metrics (``de_wilcoxon_*``): set overlaps, fold-change agreement, AUCs, chance-corrected tables.

Both DE tables come from ``distgen.evaluation.de.de_table``: under v2 the predicted cells are tested
against the REAL controls, on counts per million, with arithmetic-mean fold changes and the CPM gene
gate. Significance is ``p_adj < 0.05``; top-gene lists rank significant genes by ``|log2 FC|``
(ties in gene order, as cell-eval2's ordinal rank over its table). v2's *reference gate* (cell-eval2
issue #391) makes a perturbation NaN when the REAL table alone cannot score it (e.g. fewer than 10
significant genes), with the reason; inside the gate a prediction that makes the metric undefined is
charged the metric's worst value. The direction family lives in ``celleval2_direction``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from distgen.capabilities import CORRELATION, FRACTION, NONNEGATIVE, UNBOUNDED, MetricCapabilities
from distgen.evaluation.de import DETable, de_table, prepare_reference
from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics.base import Metric, MetricResult
from distgen.evaluation.metrics.celleval2_settings import Settings, check_control_source_read, own_gene_columns, settings_for
from distgen.evaluation.metrics.stats import average_precision_rows, average_ranks, pearson_rows, roc_auc_rows


@dataclass
class PreparedDE:
    """Both tables, significance masks, the perturbations' own-gene columns and the top-gene ranks."""

    real: DETable
    pred: DETable
    sig_real: Tensor  # [P, G]
    sig_pred: Tensor
    own: Tensor  # [P, G] bool: the gene named like the perturbation, among the tested genes
    scored: Tensor  # [P] bool: perturbations with cells on both sides (rows of both tables)
    gene_order: Tensor  # [G] position of each gene name in sorted order (cell-eval2's final tie-break)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # what several metrics read, computed once

    def top_ranks(self) -> tuple[Tensor, Tensor]:
        """``top_ranks`` of the real and predicted tables under their significance masks (computed once)."""
        if "top_ranks" not in self.cache:
            self.cache["top_ranks"] = top_ranks(self.real, self.sig_real), top_ranks(self.pred, self.sig_pred)
        return self.cache["top_ranks"]


def prepared_de(data: EvalData, s: Settings) -> PreparedDE:
    """Both DE tables under ``s`` (computed once per ``EvalData`` and preset family)."""
    key = f"ce2/de/{s.version}/{s.control_source}/{s.mean_calc}/{s.fdr_scope}/{s.min_cpm}/{s.clip_value}/{s.epsilon}"
    if key in data.cache:
        return data.cache[key]
    counts = s.is_counts(data)
    ref = data.real.control
    kw: dict[str, Any] = {"counts": counts, "target_sum": s.target_sum, "mean_calc": s.mean_calc, "epsilon": s.epsilon,
                          "clip_value": s.clip_value, "min_cpm": s.min_cpm, "fdr_scope": s.fdr_scope}
    prepared = prepare_reference(ref, counts=counts, target_sum=s.target_sum,  # normalised and sorted once, for both tables
                                 totals=data.real.control_totals)
    real = de_table(data.real, prepared, **kw)
    pred_ref = ref if s.control_source == "real" else data.pred.control
    pred_prepared = prepared if s.control_source == "real" else prepare_reference(pred_ref, counts=counts, target_sum=s.target_sum,
                                                                                  totals=data.pred.control_totals)
    if counts and s.control_source == "pred":
        pred = de_table(data.pred, pred_prepared, **kw)
    else:
        pred = de_table(Population(X=data.pred.X, offsets=data.pred.offsets, control=pred_ref, totals=data.pred.totals), pred_prepared, **kw)
    if s.nan_lfc_policy == "mask":
        for t in (real, pred):
            t.fdr = torch.where(torch.isnan(t.lfc) & t.tested[None], torch.ones_like(t.fdr), t.fdr)
    scored = (data.real.counts > 0) & (data.pred.counts > 0)
    own = torch.zeros(data.n_perts, len(data.genes), dtype=torch.bool)
    cols = own_gene_columns(data)
    rows = torch.nonzero(cols >= 0).flatten()
    rows = rows[real.tested[cols[rows]]]  # the own gene only where the reference tested it
    own[rows, cols[rows]] = True
    order = sorted(range(len(data.genes)), key=lambda i: data.genes[i])
    gene_order = torch.empty(len(order), dtype=torch.long)
    gene_order[torch.tensor(order)] = torch.arange(len(order))
    prep = PreparedDE(real, pred, real.significant(s.p_adj_threshold) & scored[:, None],
                      pred.significant(s.p_adj_threshold) & scored[:, None], own, scored, gene_order)
    data.cache[key] = prep
    return prep


def top_ranks(table: DETable, sig: Tensor) -> Tensor:
    """``[P, G]`` 0-based rank of each significant gene by ``|lfc|`` descending (ties in gene order); G elsewhere."""
    key = torch.where(sig, table.lfc.abs(), torch.tensor(-1.0, dtype=torch.float64))
    key = torch.nan_to_num(key, nan=float("inf"))  # polars orders NaN above every number, so it ranks first (needs epsilon = 0)
    order = torch.argsort(-key, dim=-1, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(key.shape[-1]).expand_as(order).contiguous())
    return torch.where(sig, rank, torch.full_like(rank, key.shape[-1]))


def spearman_masked(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """``[P]`` Spearman correlation (average ranks) of ``x, y`` over the masked-in entries of each row."""
    out = torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
    for p in range(x.shape[0]):
        m = mask[p]
        if int(m.sum()) >= 2:
            out[p] = pearson_rows(average_ranks(x[p, m][None]), average_ranks(y[p, m][None]))[0]
    return out


class _DE(Metric):
    """A cell-eval2 DE metric: ``values(prep, data) -> ([P] values, reasons)``, then the reference gate."""

    gate: ClassVar[str | None] = None  # RealGate kind
    example_data: ClassVar[str] = "tiny_eval_de"
    worst: ClassVar[float | None] = None

    #: whether a value reads the prediction's side (else ``control_source`` warns: ``check_control_source_read``)
    reads_control_source: ClassVar[bool] = True

    def __init__(self, preset: str = "v2", control_source: str | None = None) -> None:
        self.settings = settings_for(preset, control_source)
        check_control_source_read(self, control_source)

    #: the definition: ``(prep, settings) -> ([P] values, {p: reason})``; set by ``_define``
    definition: ClassVar[Any] = None

    def compute(self, data: EvalData) -> MetricResult:
        s = self.settings
        prep = prepared_de(data, s)
        vals, reasons = type(self).definition(prep, s)
        v = vals.to(torch.float64).tolist()  # per-perturbation decisions on Python floats, not tensor elements
        scored = prep.scored.tolist()
        for p in (p for p, ok in enumerate(scored) if not ok):
            v[p], reasons[p] = math.nan, "no predicted or real cells"
        if s.version == "v2" and (self.gate is not None or self.worst is not None):
            outside, constant = gated(prep, self.gate, s) if self.gate else ({}, set())
            for p in (p for p, ok in enumerate(scored) if ok):
                if p in outside:
                    v[p], reasons[p] = math.nan, f"outside the reference gate: {outside[p]}"
                elif p in constant:
                    v[p] = self.worst  # type: ignore[assignment]
                    reasons.pop(p, None)
                elif not math.isfinite(v[p]) and self.worst is not None:
                    v[p] = self.worst
                    reasons.pop(p, None)
        for p in (p for p, x in enumerate(v) if math.isnan(x)):
            reasons.setdefault(p, "undefined")
        return MetricResult(torch.tensor(v, dtype=torch.float64), reasons)


def gated(prep: PreparedDE, kind: str, s: Settings) -> tuple[dict[int, str], set[int]]:
    """``gate_outside`` and ``constant_prediction`` of a gate kind (computed once per kind: metrics share gates)."""
    key = f"gate/{kind}/{s.min_gate_size}"
    if key not in prep.cache:
        outside = gate_outside(prep, kind, s)
        prep.cache[key] = outside, constant_prediction(prep, kind, s, outside)
    return prep.cache[key]


def gate_outside(prep: PreparedDE, kind: str | None, s: Settings) -> dict[int, str]:
    """Perturbations the REAL table alone cannot score, with the reason (cell-eval2's ``RealGate``)."""
    m = s.min_gate_size
    sig, real = prep.sig_real, prep.real
    p_count = sig.shape[0]
    out: dict[int, str] = {}
    if kind == "count_corr":
        n = sig.sum(-1)
        counts = n[n > 0].tolist()
        if len(counts) < m:
            why = f"fewer than {m} targets carry a reference-significant gene"
        elif len(set(counts)) < 2:
            why = "every such target has the same reference-significant gene count"
        else:
            return {}
        return dict.fromkeys(range(p_count), why)
    finite_lfc = ~torch.isnan(real.lfc) & real.tested[None]
    if kind in ("adjudicable", "lfc_present"):
        usable = finite_lfc & (real.lfc != 0) if kind == "adjudicable" else finite_lfc
        what = "reference genes with a log2FC direction" if kind == "adjudicable" else "reference genes with a log2FC"
        for p, k in enumerate(usable.sum(-1).tolist()):
            if k < m:
                out[p] = f"fewer than {m} {what}"
        return out
    if kind is not None and kind.startswith("rank_corr"):
        # over the direction's subset (rank_corr_pos / rank_corr_neg: the reference log2FC's sign), as RealGate.lfc_direction
        subset = sig & finite_lfc & _direction_mask(real.lfc, kind)
        what = "" if kind == "rank_corr" else f" {kind.rsplit('_', 1)[1]}-direction"
        for p in range(p_count):
            v = real.lfc[p, subset[p]]
            if v.numel() == 0:
                out[p] = f"no{what} reference-significant gene"
            elif v.numel() < m:
                out[p] = f"fewer than {m}{what} reference-significant genes"
            elif torch.unique(v).numel() < 2:
                out[p] = "constant reference log2FC over the gate"
        return out
    sig_k = (sig & finite_lfc) if kind == "sig_lfc" else sig
    n_rows = real.tested.sum()
    for p, k in enumerate(sig_k.sum(-1).tolist()):
        if k == 0:
            out[p] = "no reference-significant gene"
        elif k < m:
            out[p] = f"fewer than {m} reference-significant genes"
        elif kind in ("two_class", "sig_universe", "ranked_universe") and int(n_rows) - k < 1:
            out[p] = "every reference gene is significant (single class)"
    return out


def constant_prediction(prep: PreparedDE, kind: str | None, s: Settings, outside: dict[int, str]) -> set[int]:
    """Perturbations inside a correlation gate whose prediction is constant there (charged the worst value)."""
    inside = [p for p in range(prep.sig_real.shape[0]) if p not in outside and bool(prep.scored[p])]
    if kind == "count_corr":
        n_real = prep.sig_real.sum(-1)
        n_pred = prep.sig_pred.sum(-1)[n_real > 0]
        return set(inside) if inside and torch.unique(n_pred).numel() <= 1 else set()
    if kind is None or not kind.startswith("rank_corr"):
        return set()
    lfc_p = torch.nan_to_num(prep.pred.lfc, nan=0.0)
    sig = prep.sig_real & _direction_mask(prep.real.lfc, kind)
    return {p for p in inside if torch.unique(lfc_p[p, sig[p]]).numel() <= 1}


def _direction_mask(lfc: Tensor, kind: str) -> Tensor:
    """``[P, G]`` bool: genes of a ``rank_corr`` gate kind's direction (``_pos``: real log2FC > 0, ``_neg``: < 0)."""
    if kind.endswith("_pos"):
        return lfc > 0
    if kind.endswith("_neg"):
        return lfc < 0
    return torch.ones_like(lfc, dtype=torch.bool)


#: Every metric class defined by ``_define``: config name -> class (each also a module attribute, which
#: the static table in ``distgen.evaluation.metrics.base`` names).
DEFINED: dict[str, type[Metric]] = {}


def _define(name: str, doc: str, fn: Any, hib: bool = True, gate: str | None = None, worst: float | None = None,
            v1: str | None = None, level: str = "de", module: str = __name__, diagnostic: bool = False,
            min_perturbations: int | None = None, bounds: tuple[float, float] = UNBOUNDED,
            reads_control_source: bool = True) -> type[Metric]:
    """The metric class ``name`` (``DeWilcoxon...``) from a definition, set as an attribute of ``module``.

    ``v1`` (the cell-eval 0.8.2 name) and ``level`` document the definition; a correlation across
    perturbations (``level="global"``) needs two perturbations for a defined value. ``bounds``: the range the definition
    guarantees (``MetricCapabilities.bounds``; a gate's ``worst`` value lies inside).
    """
    need = min_perturbations if min_perturbations is not None else (2 if level == "global" else 1)
    caps = MetricCapabilities(higher_is_better=hib, min_perturbations=need, diagnostic=diagnostic, per_perturbation=level != "global",
                              bounds=bounds)
    cls = type("".join(w.title() for w in name.split("_")), (_DE,),
               {"__doc__": doc, "capabilities": caps, "gate": gate, "worst": worst, "definition": staticmethod(fn), "__module__": module,
                "reads_control_source": reads_control_source})
    setattr(sys.modules[module], cls.__name__, cls)
    DEFINED[name] = cls
    return cls


# --- the definitions (``prep``: PreparedDE, ``s``: Settings) -> ([P] float64, {p: reason}) ----------------


def _overlap(k: int | None, kind: str) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        rr, rp = prep.top_ranks()
        n = (prep.sig_real if kind == "overlap" else prep.sig_pred).sum(-1)
        k_eff = n if k is None else n.clamp(max=k)
        hit = ((rr < k_eff[:, None]) & (rp < k_eff[:, None])).sum(-1)
        val = torch.where(k_eff > 0, hit.to(torch.float64) / k_eff.clamp_min(1), torch.zeros(n.shape, dtype=torch.float64))
        if not bool(prep.sig_real.any()) or not bool(prep.sig_pred.any()):
            val = torch.zeros_like(val)
        return val, {}

    return fn


def _nsig(side: str) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        return (prep.sig_real if side == "real" else prep.sig_pred).sum(-1).to(torch.float64), {}

    return fn


def _nsig_spearman(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    nr, npred = prep.sig_real.sum(-1).to(torch.float64), prep.sig_pred.sum(-1).to(torch.float64)
    keep = nr > 0
    value = float(spearman_masked(nr[None], npred[None], keep[None])[0]) if bool(keep.any()) else 1.0  # none: cell-eval2 says 1
    return torch.full(nr.shape, value, dtype=torch.float64), {}


def _sig_recall(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    n = prep.sig_real.sum(-1)
    val = (prep.sig_real & prep.sig_pred).sum(-1).to(torch.float64) / n.clamp_min(1)
    return torch.where(n > 0, val, torch.full_like(val, float("nan"))), {}


def _sign(x: Tensor) -> Tensor:
    return torch.where(torch.isnan(x), x, torch.sign(x))


def _direction_match(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    same = _sign(prep.real.lfc) == _sign(prep.pred.lfc)
    m = prep.sig_real & prep.pred.tested[None]
    n = m.sum(-1)
    val = (same & m).sum(-1).to(torch.float64) / n.clamp_min(1)
    return torch.where(n > 0, val, torch.full_like(val, float("nan"))), {}


def _model_direction_match(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    same = _sign(prep.real.lfc) == _sign(prep.pred.lfc)
    m = prep.sig_pred & prep.real.tested[None]
    n = m.sum(-1)
    val = (same & m).sum(-1).to(torch.float64) / n.clamp_min(1)
    return torch.where(n > 0, val, torch.full_like(val, float("nan"))), {}


def _lfc_spearman(direction: str) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        m = prep.sig_real & ~torch.isnan(prep.real.lfc)
        if direction == "pos":
            m = m & (prep.real.lfc > 0)
        elif direction == "neg":
            m = m & (prep.real.lfc < 0)
        return spearman_masked(prep.real.lfc, torch.nan_to_num(prep.pred.lfc, nan=0.0), m), {}

    return fn


def _lfc_nmae(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    lr, lp = prep.real.lfc, prep.pred.lfc
    gate = prep.sig_real & torch.isfinite(lr) & ~prep.own
    lp = torch.where(torch.isfinite(lp), lp, torch.zeros_like(lp))
    n = gate.sum(-1)
    num = torch.where(gate, (lp - lr).abs(), torch.zeros_like(lr)).sum(-1) / n.clamp_min(1)
    den = torch.where(gate, lr.abs(), torch.zeros_like(lr)).sum(-1) / n.clamp_min(1)
    out = torch.full(n.shape, float("nan"), dtype=torch.float64)
    reasons: dict[int, str] = {}
    for p in range(n.numel()):
        if int(n[p]) == 0:
            reasons[p] = "no reference-significant gene with a finite log2FC (empty gate)"
        elif int(n[p]) < s.min_gate_size:
            reasons[p] = f"fewer than {s.min_gate_size} gated genes"
        elif not (math.isfinite(float(den[p])) and float(den[p]) != 0.0):
            reasons[p] = "a zero or non-finite mean |real log2FC|"
        else:
            out[p] = num[p] / den[p]
    return out, reasons


def auc_scores(prep: PreparedDE, s: Settings) -> Tensor:
    """``[P, G]`` ``-log10`` of the predicted adjusted p-values after the preset's floor for zeros."""
    q = torch.nan_to_num(prep.pred.fdr, nan=1.0)
    q = torch.where(prep.real.tested[None], q, torch.ones_like(q))
    if s.auc_pval_floor == "clip":
        q = q.clamp(s.auc_pval_floor_value, 1.0)
    elif s.auc_pval_floor == "replace_zero":
        q = q.to(torch.float32).to(torch.float64)
        q = torch.where(q == 0, torch.full_like(q, s.auc_pval_floor_value), q)
    else:
        rows = prep.scored[:, None] & prep.real.tested[None]
        nz = q[rows & (q > 0)]
        floor = float(nz.min()) if nz.numel() else s.auc_pval_floor_value
        q = torch.where(q == 0, torch.full_like(q, floor), q)
    return -torch.log10(q)


def _auc(method: str) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        scores = auc_scores(prep, s)
        tested = prep.real.tested
        labels = prep.sig_real[:, tested]
        sc = scores[:, tested]
        val = roc_auc_rows(labels, sc) if method == "roc" else average_precision_rows(labels, sc).clamp(0.0, 1.0)
        return val, {}

    return fn


def _table_counts(prep: PreparedDE) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(tp, a, b, g)`` per perturbation: both significant, real significant, predicted significant, tested genes."""
    a, b = prep.sig_real.sum(-1), prep.sig_pred.sum(-1)
    tp = (prep.sig_real & prep.sig_pred).sum(-1)
    g = (prep.real.tested | prep.pred.tested).sum().expand_as(a)
    return tp, a, b, g


def _mcc(tp: int, a: int, b: int, g: int) -> float:
    if a <= 0 or a >= g or b <= 0 or b >= g:
        return -1.0
    return (tp * g - a * b) / ((a * b * (g - a) * (g - b)) ** 0.5)


def _informedness(tp: int, a: int, b: int, g: int) -> float:
    return -1.0 if a <= 0 or a >= g else tp / a - (b - tp) / (g - a)


def _markedness(tp: int, a: int, b: int, g: int) -> float:
    return -1.0 if b <= 0 or b >= g else tp / b - (a - tp) / (g - b)


def _agreement(measure: Any) -> Any:
    def fn(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
        tp, a, b, g = (t.tolist() for t in _table_counts(prep))
        return torch.tensor([measure(*row) for row in zip(tp, a, b, g)], dtype=torch.float64), {}

    return fn


def _overlap_adjusted(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    rr, rp = prep.top_ranks()
    m_r = prep.sig_real.sum(-1)
    b = torch.minimum(prep.sig_pred.sum(-1), m_r)
    tp = (prep.sig_real & (rp < m_r[:, None])).sum(-1)
    g = (prep.real.tested | prep.pred.tested).sum()
    del rr
    return torch.tensor([_mcc(int(t), int(a), int(bb), int(g)) for t, a, bb in zip(tp, m_r, b)], dtype=torch.float64), {}


def _sig_jaccard(prep: PreparedDE, s: Settings) -> tuple[Tensor, dict[int, str]]:
    r, p = prep.sig_real & ~prep.own, prep.sig_pred & ~prep.own
    tp = (r & p).sum(-1)
    union = r.sum(-1) + p.sum(-1) - tp
    return torch.where(union == 0, torch.ones(tp.shape, dtype=torch.float64), tp.to(torch.float64) / union.clamp_min(1)), {}


for _kind in ("overlap", "precision"):
    for _k in (None, 50, 100, 200, 500):
        _suffix = _kind + (f"_top{_k}" if _k else "")
        _what = "recall of the real" if _kind == "overlap" else "precision of the predicted"
        _define(f"de_wilcoxon_{_suffix}", f"Top-{_k or 'N'} DE gene {_what} significant genes (cell-eval2).",
                  _overlap(_k, _kind), v1=f"{_kind}_at_{_k or 'N'}", bounds=FRACTION)
_define("de_wilcoxon_nsig_counts_real", "Number of significant genes of the real cells (cell-eval2).", _nsig("real"),
          v1="de_nsig_counts_real", diagnostic=True, bounds=NONNEGATIVE, reads_control_source=False)
_define("de_wilcoxon_nsig_counts_pred", "Number of significant genes of the predicted cells (cell-eval2).", _nsig("pred"),
          v1="de_nsig_counts_pred", diagnostic=True, bounds=NONNEGATIVE)
_define("de_wilcoxon_nsig_spearman", "Spearman, across perturbations, of the numbers of significant genes (one value).",
          _nsig_spearman, gate="count_corr", worst=-1.0, v1="de_spearman_sig", level="global",
          min_perturbations=10, bounds=CORRELATION)  # the reference gate: at least 10 targets with a significant gene
_define("de_wilcoxon_sig_recall", "Fraction of the real significant genes also significant in the prediction.", _sig_recall,
          gate="sig_set", v1="de_sig_genes_recall", bounds=FRACTION)
_define("de_wilcoxon_direction_match", "Fraction of the real significant genes whose predicted fold change has the same sign.",
          _direction_match, gate="sig_lfc", worst=0.0, v1="de_direction_match", bounds=FRACTION)
_define("de_wilcoxon_model_direction_match", "Fraction of the predicted significant genes whose real fold change has the same sign.",
          _model_direction_match, gate="lfc_present", worst=0.0, v1="de_model_direction_match", bounds=FRACTION)
_define("de_wilcoxon_lfc_spearman", "Spearman of real and predicted fold changes over the real significant genes.",
          _lfc_spearman("all"), gate="rank_corr", worst=-1.0, v1="de_spearman_lfc_sig", bounds=CORRELATION)
_define("de_wilcoxon_lfc_spearman_pos", "Spearman of fold changes over the real significant up-regulated genes.",
          _lfc_spearman("pos"), gate="rank_corr_pos", worst=-1.0, v1="de_spearman_pos_lfc_sig", bounds=CORRELATION)
_define("de_wilcoxon_lfc_spearman_neg", "Spearman of fold changes over the real significant down-regulated genes.",
          _lfc_spearman("neg"), gate="rank_corr_neg", worst=-1.0, v1="de_spearman_neg_lfc_sig", bounds=CORRELATION)
_define("de_wilcoxon_lfc_nmae", "mean |lfc_pred - lfc_real| / mean |lfc_real| over the real significant genes (own gene out).",
          _lfc_nmae, hib=False, bounds=NONNEGATIVE)
_define("de_wilcoxon_pr_auc", "Average precision of predicted -log10 p_adj for the real significant genes.", _auc("pr"),
          gate="two_class", v1="pr_auc", bounds=FRACTION)
_define("de_wilcoxon_roc_auc", "ROC AUC of predicted -log10 p_adj for the real significant genes.", _auc("roc"),
          gate="two_class", v1="roc_auc", bounds=FRACTION)
_define("de_wilcoxon_overlap_adjusted", "Matthews correlation of the real significant set and the predicted top-|real set|.",
          _overlap_adjusted, gate="ranked_universe", bounds=CORRELATION)
_define("de_wilcoxon_precision_adjusted", "Markedness of the significance 2x2 table (chance-corrected precision).",
          _agreement(_markedness), bounds=CORRELATION)
_define("de_wilcoxon_sig_recall_adjusted", "Informedness of the significance 2x2 table (chance-corrected recall).",
          _agreement(_informedness), gate="sig_universe", bounds=CORRELATION)
_define("de_wilcoxon_sig_mcc", "Matthews correlation of the significance 2x2 table.", _agreement(_mcc), gate="sig_universe", bounds=CORRELATION)
_define("de_wilcoxon_sig_jaccard", "Jaccard index of the real and predicted significant sets (own gene out; 1 when both empty).",
          _sig_jaccard, bounds=FRACTION)
