"""The conventions of cell-eval2's presets (``v2``, ``vcc2026``, ``cell-eval-0.7.6``) as one small frozen object.

Values are those of cell-eval2 0.20.0's ``configs/*.yaml``. ``vcc2026`` differs from ``v2`` only in
its metric set and cache strictness, so both share ``V2``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from distgen.evaluation.evaldata import EvalData

#: ``EvalData.cache`` key set by ``--no-target-genes`` (cell-eval2's flag): no gene is any perturbation's target
NO_TARGET_GENES = "no_target_genes"


@dataclass(frozen=True)
class Settings:
    """One preset's conventions (names follow cell-eval2's config keys)."""

    name: str
    version: str  # "v1" (upstream names, within-file controls) or "v2"
    control_source: str  # "real": predicted deltas and DE against the REAL controls; "pred": each file's own
    input_type: str  # what the preset expects: "counts" or "lognorm"
    target_sum: float | None
    bulk_target_sum: float
    min_cpm: float | None  # filter_gene_min_cpm_cell
    distance: str
    rank_denominator: str  # "n" or "n-1"
    tie_policy: str  # "midrank" or "position"
    exclude_target_gene: bool
    exclusion_scope: str  # "panel" or "row"
    p_adj_threshold: float
    nan_lfc_policy: str  # "mask" or "keep"
    mean_calc: str  # "arithmetic" or "geometric"
    epsilon: float
    clip_value: float | None
    fdr_scope: str  # "per_pert" or "global"
    auc_pval_floor: str  # "min_nonzero", "clip", "replace_zero"
    auc_pval_floor_value: float
    min_gate_size: int = 10

    def is_counts(self, data: Any) -> bool:
        """Whether ``data`` holds raw counts (``data.cache["scale"] == "counts"``, else inferred from the values)."""
        scale = data.cache.get("scale")
        if scale is None:
            scale = "counts" if looks_like_counts(data.real.control) and looks_like_counts(data.pred.control) else "lognorm"
            data.cache["scale"] = scale
        return scale == "counts"

    def comparator(self, data: Any) -> str:
        """``bulk_lognorm`` for a v2 run on counts, else ``lognorm`` (cell-eval2's ``resolve_comparator``)."""
        return "bulk_lognorm" if self.version == "v2" and self.is_counts(data) else "lognorm"


def looks_like_counts(x: torch.Tensor) -> bool:
    """Non-negative whole numbers with at least one value above 1 (a log1p matrix has fractions)."""
    sample = x[: min(x.shape[0], 2000)].to(torch.float64)
    head = sample[:50][torch.isfinite(sample[:50])]
    if head.numel() and not bool((head == head.round()).all()):  # a fraction early on settles it (log data)
        return False
    finite = sample[torch.isfinite(sample)]
    if finite.numel() == 0:
        return False
    return bool((finite >= 0).all()) and bool((finite == finite.round()).all()) and float(finite.max()) > 1


V2 = Settings(
    name="v2", version="v2", control_source="real", input_type="counts", target_sum=1e6, bulk_target_sum=5e4, min_cpm=5.0,
    distance="cosine", rank_denominator="n-1", tie_policy="midrank", exclude_target_gene=True, exclusion_scope="panel",
    p_adj_threshold=0.05, nan_lfc_policy="mask", mean_calc="arithmetic", epsilon=1e-9, clip_value=None, fdr_scope="per_pert",
    auc_pval_floor="min_nonzero", auc_pval_floor_value=1e-10,
)
CELL_EVAL_076 = Settings(
    name="cell-eval-0.7.6", version="v1", control_source="pred", input_type="lognorm", target_sum=1e4, bulk_target_sum=5e4,
    min_cpm=5.0, distance="l1", rank_denominator="n", tie_policy="position", exclude_target_gene=True, exclusion_scope="row",
    p_adj_threshold=0.05, nan_lfc_policy="keep", mean_calc="geometric", epsilon=1e-9, clip_value=None, fdr_scope="per_pert",
    auc_pval_floor="clip", auc_pval_floor_value=1e-10,
)
PRESETS: dict[str, Settings] = {"v2": V2, "vcc2026": V2, "celleval2": V2, "cell-eval-0.7.6": CELL_EVAL_076}


def settings_for(preset: str, control_source: str | None = None) -> Settings:
    """The settings of a preset name (``v2``/``celleval2``, ``vcc2026``, ``cell-eval-0.7.6``).

    ``control_source`` overrides the preset's (``"pred"``: each side against its own controls, as
    cell-eval2's split-half replicate scores one real half against the other).
    """
    if preset not in PRESETS:
        from distgen.wording import near

        meant = near(preset, PRESETS)
        raise ValueError(f"unknown cell-eval2 preset {preset!r}.{f' Did you mean {meant[0]!r}?' if meant else ''} "
                         f"Choose one of {sorted(PRESETS)}")
    s = PRESETS[preset]
    if control_source is not None:
        if control_source not in ("real", "pred"):
            raise ValueError(f"control_source must be 'real' or 'pred', got {control_source!r}")
        s = replace(s, control_source=control_source)
    return s


def check_control_source_read(metric: Any, control_source: str | None) -> None:
    """An ``InertSettingWarning`` where ``control_source`` is given to a metric that reads no control of the prediction
    (``reads_control_source = False``: the expression errors, the real side's DE counts): an ablation over it changed
    nothing, silently (ablation-settings round, 2026-12-07)."""
    if control_source is None or getattr(metric, "reads_control_source", True):
        return
    from distgen.config import InertSettingWarning
    from distgen.errors import warn

    warn(f"metric {type(metric).__name__}: control_source={control_source!r} has no effect: it compares no effect against a "
         "control of the prediction (only profiles, or only the real cells); remove control_source, or use a delta metric "
         "(delta_mse, pds_*, de_wilcoxon_*) to ablate it", InertSettingWarning)


def own_gene_columns(data: EvalData) -> torch.Tensor:
    """``[P]`` column of the gene named like each perturbation label, ``-1`` where none is (cell-eval2's rule; computed once).

    Every metric that leaves a perturbation's own gene out reads it here; under ``NO_TARGET_GENES`` none is.
    """

    def columns() -> torch.Tensor:
        index = {} if data.cache.get(NO_TARGET_GENES) else {g: i for i, g in enumerate(data.genes)}
        return torch.tensor([index.get(p, -1) for p in data.perts], dtype=torch.long)

    return data.cached("ce2/own_gene_columns", columns)  # type: ignore[no-any-return]
