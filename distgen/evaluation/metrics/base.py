"""Metric interface: per-perturbation numbers comparing predicted and real cells.

A metric sees every perturbation at once (``compute(data: EvalData) -> MetricResult``) so that
shared work (pseudobulk means, DE tables) is done once and cross-perturbation metrics
(discrimination score) are possible. ``metric(ev)`` on a single ``PerturbationEval`` is the
one-perturbation convenience used by losses, notebooks and the contract suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from distgen.capabilities import MetricCapabilities
from distgen.evaluation.evaldata import EvalData
from distgen.registry import Registry


@dataclass
class PerturbationEval:
    """The cells a metric sees for one perturbation.

    Attributes
    ----------
    pred, real
        ``[n_pred, G]`` generated and ``[n_real, G]`` observed perturbed cells.
    control_real, control_pred
        ``[n_c, G]`` observed control cells; ``control_pred`` is the control population of the
        prediction file (cell-eval's convention takes deltas against each file's own controls).
    name
        The perturbation's label; ``targets`` its target genes (excluded where the field does so).
    cache
        Per-perturbation results shared between metrics (means, DE tables).
    """

    pred: Tensor
    real: Tensor
    control_real: Tensor
    control_pred: Tensor
    name: str = ""
    targets: tuple[str, ...] = ()
    genes: tuple[str, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> EvalData:
        """The one-perturbation ``EvalData`` for this perturbation."""
        return EvalData.from_single(self.pred, self.real, self.control_pred, self.control_real, self.name or "pert",
                                    self.targets, self.genes)


@dataclass
class MetricResult:
    """``values [P]`` float64 (NaN where undefined) and, per NaN, the reason (``reasons[p]``)."""

    values: Tensor
    reasons: dict[int, str] = field(default_factory=dict)

    @staticmethod
    def from_values(values: Tensor, why_nan: str) -> MetricResult:
        """Wrap ``values``; every NaN gets the reason ``why_nan``."""
        values = values.to(torch.float64)
        nan = torch.isnan(values).nonzero().flatten().tolist()
        return MetricResult(values, dict.fromkeys(nan, why_nan))


class Metric(ABC):
    """``compute(data) -> MetricResult`` over all perturbations; ``higher_is_better`` orients scores.

    Capabilities (``MetricCapabilities``): ``higher_is_better``, ``celleval`` (the name cell-eval
    gives the same quantity, or None when it has none).
    """

    capabilities: MetricCapabilities = MetricCapabilities()

    @property
    def higher_is_better(self) -> bool:
        return self.capabilities.higher_is_better

    @abstractmethod
    def compute(self, data: EvalData) -> MetricResult:
        """Values for each of ``data.n_perts`` perturbations (NaN with a reason when undefined)."""

    def __call__(self, ev: PerturbationEval) -> float:
        """The metric for one perturbation (its predicted and real cells and their controls)."""
        return float(self.compute(ev.to_data()).values[0])


#: The metrics registry: built-ins here, plugins from entry points ``distgen.metrics``.
metrics: Registry[Metric] = Registry(
    "metrics",
    Metric,
    {
        "de_direction_match": "distgen.evaluation.metrics.de_metrics:DEDirectionMatch",
        "de_sig_genes_recall": "distgen.evaluation.metrics.de_metrics:DESigGenesRecall",
        "de_spearman_lfc_sig": "distgen.evaluation.metrics.de_metrics:DESpearmanLFC",
        "de_spearman_sig": "distgen.evaluation.metrics.de_metrics:DESpearmanSignificant",
        "discrimination_score_cosine": "distgen.evaluation.metrics.discrimination:DiscriminationCosine",
        "discrimination_score_l1": "distgen.evaluation.metrics.discrimination:DiscriminationL1",
        "discrimination_score_l2": "distgen.evaluation.metrics.discrimination:DiscriminationL2",
        "edistance": "distgen.evaluation.metrics.distributional:EDistance",
        "edistance_sq": "distgen.evaluation.metrics.distributional:EDistanceSquared",
        "mae": "distgen.evaluation.metrics.pseudobulk:MeanAbsoluteError",
        "mae_delta": "distgen.evaluation.metrics.pseudobulk:MeanAbsoluteErrorDelta",
        "mmd": "distgen.evaluation.metrics.distributional:MMD",
        "mse": "distgen.evaluation.metrics.pseudobulk:MeanSquaredError",
        "mse_delta": "distgen.evaluation.metrics.pseudobulk:MeanSquaredErrorDelta",
        "overlap_at_100": "distgen.evaluation.metrics.de_metrics:OverlapAt100",
        "overlap_at_200": "distgen.evaluation.metrics.de_metrics:OverlapAt200",
        "overlap_at_50": "distgen.evaluation.metrics.de_metrics:OverlapAt50",
        "overlap_at_500": "distgen.evaluation.metrics.de_metrics:OverlapAt500",
        "overlap_at_N": "distgen.evaluation.metrics.de_metrics:OverlapAtN",
        "pearson_delta": "distgen.evaluation.metrics.pseudobulk:PearsonDelta",
        "pearson_delta_realctrl": "distgen.evaluation.metrics.pseudobulk:PearsonDeltaRealControl",
        "pearson_edistance": "distgen.evaluation.metrics.distributional:PearsonEDistance",
        "pr_auc": "distgen.evaluation.metrics.de_metrics:DEPRAUC",
        "precision_at_100": "distgen.evaluation.metrics.de_metrics:PrecisionAt100",
        "precision_at_200": "distgen.evaluation.metrics.de_metrics:PrecisionAt200",
        "precision_at_50": "distgen.evaluation.metrics.de_metrics:PrecisionAt50",
        "precision_at_500": "distgen.evaluation.metrics.de_metrics:PrecisionAt500",
        "precision_at_N": "distgen.evaluation.metrics.de_metrics:PrecisionAtN",
        "r2": "distgen.evaluation.metrics.pseudobulk:RSquared",
        "r2_delta": "distgen.evaluation.metrics.pseudobulk:RSquaredDelta",
        "roc_auc": "distgen.evaluation.metrics.de_metrics:DEROCAUC",
        "sinkhorn": "distgen.evaluation.metrics.distributional:Sinkhorn",
        "w2": "distgen.evaluation.metrics.distributional:Wasserstein2",
    },
)
