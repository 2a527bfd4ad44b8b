"""Parsing perturbation labels (single, ``A+B``, GEARS ``A+ctrl``, parallel columns) into atoms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from distgen.data.schema import COMMON_CONTROL_LABELS, PerturbationSchema

CONTROL = "control"  #: canonical condition string of control cells


def _is_blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() in ("", "nan", "None")


def _check_delimiter(label: str, delim: str, genes: set[str]) -> None:
    """Raise when splitting ``label`` on ``delim`` would cut a gene name in pieces."""
    if label in genes:
        raise ValueError(
            f"combo_delimiter {delim!r} clashes with gene name {label!r} (condition {label!r} would be split into "
            f"{label.split(delim)}); choose another PerturbationSchema.combo_delimiter or rename the labels"
        )
    parts = label.split(delim)
    for i in range(len(parts) - 1):
        joined = delim.join(parts[i : i + 2])
        if joined in genes:
            raise ValueError(
                f"combo_delimiter {delim!r} clashes with gene name {joined!r} inside condition {label!r}; "
                "choose another PerturbationSchema.combo_delimiter or rename the labels"
            )


def parse_atoms(obs: pd.DataFrame, schema: PerturbationSchema, genes: Sequence[str]) -> list[tuple[str, ...]]:
    """Per cell, the sorted tuple of perturbation atoms (empty tuple = control)."""
    controls = set(schema.control_labels)
    delim = schema.combo_delimiter
    cols = schema.perturbation_cols
    clash_genes = {g for g in genes if delim in g} if schema.perturbation_type == "genetic" else set()
    raw = [obs[c].astype(object).to_numpy() for c in cols]
    cache: dict[tuple[Any, ...], tuple[str, ...]] = {}
    out: list[tuple[str, ...]] = []
    for values in zip(*raw):
        hit = cache.get(values)
        if hit is None:
            atoms: list[str] = []
            for v in values:
                if _is_blank(v) or str(v) in controls:
                    continue
                label = str(v)
                if len(cols) == 1:
                    if clash_genes and delim in label:
                        _check_delimiter(label, delim, clash_genes)
                    atoms += [a.strip() for a in label.split(delim) if a.strip() and a.strip() not in controls]
                else:
                    atoms.append(label.strip())
            hit = tuple(sorted(set(atoms)))
            cache[values] = hit
        out.append(hit)
    return out


def parse_doses(obs: pd.DataFrame, schema: PerturbationSchema, atoms: list[tuple[str, ...]]) -> list[tuple[float, ...]]:
    """Per cell, one dose per atom (1.0 without a dose column); ``"d1+d2"`` gives per-atom doses."""
    if schema.dose_col is None:
        return [tuple(1.0 for _ in a) for a in atoms]
    out: list[tuple[float, ...]] = []
    for a, v in zip(atoms, obs[schema.dose_col].astype(object).to_numpy()):
        if not a:
            out.append(())
            continue
        parts = [p for p in str(v).split(schema.combo_delimiter) if p.strip()] if not _is_blank(v) else []
        try:
            vals = [float(p) for p in parts]
        except ValueError as e:
            raise ValueError(f"dose_col {schema.dose_col!r}: cannot read dose {v!r} as a number or 'd1{schema.combo_delimiter}d2'") from e
        if len(vals) == 1:
            vals = vals * len(a)
        if len(vals) != len(a):
            raise ValueError(f"dose_col {schema.dose_col!r}: dose {v!r} has {len(vals)} values for the {len(a)} atoms {a}")
        out.append(tuple(vals))
    return out


def condition_string(atoms: tuple[str, ...], delimiter: str = "+") -> str:
    """Canonical condition label: sorted atoms joined by ``delimiter``; ``"control"`` for none."""
    return delimiter.join(atoms) if atoms else CONTROL


def missing_control_message(obs: pd.DataFrame, schema: PerturbationSchema) -> str:
    """Error text for data without any cell carrying one of the control labels."""
    values = pd.unique(pd.concat([obs[c].astype(str) for c in schema.perturbation_cols]))
    lower = {str(v).lower(): str(v) for v in values}
    guesses = [lower[c.lower()] for c in COMMON_CONTROL_LABELS if c.lower() in lower]
    hint = f" Values that look like controls: {guesses}." if guesses else ""
    return (
        f"no control cells: none of control_labels={list(schema.control_labels)} occurs in column(s) "
        f"{list(schema.perturbation_cols)} (first values: {[str(v) for v in values[:8]]}).{hint} "
        "Set PerturbationSchema.control_labels to the label of your control cells"
    )
