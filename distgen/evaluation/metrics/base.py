"""Metric interface: per-perturbation numbers comparing predicted and real cells.

A metric sees every perturbation at once (``compute(data: EvalData) -> MetricResult``) so that
shared work (pseudobulk means, DE tables) is done once and cross-perturbation metrics
(discrimination score) are possible. ``metric(ev)`` on a single ``PerturbationEval`` is the
one-perturbation convenience used by losses, notebooks and the contract suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

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


def result_problem(res: Any, n_perts: int) -> str | None:
    """What is wrong with ``res`` as the result of ``compute`` on ``n_perts`` perturbations (None: nothing).

    ``compute`` returns a ``MetricResult`` whose ``values`` is a float tensor ``[P]``: one value per perturbation, in
    the order of ``data.perts`` (a statistic over all perturbations repeats its value, ``per_perturbation=False``).
    """
    if not isinstance(res, MetricResult):
        return (f"compute returned {type(res).__name__}, expected a MetricResult: wrap the [P] values, "
                "MetricResult.from_values(values, 'why a value is NaN')")
    v = res.values
    if not isinstance(v, Tensor):
        return f"compute returned MetricResult.values of type {type(v).__name__}, expected a float tensor [P]"
    if tuple(v.shape) != (n_perts,):
        return (f"compute returned values of shape {tuple(v.shape)} for {n_perts} perturbation(s), expected ({n_perts},): one value "
                "per perturbation of data.perts, NaN with a reason where undefined (a statistic over all perturbations "
                "repeats its value and declares per_perturbation=False)")
    if not v.is_floating_point():
        return f"compute returned values of dtype {v.dtype}, expected float64 (MetricResult.from_values converts)"
    return None


class Metric(ABC):
    """``compute(data) -> MetricResult`` over all perturbations; ``higher_is_better`` orients scores.

    Capabilities (``MetricCapabilities``): ``higher_is_better``, ``celleval`` (the name cell-eval
    gives the same quantity, or None when it has none).
    """

    capabilities: MetricCapabilities = MetricCapabilities()
    #: The ``distgen.testing.fixtures`` data the contract suite scores this metric on (``tiny_eval``,
    #: or ``tiny_eval_de`` for metrics that need many DE genes in raw counts).
    example_data: ClassVar[str] = "tiny_eval"

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
        "de_wilcoxon_direction_coverage": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionCoverage",
        "de_wilcoxon_direction_fidelity": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionFidelity",
        "de_wilcoxon_direction_fidelity_raw": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionFidelityRaw",
        "de_wilcoxon_direction_fidelity_yield": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionFidelityYield",
        "de_wilcoxon_direction_fidelity_yield_raw": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionFidelityYieldRaw",
        "de_wilcoxon_direction_match": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonDirectionMatch",
        "de_wilcoxon_direction_precision": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionPrecision",
        "de_wilcoxon_direction_reach": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionReach",
        "de_wilcoxon_direction_reach_raw": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionReachRaw",
        "de_wilcoxon_direction_reach_unbounded": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionReachUnbounded",
        "de_wilcoxon_direction_reach_unbounded_raw": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionReachUnboundedRaw",
        "de_wilcoxon_direction_sensitivity": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionSensitivity",
        "de_wilcoxon_direction_sensitivity_universe": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionSensitivityUniverse",
        "de_wilcoxon_direction_yield": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionYield",
        "de_wilcoxon_direction_yield_raw": "distgen.evaluation.metrics.celleval2_direction:DeWilcoxonDirectionYieldRaw",
        "de_wilcoxon_lfc_nmae": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonLfcNmae",
        "de_wilcoxon_lfc_spearman": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonLfcSpearman",
        "de_wilcoxon_lfc_spearman_neg": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonLfcSpearmanNeg",
        "de_wilcoxon_lfc_spearman_pos": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonLfcSpearmanPos",
        "de_wilcoxon_model_direction_match": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonModelDirectionMatch",
        "de_wilcoxon_nsig_counts_pred": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonNsigCountsPred",
        "de_wilcoxon_nsig_counts_real": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonNsigCountsReal",
        "de_wilcoxon_nsig_spearman": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonNsigSpearman",
        "de_wilcoxon_overlap": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonOverlap",
        "de_wilcoxon_overlap_adjusted": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonOverlapAdjusted",
        "de_wilcoxon_overlap_top100": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonOverlapTop100",
        "de_wilcoxon_overlap_top200": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonOverlapTop200",
        "de_wilcoxon_overlap_top50": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonOverlapTop50",
        "de_wilcoxon_overlap_top500": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonOverlapTop500",
        "de_wilcoxon_pr_auc": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrAuc",
        "de_wilcoxon_precision": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrecision",
        "de_wilcoxon_precision_adjusted": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrecisionAdjusted",
        "de_wilcoxon_precision_top100": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrecisionTop100",
        "de_wilcoxon_precision_top200": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrecisionTop200",
        "de_wilcoxon_precision_top50": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrecisionTop50",
        "de_wilcoxon_precision_top500": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonPrecisionTop500",
        "de_wilcoxon_roc_auc": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonRocAuc",
        "de_wilcoxon_sig_jaccard": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonSigJaccard",
        "de_wilcoxon_sig_mcc": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonSigMcc",
        "de_wilcoxon_sig_recall": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonSigRecall",
        "de_wilcoxon_sig_recall_adjusted": "distgen.evaluation.metrics.celleval2_de:DeWilcoxonSigRecallAdjusted",
        "delta_mae": "distgen.evaluation.metrics.celleval2_expr:DeltaMAE",
        "delta_mse": "distgen.evaluation.metrics.celleval2_expr:DeltaMSE",
        "delta_pearson": "distgen.evaluation.metrics.celleval2_expr:DeltaPearson",
        "discrimination_score_cosine": "distgen.evaluation.metrics.discrimination:DiscriminationCosine",
        "discrimination_score_cosine_realctrl": "distgen.evaluation.metrics.discrimination:DiscriminationCosineRealControl",
        "discrimination_score_l1": "distgen.evaluation.metrics.discrimination:DiscriminationL1",
        "discrimination_score_l1_realctrl": "distgen.evaluation.metrics.discrimination:DiscriminationL1RealControl",
        "discrimination_score_l2": "distgen.evaluation.metrics.discrimination:DiscriminationL2",
        "discrimination_score_l2_realctrl": "distgen.evaluation.metrics.discrimination:DiscriminationL2RealControl",
        "edistance": "distgen.evaluation.metrics.distributional:EDistance",
        "edistance_scperturb": "distgen.evaluation.metrics.distributional:EDistanceScPerturb",
        "edistance_sq": "distgen.evaluation.metrics.distributional:EDistanceSquared",
        "expr_distance_unbiased": "distgen.evaluation.metrics.celleval2_expr:ExprDistanceUnbiased",
        "expr_mae": "distgen.evaluation.metrics.celleval2_expr:ExprMAE",
        "expr_mse": "distgen.evaluation.metrics.celleval2_expr:ExprMSE",
        "expr_mse_unbiased": "distgen.evaluation.metrics.celleval2_expr:ExprMSEUnbiased",
        "expr_mse_unbiased_capped": "distgen.evaluation.metrics.celleval2_expr:ExprMSEUnbiasedCapped",
        "expr_mse_unbiased_capped_norm": "distgen.evaluation.metrics.celleval2_expr:ExprMSEUnbiasedCappedNorm",
        "expr_real_mass_ratio": "distgen.evaluation.metrics.celleval2_expr:ExprRealMassRatio",
        "mae": "distgen.evaluation.metrics.pseudobulk:MeanAbsoluteError",
        "mae_delta": "distgen.evaluation.metrics.pseudobulk:MeanAbsoluteErrorDelta",
        "mae_delta_realctrl": "distgen.evaluation.metrics.pseudobulk:MeanAbsoluteErrorDeltaRealControl",
        "mmd": "distgen.evaluation.metrics.distributional:MMD",
        "mse": "distgen.evaluation.metrics.pseudobulk:MeanSquaredError",
        "mse_delta": "distgen.evaluation.metrics.pseudobulk:MeanSquaredErrorDelta",
        "mse_delta_realctrl": "distgen.evaluation.metrics.pseudobulk:MeanSquaredErrorDeltaRealControl",
        "overlap_at_100": "distgen.evaluation.metrics.de_metrics:OverlapAt100",
        "overlap_at_200": "distgen.evaluation.metrics.de_metrics:OverlapAt200",
        "overlap_at_50": "distgen.evaluation.metrics.de_metrics:OverlapAt50",
        "overlap_at_500": "distgen.evaluation.metrics.de_metrics:OverlapAt500",
        "overlap_at_N": "distgen.evaluation.metrics.de_metrics:OverlapAtN",
        "pds_cosine": "distgen.evaluation.metrics.celleval2_expr:PDSCosine",
        "pds_l1": "distgen.evaluation.metrics.celleval2_expr:PDSL1",
        "pds_l2": "distgen.evaluation.metrics.celleval2_expr:PDSL2",
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
        "r2_delta_realctrl": "distgen.evaluation.metrics.pseudobulk:RSquaredDeltaRealControl",
        "roc_auc": "distgen.evaluation.metrics.de_metrics:DEROCAUC",
        "sinkhorn": "distgen.evaluation.metrics.distributional:Sinkhorn",
        "w2": "distgen.evaluation.metrics.distributional:Wasserstein2",
    },
)


def build_metric(name: str, params: Mapping[str, Any] | None = None, reg: Registry[Metric] | None = None) -> Metric:
    """Metric ``name`` of ``reg`` (default: ``metrics``) built with ``params`` (a profile's, or ``run_metrics``' caller's), or
    with its defaults: ``evaluate.metrics``, ``--metrics`` and ``train.val_metrics`` take names, not nodes, and a plugin's
    constructor is checked first (``defaults_problem``). Given values are passed as given: they are not a config's."""
    from distgen.config import ConfigError

    reg = metrics if reg is None else reg
    if not params and (problem := defaults_problem(name, reg)) is not None:
        raise ConfigError(problem)
    return reg.get(name)(**(params or {}))


def defaults_problem(name: str, reg: Registry[Metric] | None = None) -> str | None:
    """Why a plugin's metric ``name`` cannot be built with its defaults, None when it can or is a built-in (tested with the
    package): a required constructor parameter reached the evaluation as an internal ``TypeError`` after training, while
    its cheap checks only warned that they could not build it."""
    from distgen.config import ConfigError, validate_params

    reg = metrics if reg is None else reg
    if reg.plugin(name) is None:
        return None
    try:
        validate_params(reg.get(name), {}, f"metrics[{name}]", injected=frozenset())
    except ConfigError as err:
        return (f"metric {name!r} from plugin {reg.plugin(name)} is built with its defaults (evaluate.metrics, --metrics "
                f"and train.val_metrics take names, not nodes), which failed: {err} A metric cannot be given parameters "
                "there: give each of them a default (or register a subclass with them fixed).")
    return None


def metric_problem(name: object, where: str, verify: bool = True) -> str | None:
    """Why metric ``name`` cannot be used, as ``'WHERE: ...'`` (None: it can): the one wording of an unknown metric for
    ``evaluate.metrics``/``--metrics`` (``pipeline.checks.metric_problems``) and ``train.val_metrics``
    (``train.options.check_val_metrics``), with ``wording.did_you_mean``'s name (``wording.near``), the bare name of a ``val_``-prefixed one and,
    when nothing is near, how to install a plugin's metric; a plugin whose metric fails to load (or is provided twice)
    gets the registry's message, and with ``verify`` a plugin's metric its cheap checks (``Registry.verify``)."""
    import sys

    from distgen.registry import RegistryError, UnknownComponentError
    from distgen.wording import did_you_mean

    text = str(name)
    try:
        metrics.get(text)
    except UnknownComponentError:
        known = metrics.names()
        bare = text.removeprefix("val_")
        if bare != text and bare in known:  # val_mse: as train.monitor and metrics.csv name it, not the metric's name
            hint = f" Did you mean {bare!r}? (metrics are named without val_, which train.monitor and metrics.csv add)"
        elif close := did_you_mean(text, known):
            hint = close
        else:
            hint = f" If {text!r} comes from a plugin, install that package in this Python environment ({sys.executable})."
        return f"{where}: unknown metric {text!r}.{hint} 'distgen components --kind metrics' lists them"
    except RegistryError as exc:  # a plugin's metric that failed to load, or a name two plugins give: that message says why
        return f"{where}: {str(exc).strip()}"
    if (problem := defaults_problem(text)) is not None:
        return f"{where}: {problem}"
    if verify:
        try:  # a plugin's metric: its cheap checks (tiny data, seconds at most) before any training, not after it
            metrics.verify(text)
        except RegistryError as exc:  # the whole message: its fix comes last
            return f"{where}: {str(exc).strip()}"
    return None
