"""Discrimination score (cell-eval's PDS): is a prediction closest to its own real effect?"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from distgen.capabilities import FRACTION, MetricCapabilities
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics.base import Metric, MetricResult

_BLOCK = 2**23
#: Why a discrimination score is NaN when fewer than two conditions are scored together.
FEWER_THAN_TWO = ("fewer than 2 conditions with a real effect in this context: the rank of the own effect among "
                  "one is always first, so the score would be 1.0 for any prediction")
#: Why a discrimination score is NaN when the perturbation's own target genes, which it leaves out, are every gene.
NO_GENE_LEFT = ("every gene of the files is a target of this perturbation, which the score leaves out (exclude): no gene is "
                "left to compare effects on, and every distance would be 0, ranking the own effect first (1.0) for any "
                "prediction")
#: Why a cosine discrimination score is NaN for a prediction whose effect is exactly zero (docs/metrics.md).
ZERO_EFFECT = ("the predicted effect is zero (the prediction's mean equals its controls' mean): a cosine distance needs a "
               "direction, so every real effect is equally far; cell-eval 0.8.2 puts them all at distance 1 and ranks the tie by "
               "label order (1 - position / P), a number set by the order of the labels, not by the prediction")
#: ``single_condition`` values: ``"nan"`` (distgen: NaN with ``FEWER_THAN_TWO``) or ``"reference"`` (cell-eval 0.8.2's and
#: cell-eval2's 1.0, the rank of the own effect among one: the reference profiles report it, with ``TRIVIAL_NOTE``).
SINGLE_CONDITION = ("nan", "reference")
#: ``ties`` values: ``"midrank"`` (an exactly tied real effect counts half) or ``"position"`` (cell-eval 0.8.2: the own real
#: effect's position in numpy's ``argsort`` of the distance row, an order set by the sort, not by the prediction).
TIES = ("midrank", "position")
#: The note a reference profile writes for a context with one perturbation (``distgen.pipeline.profile_eval``).
TRIVIAL_NOTE = ("a single perturbation is scored in this context: its discrimination scores ({names}) are 1.0, as {reference} "
                "reports them, for ANY prediction (the rank of the own effect among one is always first); the value is "
                "trivial and says nothing about the prediction (distgen's default evaluation reports NaN)")


def check_single_condition(value: str) -> str:
    """``value`` if it is one of ``SINGLE_CONDITION``, else a ``ValueError`` naming them."""
    if value not in SINGLE_CONDITION:
        raise ValueError(f"single_condition must be 'nan' (NaN with the reason) or 'reference' (1.0, as cell-eval reports a "
                         f"rank among one), got {value!r}")
    return value


def effect_distances(pred: Tensor, real: Tensor, keep: Tensor, metric: str) -> Tensor:
    """``D [P, Q]``: distance from predicted effect ``p`` to real effect ``q`` over genes ``keep[p]``.

    ``pred [P, G]``, ``real [Q, G]``, ``keep [P, G]`` bool. ``metric``: ``l1``, ``l2`` or ``cosine``
    (``1 - cos``).
    """
    w = keep.to(pred.dtype)
    if metric == "l2":
        sq = (pred.pow(2) * w).sum(-1, keepdim=True) - 2 * (pred * w) @ real.T + w @ real.pow(2).T
        return sq.clamp_min(0).sqrt()
    if metric == "cosine":
        dot = (pred * w) @ real.T
        norm_p = (pred.pow(2) * w).sum(-1, keepdim=True).sqrt()
        norm_q = (w @ real.pow(2).T).sqrt()
        return 1.0 - dot / (norm_p * norm_q)
    if metric == "l1":
        return _l1_distances(pred, real, keep)
    raise ValueError(f"discrimination metric must be 'l1', 'l2' or 'cosine', got {metric!r}")


def _l1_distances(pred: Tensor, real: Tensor, keep: Tensor) -> Tensor:
    """``D [P, Q]`` L1 distances over genes ``keep[p]``: ``torch.cdist`` over every gene, minus the few excluded ones.

    An L1 distance has no matrix-product form, so it is ``P x Q x G`` work however it is done; ``cdist`` does it without
    the ``[rows, Q, G]`` intermediates of a broadcast (17-24x faster on one core at 800 conditions x 300-2,000 genes,
    float64), which made this metric most of an evaluation of 1,600 perturbations. The excluded genes (each
    perturbation's own targets: one or two per row) are subtracted after, ``[excluded, Q]`` work; a ``keep`` that
    excludes more than an eighth of the entries takes the masked broadcast instead. Both sum the same terms (in
    another order: the values agree to float rounding, and equal real effects keep equal distances).
    """
    drop = ~keep
    if 8 * int(drop.sum()) > drop.numel():
        rows = max(1, _BLOCK // max(1, real.numel()))
        w = keep.to(pred.dtype)
        return torch.cat([((pred[i : i + rows, None] - real[None]).abs() * w[i : i + rows, None]).sum(-1)
                          for i in range(0, pred.shape[0], rows)])
    d = torch.cdist(pred[None], real[None], p=1)[0]
    p_idx, g_idx = drop.nonzero(as_tuple=True)
    step = max(1, _BLOCK // max(1, real.shape[0]))
    for i in range(0, p_idx.numel(), step):
        p, g = p_idx[i : i + step], g_idx[i : i + step]
        d.index_add_(0, p, -(pred[p, g][:, None] - real[:, g].T).abs())
    return d


def argsort_positions(d: Tensor, valid: Tensor, dtype: str | None = None) -> Tensor:
    """``[P]``: the position of column ``p`` in numpy's ``argsort`` of row ``p`` of ``d`` over the ``valid`` columns (cell-eval
    0.8.2's rank: exact ties fall in the order the sort leaves them); NaN where column ``p`` is not valid.

    The call mirrors cell-eval 0.8.2's (``metrics/_anndata.py``: ``np.argsort(distances)``): a contiguous 1-D row, one
    entry a scored perturbation, in ``dtype`` (the reference's row dtype, ``reference_row_dtype``), the default kind.
    numpy's default sort is not stable and its order of ties depends on the CPU's vectorised sort and numpy's version, not
    only on the values; a comparison sort orders two rows alike when their entries compare alike, so distgen's position
    equals the reference's on the machine both run on whenever the two rows have the same ties and the same order.
    """
    import numpy as np

    dn, cols = d.detach().cpu().numpy(), np.flatnonzero(valid.cpu().numpy())
    out = torch.full((d.shape[0],), float("nan"), dtype=torch.float64)
    for p in range(d.shape[0]):
        row = np.ascontiguousarray(dn[p, cols], dtype=dtype or dn.dtype)
        hit = np.flatnonzero(cols[np.argsort(row)] == p)
        if hit.size:
            out[p] = float(hit[0])
    return out


def reference_row_dtype(data: EvalData, metric: str) -> str:
    """The dtype of cell-eval 0.8.2's distance row: scipy's ``cdist`` (L1) returns float64; sklearn's euclidean and cosine
    distances keep float32 when both pseudobulk effects are float32 (polars keeps a float32 matrix's means float32).

    Judged from the cells as distgen holds them: the ``cell-eval-0.8.2`` profile holds a float64 file's cells in float64
    (``Profile.file_dtype``), so its row is float64 as the reference's (docs/metrics.md, "Exact ties")."""
    both32 = data.real.X.dtype == torch.float32 and data.pred.X.dtype == torch.float32
    return "float32" if metric != "l1" and both32 else "float64"


class _Discrimination(Metric):
    metric: ClassVar[str] = "l1"

    def __init__(self, exclude: str = "atoms", control: str = "own", single_condition: str = "nan", ties: str = "midrank") -> None:
        if ties not in TIES:
            raise ValueError(f"ties must be 'midrank' (an exact tie counts half) or 'position' (numpy's argsort position, as "
                             f"cell-eval 0.8.2 ranks), got {ties!r}")
        self.ties = ties
        if exclude not in ("atoms", "label", "none"):
            raise ValueError(f"exclude must be 'atoms' (all target genes), 'label' (cell-eval) or 'none', got {exclude!r}")
        self.exclude = exclude
        if control not in ("own", "real"):  # was refused only when computed, after the run had predicted
            raise ValueError(f"control must be 'own' (each file's own controls, cell-eval) or 'real' (the real controls for "
                             f"both), got {control!r}")
        self.control = control
        self.single_condition = check_single_condition(single_condition)

    def compute(self, data: EvalData) -> MetricResult:
        real = data.delta("real")
        pred = data.delta("pred", self.control)
        keep = ~data.target_mask(self.exclude)
        d = effect_distances(pred, real, keep, self.metric)  # [P, P]
        own = d.diagonal()
        valid_q = torch.isfinite(real).all(-1)
        n_valid = int(valid_q.sum())
        if n_valid < 2:  # a rank among fewer than two real effects is always first: no information
            if self.single_condition == "reference" and data.n_perts == 1:  # cell-eval 0.8.2: 1 - 0 / 1
                return MetricResult.from_values(torch.ones(1, dtype=torch.float64), FEWER_THAN_TWO)
            return MetricResult.from_values(torch.full((data.n_perts,), float("nan"), dtype=torch.float64), FEWER_THAN_TWO)
        # an exact tie with another real effect counts half (a midrank), not as the prediction's win: a diverged prediction
        # (1e30 in every gene) is as far from every real effect to float precision, and took 1.0 (first) before
        closer = ((d < own[:, None]) & valid_q[None]).sum(-1).to(torch.float64)
        tied = ((d == own[:, None]) & valid_q[None]).sum(-1).to(torch.float64) - valid_q.to(torch.float64)  # less its own
        rank = closer + 0.5 * tied.clamp_min(0) if self.ties == "midrank" else argsort_positions(d, valid_q, reference_row_dtype(data, self.metric))
        score = 1.0 - rank / n_valid
        score = torch.where(torch.isfinite(own), score, torch.full_like(score, float("nan")))
        no_gene = ~keep.any(-1)  # every gene left out: every distance 0, the own effect ranked first whatever was predicted
        score = torch.where(no_gene, torch.full_like(score, float("nan")), score)
        result = MetricResult.from_values(score, "predicted or real effect undefined (no cells or zero norm)")
        if self.metric == "cosine":  # a zero predicted effect (a prediction equal to its controls) has no direction
            zero = ((pred * keep).abs().sum(-1) == 0) & torch.isfinite(pred).all(-1)
            for p in zero.nonzero().flatten().tolist():
                result.reasons[p] = ZERO_EFFECT
        for p in no_gene.nonzero().flatten().tolist():  # before any other reason: no effect is seen on no gene
            result.reasons[p] = NO_GENE_LEFT
        return result


class DiscriminationL1(_Discrimination):
    """1 - normalised rank of the real effect of the same perturbation among all, by L1 distance."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="discrimination_score_l1", min_perturbations=2, bounds=FRACTION)
    metric: ClassVar[str] = "l1"


class DiscriminationL2(_Discrimination):
    """1 - normalised rank of the real effect of the same perturbation among all, by L2 distance."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="discrimination_score_l2", min_perturbations=2, bounds=FRACTION)
    metric: ClassVar[str] = "l2"


class DiscriminationCosine(_Discrimination):
    """1 - normalised rank of the real effect of the same perturbation among all, by cosine distance."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="discrimination_score_cosine", min_perturbations=2, bounds=FRACTION)
    metric: ClassVar[str] = "cosine"


def _realctrl(base: type[_Discrimination], metric: str) -> type[_Discrimination]:
    """``base`` with the predicted delta taken against the REAL controls."""

    def _init(self: _Discrimination, exclude: str = "atoms", control: str = "real", single_condition: str = "nan",
              ties: str = "midrank") -> None:
        _Discrimination.__init__(self, exclude, control, single_condition, ties)

    doc = f"{(base.__doc__ or '').splitlines()[0].rstrip('.')}; the predicted delta against the REAL controls."
    caps = MetricCapabilities(higher_is_better=True, min_perturbations=2, bounds=FRACTION)
    return type(f"Discrimination{metric.title()}RealControl", (base,),
                {"__doc__": doc, "capabilities": caps, "__init__": _init, "__module__": __name__})


DiscriminationL1RealControl = _realctrl(DiscriminationL1, "l1")
DiscriminationL2RealControl = _realctrl(DiscriminationL2, "l2")
DiscriminationCosineRealControl = _realctrl(DiscriminationCosine, "cosine")
