"""Named metric sets: which metrics an evaluation computes, under which conventions, on which value scale.

| profile | reference it reproduces | scale | metrics |
|---|---|---|---|
| ``celleval2`` (alias ``default``) | cell-eval2 0.20.0 profile ``full`` (v2 conventions) | counts | 54 |
| ``vcc2026`` | cell-eval2's ``vcc2026`` preset (6 scored + 4 diagnostics) | counts | 10 |
| ``cell-eval-0.7.6`` | cell-eval2's ``cell-eval-0.7.6`` preset (upstream cell-eval 0.7.6 names) | log | 29 |
| ``cell-eval-0.8.2`` | Arc's cell-eval 0.8.2, profile ``full`` without clustering | log | 25 |
| ``distgen`` | cell-eval 0.8.2's set plus distgen's distributional metrics | log | 33 |

A profile maps each metric it reports to a registered distgen metric and its parameters;
``run_profile`` returns the table under the profile's own column names (``cell-eval-0.7.6``
reports upstream names such as ``discrimination_score_l1``; the others distgen's, which are
cell-eval2's canonical names for the cell-eval2 profiles). ``docs/metrics.md`` lists the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.suite import DEFAULT_METRICS, MetricTable, run_metrics

_EXPR = ("expr_mae", "pds_l1", "pds_l2", "pds_cosine", "delta_pearson", "expr_mse", "expr_mse_unbiased",
         "expr_mse_unbiased_capped", "expr_distance_unbiased", "expr_real_mass_ratio", "expr_mse_unbiased_capped_norm",
         "delta_mse", "delta_mae")
_OVERLAPS = tuple(f"de_wilcoxon_{k}{s}" for k in ("overlap", "precision") for s in ("", "_top50", "_top100", "_top200", "_top500"))
_DE = (*_OVERLAPS, "de_wilcoxon_nsig_counts_real", "de_wilcoxon_nsig_counts_pred", "de_wilcoxon_nsig_spearman",
       "de_wilcoxon_sig_recall", "de_wilcoxon_direction_match", "de_wilcoxon_model_direction_match", "de_wilcoxon_lfc_spearman",
       "de_wilcoxon_lfc_spearman_pos", "de_wilcoxon_lfc_spearman_neg", "de_wilcoxon_lfc_nmae", "de_wilcoxon_pr_auc",
       "de_wilcoxon_roc_auc", "de_wilcoxon_overlap_adjusted", "de_wilcoxon_precision_adjusted", "de_wilcoxon_sig_recall_adjusted",
       "de_wilcoxon_sig_mcc", "de_wilcoxon_direction_precision", "de_wilcoxon_direction_sensitivity",
       "de_wilcoxon_direction_sensitivity_universe", "de_wilcoxon_direction_fidelity", "de_wilcoxon_direction_fidelity_raw",
       "de_wilcoxon_direction_coverage", "de_wilcoxon_direction_yield", "de_wilcoxon_direction_yield_raw",
       "de_wilcoxon_direction_fidelity_yield", "de_wilcoxon_direction_fidelity_yield_raw", "de_wilcoxon_direction_reach",
       "de_wilcoxon_direction_reach_raw", "de_wilcoxon_direction_reach_unbounded", "de_wilcoxon_direction_reach_unbounded_raw",
       "de_wilcoxon_sig_jaccard")
#: cell-eval2's ``full`` profile, in its catalog order.
CELLEVAL2_FULL: tuple[str, ...] = (*_EXPR, *_DE)
#: cell-eval2's ``vcc2026`` preset.
VCC2026: tuple[str, ...] = (
    "pds_cosine", "expr_mse_unbiased", "expr_mse_unbiased_capped", "expr_distance_unbiased", "expr_real_mass_ratio",
    "expr_mse_unbiased_capped_norm", "de_wilcoxon_lfc_nmae", "de_wilcoxon_direction_fidelity_yield_raw",
    "de_wilcoxon_direction_reach_raw", "de_wilcoxon_sig_jaccard",
)  # fmt: skip
#: cell-eval-0.7.6 preset: upstream name -> distgen (cell-eval2 canonical) metric.
CELLEVAL076_NAMES: dict[str, str] = {
    "mae": "expr_mae", "discrimination_score_l1": "pds_l1", "discrimination_score_l2": "pds_l2",
    "discrimination_score_cosine": "pds_cosine", "pearson_delta": "delta_pearson", "mse": "expr_mse", "mse_delta": "delta_mse",
    "mae_delta": "delta_mae",
    **{f"{k}_at_{n}": f"de_wilcoxon_{k}{'' if n == 'N' else f'_top{n}'}" for k in ("overlap", "precision") for n in ("N", "50", "100", "200", "500")},
    "de_nsig_counts_real": "de_wilcoxon_nsig_counts_real", "de_nsig_counts_pred": "de_wilcoxon_nsig_counts_pred",
    "de_spearman_sig": "de_wilcoxon_nsig_spearman", "de_sig_genes_recall": "de_wilcoxon_sig_recall",
    "de_direction_match": "de_wilcoxon_direction_match", "de_model_direction_match": "de_wilcoxon_model_direction_match",
    "de_spearman_lfc_sig": "de_wilcoxon_lfc_spearman", "de_spearman_pos_lfc_sig": "de_wilcoxon_lfc_spearman_pos",
    "de_spearman_neg_lfc_sig": "de_wilcoxon_lfc_spearman_neg", "pr_auc": "de_wilcoxon_pr_auc", "roc_auc": "de_wilcoxon_roc_auc",
}  # fmt: skip
#: Arc's cell-eval 0.8.2 ``full`` profile (clustering excluded), under distgen's cell-eval-parity metrics.
CELLEVAL082: tuple[str, ...] = (
    "mse", "mae", "mse_delta", "mae_delta", "pearson_delta", "discrimination_score_l1", "discrimination_score_l2",
    "discrimination_score_cosine", "overlap_at_N", "overlap_at_50", "overlap_at_100", "overlap_at_200", "overlap_at_500",
    "precision_at_N", "precision_at_50", "precision_at_100", "precision_at_200", "precision_at_500", "de_direction_match",
    "de_spearman_lfc_sig", "de_sig_genes_recall", "de_spearman_sig", "roc_auc", "pr_auc", "pearson_edistance",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """``columns``: reported name -> registered metric; ``params``: per registered metric; ``scale``: ``counts`` or ``lognorm``.

    ``strict``: the reference's input rules for a file pair (``distgen.pipeline.profile_eval``): a
    truth perturbation without predicted cells is refused (as cell-eval2 and cell-eval 0.8.2 refuse
    it) and a perturbation with one cell on a side is scored (as both score it). Not strict (the
    ``distgen`` profile): such perturbations are NaN with the reason, as in the default evaluation.

    ``file_dtype``: a pair with a float64 ``X`` is read and scored in float64 (both sides), as the reference computes on
    such files (cell-eval 0.8.2: its L2/cosine distance rows are float64 there, and two distances within float32's
    resolution are not a tie; cell-eval2's ``cell-eval-0.7.6`` preset: its pseudobulks and Wilcoxon tests read the values
    as stored; its counts presets ``full`` and ``vcc2026`` too: they accept counts within 1e-6 of an integer and score the
    stored float64 values, whose dust float32 would round away); otherwise, and always for float32 files, the values are
    read as float32.
    """

    name: str
    columns: dict[str, str]
    scale: str
    reference: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    strict: bool = True
    file_dtype: bool = False


def _same(names: tuple[str, ...]) -> dict[str, str]:
    return {n: n for n in names}


#: The discrimination scores of each profile: a rank among the real effects, which a reference profile reports as its
#: reference does for a context with a single perturbation (1.0, ``single_condition="reference"``, noted as trivial).
DISCRIMINATION = {f"pds_{m}" for m in ("l1", "l2", "cosine")} | {f"discrimination_score_{m}" for m in ("l1", "l2", "cosine")}


def _preset(names: Any, preset: str) -> dict[str, dict[str, Any]]:
    return {n: {"preset": preset, **({"single_condition": "reference"} if n in DISCRIMINATION else {})} for n in names}


PROFILES: dict[str, Profile] = {
    "celleval2": Profile("celleval2", _same(CELLEVAL2_FULL), "counts", "cell-eval2 0.20.0, profile full (v2)",
                         _preset(CELLEVAL2_FULL, "v2"), file_dtype=True),
    "vcc2026": Profile("vcc2026", _same(VCC2026), "counts", "cell-eval2 0.20.0, preset vcc2026", _preset(VCC2026, "vcc2026"), file_dtype=True),
    "cell-eval-0.7.6": Profile("cell-eval-0.7.6", dict(CELLEVAL076_NAMES), "lognorm", "cell-eval2 0.20.0, preset cell-eval-0.7.6",
                               _preset(CELLEVAL076_NAMES.values(), "cell-eval-0.7.6"), file_dtype=True),
    "cell-eval-0.8.2": Profile("cell-eval-0.8.2", _same(CELLEVAL082), "lognorm", "cell-eval 0.8.2, profile full",
                               {f"discrimination_score_{m}": {"exclude": "label", "single_condition": "reference", "ties": "position"}
                                for m in ("l1", "l2", "cosine")}, file_dtype=True),
    "distgen": Profile("distgen", _same(DEFAULT_METRICS), "lognorm", "cell-eval 0.8.2 conventions plus distributional metrics",
                       strict=False),
}
ALIASES = {"default": "celleval2", "v2": "celleval2", "full": "celleval2"}


def reads_pred_controls(prof: Profile) -> bool:
    """Whether a metric of ``prof`` reads the prediction's control cells: False only when every metric takes cell-eval2
    settings whose ``control_source`` is ``"real"`` (``celleval2``, ``vcc2026``: every delta and DE test against the real
    controls; a metric's own ``control_source`` parameter overrides its preset's, as the metric reads it), or reads no
    control of the prediction at all (``reads_control_source = False``)."""
    from distgen.evaluation.metrics.base import metrics as registered
    from distgen.evaluation.metrics.celleval2_settings import settings_for

    for metric in dict.fromkeys(prof.columns.values()):
        if not getattr(registered.get(metric), "reads_control_source", True):
            continue
        params = prof.params.get(metric, {})
        if params.get("preset") is None or settings_for(params["preset"], params.get("control_source")).control_source != "real":
            return True
    return False


def resolve_profile(name: str) -> Profile:
    """The profile called ``name`` (or an alias: ``default``/``v2``/``full`` -> ``celleval2``)."""
    key = ALIASES.get(name, name)
    if key not in PROFILES:
        from distgen.wording import near

        meant = near(name, [*PROFILES, *ALIASES])
        raise ValueError(f"unknown metric profile {name!r}.{f' Did you mean {meant[0]!r}?' if meant else ''} "
                         f"Choose one of {sorted([*PROFILES, *ALIASES])}")
    return PROFILES[key]


def run_profile(data: EvalData, name: str, progress: bool = False) -> MetricTable:
    """Compute profile ``name`` on ``data``; the table's columns carry the profile's names.

    A counts profile on log-normalised data (or the reverse) is refused with the fix.
    """
    prof = resolve_profile(name)
    from distgen.errors import InputDataError  # the data's scale (exit 2); a ValueError, as it was
    from distgen.evaluation.metrics.celleval2_settings import looks_like_counts

    scale = data.cache.get("scale") or ("counts" if looks_like_counts(data.real.control) else "lognorm")
    if scale != prof.scale:
        if prof.scale == "counts":
            raise InputDataError(f"profile {prof.name!r} scores RAW COUNTS but the data are log-normalised: write predictions with "
                             "`distgen predict --counts` and evaluate against the raw-count truth (or pick a log profile such as "
                             "'cell-eval-0.8.2')")
        raise InputDataError(f"profile {prof.name!r} scores log-normalised data but the data are raw counts: normalise both files "
                         "(scanpy.pp.normalize_total + log1p) or pick a counts profile ('celleval2', 'vcc2026')")
    data.cache["scale"] = scale
    registered = list(dict.fromkeys(prof.columns.values()))
    table = run_metrics(data, registered, progress=progress, params=prof.params, say=_metric_lines(progress, data, prof.name))
    table.values = {col: table.values[m] for col, m in prof.columns.items()}
    table.reasons = {col: table.reasons[m] for col, m in prof.columns.items()}
    return table


def _metric_lines(progress: bool, data: EvalData, name: str) -> Any:
    """``say(what)`` for ``run_metrics``: a line on stderr per metric of a profile evaluation of at least
    ``suite.STAGE_LINES_MIN`` values (the default evaluation says its stages; a profile is one stage, minutes of metrics
    at genome-wide scale, and its bar shows nothing when stderr is not a terminal); None (silent) otherwise."""
    import sys
    import time

    from distgen.evaluation import suite

    size = sum(int(t.shape[0]) * int(t.shape[1]) for t in (data.real.X, data.real.control, data.pred.X, data.pred.control))
    if not progress or size < suite.STAGE_LINES_MIN:
        return None
    t0 = time.perf_counter()

    def say(what: str) -> None:
        print(f"scoring profile {name}: {what} ({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)

    return say
