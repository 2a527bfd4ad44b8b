"""Discrimination score (cell-eval's PDS): is a prediction closest to its own real effect?"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from distgen.capabilities import MetricCapabilities
from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.metrics.base import Metric, MetricResult

_BLOCK = 2**23
#: Why a discrimination score is NaN when fewer than two conditions are scored together.
FEWER_THAN_TWO = ("fewer than 2 conditions with a real effect in this context: the rank of the own effect among "
                  "one is always first, so the score would be 1.0 for any prediction")


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
        rows = max(1, _BLOCK // max(1, real.numel()))
        out = [((pred[i : i + rows, None] - real[None]).abs() * w[i : i + rows, None]).sum(-1) for i in range(0, pred.shape[0], rows)]
        return torch.cat(out)
    raise ValueError(f"discrimination metric must be 'l1', 'l2' or 'cosine', got {metric!r}")


class _Discrimination(Metric):
    metric: ClassVar[str] = "l1"

    def __init__(self, exclude: str = "atoms", control: str = "own") -> None:
        if exclude not in ("atoms", "label", "none"):
            raise ValueError(f"exclude must be 'atoms' (all target genes), 'label' (cell-eval) or 'none', got {exclude!r}")
        self.exclude = exclude
        self.control = control

    def compute(self, data: EvalData) -> MetricResult:
        real = data.delta("real")
        pred = data.delta("pred", self.control)
        keep = ~data.target_mask(self.exclude)
        d = effect_distances(pred, real, keep, self.metric)  # [P, P]
        own = d.diagonal()
        valid_q = torch.isfinite(real).all(-1)
        n_valid = int(valid_q.sum())
        if n_valid < 2:  # a rank among fewer than two real effects is always first: no information
            return MetricResult.from_values(torch.full((data.n_perts,), float("nan"), dtype=torch.float64), FEWER_THAN_TWO)
        rank = ((d < own[:, None]) & valid_q[None]).sum(-1).to(torch.float64)
        score = 1.0 - rank / n_valid
        score = torch.where(torch.isfinite(own), score, torch.full_like(score, float("nan")))
        return MetricResult.from_values(score, "predicted or real effect undefined (no cells or zero norm)")


class DiscriminationL1(_Discrimination):
    """1 - normalised rank of the real effect of the same perturbation among all, by L1 distance."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="discrimination_score_l1", min_perturbations=2)
    metric: ClassVar[str] = "l1"


class DiscriminationL2(_Discrimination):
    """1 - normalised rank of the real effect of the same perturbation among all, by L2 distance."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="discrimination_score_l2", min_perturbations=2)
    metric: ClassVar[str] = "l2"


class DiscriminationCosine(_Discrimination):
    """1 - normalised rank of the real effect of the same perturbation among all, by cosine distance."""

    capabilities = MetricCapabilities(higher_is_better=True, celleval="discrimination_score_cosine", min_perturbations=2)
    metric: ClassVar[str] = "cosine"


def _realctrl(base: type[_Discrimination], metric: str) -> type[_Discrimination]:
    """``base`` with the predicted delta taken against the REAL controls."""

    def _init(self: _Discrimination, exclude: str = "atoms", control: str = "real") -> None:
        _Discrimination.__init__(self, exclude, control)

    doc = f"{(base.__doc__ or '').splitlines()[0].rstrip('.')}; the predicted delta against the REAL controls."
    caps = MetricCapabilities(higher_is_better=True, min_perturbations=2)
    return type(f"Discrimination{metric.title()}RealControl", (base,),
                {"__doc__": doc, "capabilities": caps, "__init__": _init, "__module__": __name__})


DiscriminationL1RealControl = _realctrl(DiscriminationL1, "l1")
DiscriminationL2RealControl = _realctrl(DiscriminationL2, "l2")
DiscriminationCosineRealControl = _realctrl(DiscriminationCosine, "cosine")
