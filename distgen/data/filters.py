"""``data.filter``: keep or drop cells by their ``obs`` columns before the data are validated and split.

```yaml
data:
  filter:
    - {column: batch, drop: [b2]}                      # drop a batch
    - {column: assignment_confidence, min: 0.8}        # keep confidently assigned cells
    - {column: cell_type, keep: [CD14+ Monocytes, B cells]}
    - {query: "n_genes >= 200 and percent_mito < 10"}  # a pandas query over obs columns
```

Rules apply one after the other (a cell must pass all of them). ``keep``/``drop`` compare values as
text (``1`` matches ``"1"``); ``min``/``max`` need a numeric column and are inclusive. A column that
does not exist, a value that occurs nowhere in its column (a typo), a rule that keeps no cells or
no control cells is an error naming it. What was kept is recorded in the run manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distgen.config import ConfigError

RULE_KEYS = ("column", "keep", "drop", "min", "max", "query")


def filter_rules(spec: Any) -> list[dict[str, Any]]:
    """The rules of a ``data.filter`` value (a mapping or a list of them), checked for shape only."""
    if spec is None:
        return []
    rules = [spec] if isinstance(spec, Mapping) else spec
    if isinstance(rules, str) or not isinstance(rules, Sequence):
        raise ConfigError(f"data.filter must be a rule {{column: ..., keep|drop|min|max: ...}} or a list of rules, got {spec!r}")
    out = []
    for i, rule in enumerate(rules):
        where = f"data.filter[{i}]"
        if not isinstance(rule, Mapping):
            raise ConfigError(f"{where} must be a mapping like {{column: batch, drop: [b2]}}, got {rule!r}")
        unknown = sorted(set(rule) - set(RULE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(RULE_KEYS)}")
        if "query" in rule:
            if set(rule) != {"query"} or not isinstance(rule["query"], str) or not rule["query"].strip():
                raise ConfigError(f"{where}: a query rule is {{query: \"<pandas expression over obs columns>\"}} alone, got {dict(rule)!r}")
        else:
            if not isinstance(rule.get("column"), str):
                raise ConfigError(f"{where}: needs column: <obs column name>, got {dict(rule)!r}")
            tests = [k for k in ("keep", "drop", "min", "max") if k in rule]
            if not tests:
                raise ConfigError(f"{where}: say what to keep: keep: [values], drop: [values], min: x and/or max: y")
            for k in ("keep", "drop"):
                if k in rule and isinstance(rule[k], str | int | float):  # one value
                    rule = {**rule, k: [rule[k]]}
                if k in rule and (isinstance(rule[k], str) or not isinstance(rule[k], Sequence) or not rule[k]):
                    raise ConfigError(f"{where}.{k} must be a non-empty list of values, got {rule[k]!r}")
            for k in ("min", "max"):
                if k in rule and (isinstance(rule[k], bool) or not isinstance(rule[k], int | float)):
                    raise ConfigError(f"{where}.{k} must be a number, got {rule[k]!r}")
        out.append(dict(rule))
    return out


def _mask(obs: pd.DataFrame, rule: Mapping[str, Any], where: str) -> np.ndarray:
    """``[N]`` bool: the cells that pass one rule."""
    if "query" in rule:
        try:
            kept = obs.query(rule["query"], engine="python")
        except Exception as e:  # pandas raises UndefinedVariableError, SyntaxError, TypeError...
            raise ConfigError(f"{where}: query {rule['query']!r} failed ({type(e).__name__}: {e}); obs columns: {list(obs.columns)}") from e
        return np.asarray(obs.index.isin(kept.index))
    col = rule["column"]
    if col not in obs.columns:
        raise ConfigError(f"{where}: obs column {col!r} not found; available columns: {list(obs.columns)}")
    values = obs[col]
    ok = np.ones(len(obs), dtype=bool)
    text = values.astype(str)
    for k in ("keep", "drop"):
        if k in rule:
            wanted = [str(v) for v in rule[k]]
            absent = sorted(set(wanted) - set(text.unique()))
            if absent:
                shown = sorted(text.unique().tolist())[:10]
                raise ConfigError(f"{where}.{k}: value(s) {absent} occur nowhere in obs column {col!r} (values: {shown}{' ...' if text.nunique() > 10 else ''})")
            hit = text.isin(wanted).to_numpy()
            ok &= hit if k == "keep" else ~hit
    if "min" in rule or "max" in rule:
        num = pd.to_numeric(values, errors="coerce")
        if num.isna().all():
            raise ConfigError(f"{where}: min/max need a numeric column; obs column {col!r} holds {values.dtype} values like {values.iloc[:3].tolist()}")
        num = num.to_numpy(dtype=float)
        if "min" in rule:
            ok &= num >= float(rule["min"])
        if "max" in rule:
            ok &= num <= float(rule["max"])
    return ok


def control_mask(obs: pd.DataFrame, schema: Any) -> np.ndarray | None:
    """``[N]`` bool: cells whose perturbation column(s) hold only control labels or blanks (None if a column is missing)."""
    from distgen.data.conditions import missing_mask

    cols = list(schema.perturbation_cols)
    if any(c not in obs.columns for c in cols):
        return None  # the schema check names the missing column
    controls = {str(c) for c in schema.control_labels}
    per_col = [obs[c].astype(str).isin(controls).to_numpy() | missing_mask(obs[c].to_numpy(dtype=object)) for c in cols]
    return np.logical_and.reduce(per_col) & ~np.logical_and.reduce([missing_mask(obs[c].to_numpy(dtype=object)) for c in cols])


def apply_filter(obs: pd.DataFrame, spec: Any, is_control: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``(keep [N] bool, record)``: the cells that pass every rule of ``spec``, and what was kept (for the manifest).

    ``is_control`` (``[N]`` bool, optional) lets a filter that removes every control cell fail here, by name.
    """
    rules = filter_rules(spec)
    keep = np.ones(len(obs), dtype=bool)
    steps = []
    for i, rule in enumerate(rules):
        keep &= _mask(obs, rule, f"data.filter[{i}]")
        steps.append({"rule": rule, "cells_left": int(keep.sum())})
        if not keep.any():
            raise ConfigError(f"data.filter[{i}] {rule!r} leaves no cells (of {len(obs)}); loosen it")
    if is_control is not None and rules and not (keep & is_control).any():
        raise ConfigError(f"data.filter removes every control cell ({int(is_control.sum())} before); the controls are what a "
                          "prediction starts from: keep them (e.g. exempt them from the rule, or filter perturbed cells only)")
    record = {"rules": rules, "cells_before": len(obs), "cells_kept": int(keep.sum()), "steps": steps}
    return keep, record


__all__ = ["RULE_KEYS", "apply_filter", "control_mask", "filter_rules"]
