"""Baselines that coincide: two references with the same predictions for every evaluated condition are one baseline.

For a drug, a cytokine or an infection (no target gene among the measured genes) the ``linear``
baseline falls back to the mean effect, i.e. ``mean_perturbation``; for atoms never seen alone in
training ``additive`` adds nothing, i.e. ``control``. ``distinct_references`` keeps the first name
of each set of coinciding references (so the strongest-baseline pick is made over distinct ones) and
says which names were folded into it, and why where the cause is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from distgen.types import Cells

#: Why two built-in baselines coincide, where the cause is known (alias, kept) -> reason.
KNOWN_CAUSES = {
    ("linear", "mean_perturbation"): "no target gene among the measured genes (a drug, a cytokine, an infection, or unmeasured "
                                     "targets): linear falls back to the mean effect",
    ("additive", "control"): "no atom of the evaluated conditions was seen alone in training: additive adds no effect",
    ("additive", "mean_perturbation"): "the evaluated atoms carry the mean training effect (e.g. one training perturbation)",
}
GENERIC = "identical predictions for every evaluated condition"


#: Values compared at a time by ``same_predictions`` (its float64 working set: a few times 8 bytes each).
COMPARE_BLOCK_VALUES = 1 << 22


def same_predictions(a: Cells, b: Cells, atol: float = 1e-6) -> bool:
    """Do ``a`` and ``b`` predict the same cells for every group (same labels, values within ``atol``)?

    Compared by blocks of rows (``Cells.block``: a view, or rows of an ``IndexedCells`` gathered block by block), so two
    tables are never widened to float64 whole; every value is compared as the whole-table expression compared it.
    """
    if len(a) != len(b) or a.genes != b.genes:
        return False
    if not (np.array_equal(a.conditions, b.conditions) and np.array_equal(a.contexts, b.contexts)):
        return False
    step = max(1, COMPARE_BLOCK_VALUES // max(1, len(a.genes)))
    for start in range(0, len(a), step):
        x, y = a.block(start, start + step).X.to(torch.float64), b.block(start, start + step).X.to(torch.float64)
        both_nan = torch.isnan(x) & torch.isnan(y)
        if not bool(((x - y).abs() <= atol + 1e-5 * y.abs()).logical_or(both_nan).all()):
            return False
    return True


def distinct_references(references: Mapping[str, Cells]) -> tuple[dict[str, Cells], dict[str, dict[str, Any]]]:
    """``(distinct, aliases)``: the first reference of each coinciding set, and ``{alias: {same_as, reason}}``."""
    kept: dict[str, Cells] = {}
    aliases: dict[str, dict[str, Any]] = {}
    for name, cells in references.items():
        twin = next((k for k, v in kept.items() if same_predictions(cells, v)), None)
        if twin is None:
            kept[name] = cells
        else:
            aliases[name] = {"same_as": twin, "reason": KNOWN_CAUSES.get((name, twin), GENERIC)}
    return kept, aliases


def alias_notes(aliases: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One note per alias: ``"linear = mean_perturbation: <reason>; shown once"``."""
    return [f"baseline {a} = {v['same_as']}: {v['reason']}; shown once, as {v['same_as']}" for a, v in aliases.items()]


__all__ = ["KNOWN_CAUSES", "alias_notes", "distinct_references", "same_predictions"]
