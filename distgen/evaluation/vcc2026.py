"""The Virtual Cell Challenge 2026 score, as cell-eval2 0.20.0's ``vcc2026`` preset defines it, over ``EvalData``.

Three runs of the preset's ten metrics (six scored, four diagnostics) on RAW COUNTS:

* the submission (``u``): the prediction against the real cells;
* the *mean-response baseline* (``b``): every perturbation predicted as the average real response
  (the mean over perturbations of each perturbation's mean counts, each perturbation's own gene
  left out; none under ``--no-target-genes``), emitted by resampling real control cells (``numpy`` generator, ``seed``) and scaling
  each gene by ``profile / control mean``; the real controls as its control rows;
* the *split-half replicate* (``r``): for 5 seeds derived from ``base_seed`` (``SeedSequence``), the
  real cells of every group are shuffled and cut into two disjoint halves of ``floor(n/2)``, and one
  half is scored as a prediction of the other with each half's OWN controls; ``r`` is the mean of
  the 5 aggregates, except ``de_wilcoxon_lfc_nmae``, whose ``r`` is the raw split-half fold-change
  disagreement over the FULL data's significance gate.

Each scored metric becomes ``(u - b) / (r - b)`` (lower-is-better ones the same with signs
flipped, so 1 = as good as a replicate, 0 = as good as the baseline), with cell-eval2's per-metric
policy (clamps, the Box-Cox tail of ``expr_mse_unbiased_capped_norm``), and ``avg_score`` is their
mean. A metric whose baseline is no better than its replicate has no scale: it is reported with
the reason and left out of the average, where cell-eval2 refuses the whole score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from distgen.evaluation.evaldata import EvalData, Population
from distgen.evaluation.metrics.celleval2_de import prepared_de
from distgen.evaluation.metrics.celleval2_settings import NO_TARGET_GENES, settings_for
from distgen.evaluation.suite import MetricTable, run_metrics
from distgen.wording import counted, first_of

#: The ``vcc2026`` preset's metrics, in cell-eval2's catalog order.
VCC2026_METRICS: tuple[str, ...] = (
    "pds_cosine", "expr_mse_unbiased", "expr_mse_unbiased_capped", "expr_distance_unbiased", "expr_real_mass_ratio",
    "expr_mse_unbiased_capped_norm", "de_wilcoxon_lfc_nmae", "de_wilcoxon_direction_fidelity_yield_raw",
    "de_wilcoxon_direction_reach_raw", "de_wilcoxon_sig_jaccard",
)  # fmt: skip
LFC_NMAE = "de_wilcoxon_lfc_nmae"
PENALTY_EXPONENT, PENALTY_CAP = 2.0, 6.0


@dataclass(frozen=True)
class Policy:
    """How one metric's value maps to a score (cell-eval2's ``Scoring``; ``anchor`` is 1/0 or the replicate)."""

    direction: str  # "higher" or "lower"
    anchor: float
    penalty: str = "none"  # "boxcox": past the baseline, -(x^2 - 1) / 2 down to -6
    clamp_low: float | None = None
    clamp_high: float | None = None
    metric_min: float | None = None  # the worst value an undefined submission is charged


class ScoreUndefined(ValueError):
    """The pair gives the score no baseline or replicate (cell-eval2's ``baseline`` refuses it); the metrics still stand."""


_UNFLOORED = Policy("higher", 1.0, metric_min=0.0)
#: The six scored members and their policies (anchor 1 or 0; the replicate replaces it on the vcc2026 scale).
SCORED: dict[str, Policy] = {
    "pds_cosine": _UNFLOORED,
    "expr_mse_unbiased_capped_norm": Policy("lower", 0.0, penalty="boxcox", clamp_low=0.0, clamp_high=1.0),
    LFC_NMAE: Policy("lower", 0.0, clamp_low=-6.0),
    "de_wilcoxon_direction_fidelity_yield_raw": _UNFLOORED,
    "de_wilcoxon_direction_reach_raw": _UNFLOORED,
    "de_wilcoxon_sig_jaccard": _UNFLOORED,
}


def _low(p: Policy) -> float:
    if p.clamp_low is not None:
        return p.clamp_low
    return -PENALTY_CAP if p.penalty == "boxcox" else -math.inf


def _raw(u: float, b: float, p: Policy) -> float:
    if p.direction == "lower":
        r = (u - p.anchor) / (b - p.anchor)
        s = 1.0 - r
        if s < 0.0 and p.penalty == "boxcox":
            try:
                s = max(-PENALTY_CAP, -(r**PENALTY_EXPONENT - 1.0) / PENALTY_EXPONENT)
            except OverflowError:
                s = -PENALTY_CAP
        return s
    return (u - b) / (p.anchor - b)


def _clip(x: float, low: float, high: float) -> float:
    if not math.isfinite(x):
        return low
    return low if x <= low else (high if x >= high else x)


def score_one(u: float, b: float, p: Policy) -> float:
    """cell-eval2's ``score_one``: the raw score, clipped; an undefined ``u`` is charged ``metric_min``'s score."""
    low, high = _low(p), (math.inf if p.clamp_high is None else p.clamp_high)
    s = _raw(u, b, p) if math.isfinite(u) else math.nan
    if not math.isfinite(s):
        s = _raw(p.metric_min, b, p) if (not math.isfinite(low) and p.metric_min is not None) else -math.inf
    return _clip(s, low, high)


#: A denominator ``|anchor - baseline|`` at most this fraction of ``max(|anchor|, |baseline|)`` is rounding, not
#: headroom: the aggregates are means of means, whose float64 summation differs in the last bits with the order of
#: the sums (7 perturbations' ``pds_cosine`` at 11/14 reads 0.7857142857142857 in one and ...858 in the other).
#: 1e-12 is ~4500 units in the last place, far above such rounding and far below any scale worth dividing by
#: (a gap of 1e-12 would multiply every difference by 1e12).
ROUNDING_TOLERANCE = 1e-12


def degenerate(b: float, p: Policy) -> str | None:
    """Why ``b`` gives no usable scale under ``p`` (``None`` when it does).

    No scale when either end is not finite, when the baseline is no worse than the anchor, or when the
    two ends are equal up to floating-point rounding (``ROUNDING_TOLERANCE`` relative to the larger).
    """
    if not math.isfinite(b):
        return f"the baseline aggregate is {b!r}"
    if not math.isfinite(p.anchor):
        return f"the replicate aggregate is {p.anchor!r}"
    d = (p.anchor - b) if p.direction == "higher" else (b - p.anchor)
    if not d > 0.0:
        better = "higher" if p.direction == "higher" else "lower"
        return f"the baseline ({b:.6g}) is no worse than the replicate ({p.anchor:.6g}); a {better} value is better, so there is no headroom to scale"
    if d <= ROUNDING_TOLERANCE * max(abs(b), abs(p.anchor)):
        return (f"the baseline ({b!r}) and the replicate ({p.anchor!r}) are equal up to floating-point rounding "
                f"(difference {d:.3g}), so there is no headroom to scale")
    return None


def aggregate(table: MetricTable, names: Sequence[str] = VCC2026_METRICS) -> dict[str, float]:
    """Per metric the mean over perturbations where defined (``expr_mse_unbiased_capped_norm``: its one value)."""
    return {n: table.mean(n) for n in names if n in table.values}


def _params(control_source: str | None = None) -> dict[str, dict[str, Any]]:
    """Each metric's parameters: the vcc2026 preset, and ``control_source`` where the metric reads a control of the
    prediction (the others would warn that it has no effect: ``check_control_source_read``)."""
    from distgen.evaluation.metrics.base import metrics as registered

    return {n: {"preset": "vcc2026", **({"control_source": control_source}
                                        if getattr(registered.get(n), "reads_control_source", True) else {})}
            for n in VCC2026_METRICS}


def require_counts(data: EvalData) -> None:
    """Refuse log-normalised data: the vcc2026 preset scores raw counts."""
    s = settings_for("vcc2026")
    if not s.is_counts(data):
        raise ValueError("the vcc2026 profile scores RAW COUNTS, but these cells hold fractional (log-normalised) values: "
                         "write predictions in counts (`distgen predict --counts`) and evaluate against the raw-count truth "
                         "(the counts layer of the real data), or choose another profile (`celleval2`, `cell-eval-0.8.2`)")


# --- the mean-response baseline -----------------------------------------------------------------------------


def baseline_data(data: EvalData, seed: int = 0) -> EvalData:
    """The generic mean-response prediction of cell-eval2's ``baseline`` command, against ``data.real``."""
    real = data.real
    declared = bool(data.cache.get(NO_TARGET_GENES))  # --no-target-genes: no label names a target gene, nothing is excluded
    genes = {} if declared else {g: i for i, g in enumerate(data.genes)}
    present = (real.counts > 0).nonzero().flatten()
    if present.numel() < 2 and not declared:
        raise ScoreUndefined(f"the mean-response baseline excludes each perturbation's target gene and needs at least 2 "
                             f"perturbations for that (got {present.numel()}), as cell-eval2's baseline refuses it; pass "
                             "--no-target-genes (no_target_genes=True) if the perturbations have no target gene")
    bulk = real.means()[present]
    total, count = bulk.sum(0), torch.full((len(data.genes),), float(present.numel()), dtype=torch.float64)
    for row, p in enumerate(present.tolist()):
        j = genes.get(data.perts[p])
        if j is not None:
            total[j] -= bulk[row, j]
            count[j] -= 1.0
    if bool((count <= 0).any()):
        raise ScoreUndefined("a gene is the target of every perturbation, so the mean response leaves it no value")
    profile = total / count
    ctrl = real.control.to(torch.float64)
    ctrl_mean = ctrl.mean(0)
    scale = torch.where(ctrl_mean > 0, profile / torch.where(ctrl_mean > 0, ctrl_mean, torch.ones_like(ctrl_mean)), torch.zeros_like(profile))
    rng = np.random.default_rng(seed)
    draws = [torch.from_numpy(rng.integers(0, ctrl.shape[0], size=int(real.counts[p]))) for p in present.tolist()]
    source = torch.cat(draws) if draws else torch.zeros(0, dtype=torch.long)
    # cell-eval2 stores the control cells as float32 and the emitted values as float32
    emitted = (ctrl.to(torch.float32)[source].to(torch.float64) * scale).to(torch.float32)
    pred = Population(X=emitted, offsets=real.offsets.clone(), control=real.control)
    return EvalData(real=real, pred=pred, perts=data.perts, targets=data.targets, genes=data.genes, cache=_carried(data))


def _carried(data: EvalData) -> dict[str, Any]:
    """The cache of a derived pair (baseline, split half): counts, and ``--no-target-genes`` when ``data`` declared it."""
    return {"scale": "counts", **({NO_TARGET_GENES: True} if data.cache.get(NO_TARGET_GENES) else {})}


# --- the split-half replicate --------------------------------------------------------------------------------


def group_order(data: EvalData, control_label: str = "non-targeting") -> list[str]:
    """The order cell-eval2 visits the real file's groups in: its perturbation column's categories.

    ``data.cache["group_order"]`` when the reader recorded it; otherwise anndata's order for a
    string column written to h5ad, natural sort (``natsort``: ``CD4`` before ``CD14``).
    """
    recorded = data.cache.get("group_order")
    if recorded is not None:
        return list(recorded)
    from natsort import natsorted

    return list(natsorted([*data.perts, control_label]))


def split_halves(data: EvalData, seed: int, control_label: str = "non-targeting") -> EvalData:
    """One disjoint split of the real cells: ``real`` = half A, ``pred`` = half B (cell-eval2's ``_disjoint_halves``).

    Groups are visited in ``group_order`` (the control ``control_label`` among them); each is
    permuted by one ``numpy`` generator and cut into ``floor(n/2)`` + ``floor(n/2)`` cells.
    """
    real = data.real
    rng = np.random.default_rng(seed)
    index = {p: i for i, p in enumerate(data.perts)} | {control_label: -1}
    groups = [(label, index[label]) for label in group_order(data, control_label) if label in index]
    halves: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for _label, i in groups:
        cells = real.control if i < 0 else real.cells(i)
        perm = torch.from_numpy(rng.permutation(cells.shape[0]))
        h = cells.shape[0] // 2
        if h >= 1:
            halves[i] = (cells[perm[:h]], cells[perm[h : 2 * h]])
    if -1 not in halves:
        raise ScoreUndefined("the split-half replicate needs at least 2 real control cells")

    def population(side: int) -> Population:
        parts = [halves[i][side] if i in halves else real.X[:0] for i in range(data.n_perts)]
        counts = torch.tensor([x.shape[0] for x in parts])
        offsets = torch.zeros(data.n_perts + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(counts, 0)
        return Population(X=torch.cat(parts), offsets=offsets, control=halves[-1][side])

    return EvalData(real=population(0), pred=population(1), perts=data.perts, targets=data.targets, genes=data.genes,
                    cache=_carried(data))


def lfc_nmae_reference(data: EvalData, split: EvalData, min_gate_size: int = 10) -> float:
    """Mean over perturbations of ``mean |lfc_A - lfc_B| / mean |lfc_full|`` over the FULL data's significance gate.

    ``lfc_A``, ``lfc_B``: each half's fold changes against its own controls (missing or non-finite
    -> 0); perturbations with fewer than ``min_gate_size`` gated genes are left out.
    """
    full = prepared_de(data, settings_for("vcc2026"))
    halves = prepared_de(split, settings_for("vcc2026", control_source="pred"))  # each half against its own controls
    a, b = halves.real.lfc, halves.pred.lfc
    gate = full.sig_real & torch.isfinite(full.real.lfc) & ~full.own
    a = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
    b = torch.where(torch.isfinite(b), b, torch.zeros_like(b))
    vals = []
    for p in range(data.n_perts):
        m = gate[p]
        n = int(m.sum())
        if n < min_gate_size:
            continue
        den = float(full.real.lfc[p, m].abs().mean())
        if math.isfinite(den) and den != 0.0:
            vals.append(float((a[p, m] - b[p, m]).abs().mean()) / den)
    return float(np.mean(vals)) if vals else math.nan


def split_seeds(base_seed: int = 0, n_splits: int = 5) -> list[int]:
    """cell-eval2's split seeds: ``SeedSequence(base_seed).generate_state(n_splits)``."""
    return [int(x) for x in np.random.SeedSequence(int(base_seed)).generate_state(n_splits)]


def replicate_anchor(data: EvalData, control_label: str = "non-targeting", base_seed: int = 0,
                     n_splits: int = 5) -> tuple[dict[str, float], list[dict[str, float]]]:
    """``(replicate mean per metric, per-split aggregates)`` of the split-half replicate.

    Refused (``ScoreUndefined``) when a real perturbation has at most one cell, as cell-eval2's anchor refuses it
    (its lfc_nmae reference needs every target in both halves): a half without that perturbation would average
    the replicate over other perturbations than the submission.
    """
    thin = [p for p, n in zip(data.perts, data.real.counts.tolist()) if n <= 1]
    if thin:
        raise ScoreUndefined(f"{counted(len(thin), 'perturbation')} {'has' if len(thin) == 1 else 'have'} <= 1 real cell "
                             f"({first_of(thin, 5, render=repr, enclosed=True)}): the split-half replicate "
                             "needs at least 2 per perturbation so every one is in both halves, as cell-eval2's anchor refuses "
                             "it; leave those perturbations out of both files to get a score")
    splits = []
    for seed in split_seeds(base_seed, n_splits):
        split = split_halves(data, seed, control_label)
        agg = aggregate(run_metrics(split, list(VCC2026_METRICS), params=_params("pred")))
        agg[LFC_NMAE] = lfc_nmae_reference(data, split)
        splits.append(agg)
    mean = {n: float(np.mean([s[n] for s in splits])) for n in VCC2026_METRICS}
    return mean, splits


# --- the score -------------------------------------------------------------------------------------------------


@dataclass
class VCC2026Score:
    """Per metric: submission ``user``, ``baseline``, ``replicate``; ``from_replicate`` (the vcc2026 scale) and
    ``from_baseline`` (anchors 1/0); ``avg_score`` averages the scored members that have a scale; ``reasons``
    names each member left out and why."""

    user: dict[str, float]
    baseline: dict[str, float]
    replicate: dict[str, float]
    from_replicate: dict[str, float] = field(default_factory=dict)
    from_baseline: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    splits: list[dict[str, float]] = field(default_factory=list)
    avg_score: float = math.nan
    avg_from_baseline: float = math.nan

    @property
    def left_out(self) -> list[str]:
        """The scored members ``avg_score`` does not average (no replicate scale; ``reasons`` says why)."""
        return [n for n in SCORED if n not in self.from_replicate]

    def averaged_note(self) -> str:
        """``""`` when ``avg_score`` averages all six scored members, else how many and which were left out."""
        if not self.left_out:
            return ""
        return f"mean of {len(self.from_replicate)} of {len(SCORED)} scored metrics; left out: {', '.join(self.left_out)}"

    def rows(self) -> list[dict[str, Any]]:
        """One dict per scored metric, then ``avg_score``."""
        out = [{"metric": n, "user": self.user.get(n), "baseline": self.baseline.get(n), "replicate": self.replicate.get(n),
                "from_replicate": self.from_replicate.get(n, math.nan), "from_baseline": self.from_baseline.get(n, math.nan),
                "note": self.reasons.get(n, "")} for n in SCORED]
        out.append({"metric": "avg_score", "from_replicate": self.avg_score, "from_baseline": self.avg_from_baseline,
                    "note": self.averaged_note()})
        return out


def score(user: dict[str, float], baseline: dict[str, float], replicate: dict[str, float]) -> VCC2026Score:
    """Normalise each scored member against its baseline and replicate; degenerate scales are reported, not raised."""
    out = VCC2026Score(user=dict(user), baseline=dict(baseline), replicate=dict(replicate))
    for name, policy in SCORED.items():
        u, b, r = user.get(name, math.nan), baseline.get(name, math.nan), replicate.get(name, math.nan)
        why = degenerate(b, Policy(policy.direction, r, policy.penalty, policy.clamp_low, policy.clamp_high, policy.metric_min))
        if why is None:
            rp = Policy(policy.direction, r, policy.penalty, policy.clamp_low, policy.clamp_high, policy.metric_min)
            out.from_replicate[name] = score_one(u, b, rp)
        else:
            out.reasons[name] = f"no replicate scale: {why}"
        if degenerate(b, policy) is None:
            out.from_baseline[name] = score_one(u, b, policy)
    if out.from_replicate:
        out.avg_score = float(np.mean(list(out.from_replicate.values())))
    if out.from_baseline:
        out.avg_from_baseline = float(np.mean(list(out.from_baseline.values())))
    return out


def unscored(why: str) -> VCC2026Score:
    """The score of a pair that has none (``ScoreUndefined``): every scored member left out with ``why``, ``avg_score`` NaN."""
    return VCC2026Score(user={}, baseline={}, replicate={}, reasons={n: f"no score: {why}" for n in SCORED})


def vcc2026_score(data: EvalData, control_label: str = "non-targeting", seed: int = 0, base_seed: int = 0,
                  n_splits: int = 5) -> VCC2026Score:
    """The whole vcc2026 score of ``data`` (raw counts on both sides): submission, baseline, replicate, normalised."""
    require_counts(data)
    user = aggregate(run_metrics(data, list(VCC2026_METRICS), params=_params()))
    base = aggregate(run_metrics(baseline_data(data, seed), list(VCC2026_METRICS), params=_params()))
    rep, splits = replicate_anchor(data, control_label, base_seed, n_splits)
    result = score(user, base, rep)
    result.splits = splits
    return result
