"""Prior hyper-parameters from a config mapping (importable without JAX)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Priors:
    """Prior scales, in standardised coordinates (population means have unit spread per axis).

    See ``distgen_bayes.hierarchical`` for where each enters the model.
    """

    context_scale: float = 3.0
    effect_scale: float = 1.0
    interaction_scale: float = 0.5
    context_interaction_scale: float = 0.5
    replicate_scale: float = 0.5
    loading_scale: float = 0.5
    response_loading_scale: float = 0.3
    local_dof: float = 3.0


def make_priors(overrides: dict[str, Any] | None) -> Priors:
    """``Priors`` with ``overrides`` applied; unknown keys and non-positive values are errors."""
    overrides = dict(overrides or {})
    names = [f.name for f in fields(Priors)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"bayes_hier.priors: unknown key(s) {unknown}; valid keys: {names}")
    for k, v in overrides.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"bayes_hier.priors.{k}: expected a positive number, got {v!r}")
    return Priors(**{k: float(v) for k, v in overrides.items()})
