"""The plugin's warnings that name the first eight unseen atoms or contexts count the rest (``(and N more)``)."""

from __future__ import annotations

import pytest
import torch

from distgen.models.generator import build_model
from distgen.types import CellTable, ConditionLabels, DataInfo

FAST = {"name": "bayes_hier", "reduction": "genes", "steps": 150, "num_samples": 64, "learning_rate": 0.03}


def test_unseen_contexts_and_atoms_beyond_eight_are_counted(synthetic) -> None:
    from distgen.models.preflight import PreflightWarning

    table, _ = synthetic
    i = table.info
    extra = [f"new{k}" for k in range(10)]
    info = DataInfo(genes=i.genes, perturbations=(*i.perturbations, *extra), contexts=("ctx", *(f"u{k}" for k in range(10))),
                    batches=i.batches)
    model = build_model(FAST, info).fit(CellTable(table.X, table.labels, info))
    ctrl, mask = torch.rand(10, 4, i.n_genes) + 2, torch.ones(10, 4, dtype=torch.bool)
    with pytest.warns(PreflightWarning) as caught:
        model.predict(ctrl, mask, ConditionLabels.make([[0]] * 10, context=list(range(1, 11))))
    said = " ".join(str(w.message) for w in caught)
    assert "context(s) u0, u1, u2, u3, u4, u5, u6, u7 (and 2 more) had no training cells" in said
    n = len(i.perturbations)
    with pytest.warns(PreflightWarning) as caught:
        model.predict(ctrl, mask, ConditionLabels.make([[n + k] for k in range(10)]))
    said = " ".join(str(w.message) for w in caught)
    assert "bayes_hier.predict: new0, new1, new2, new3, new4, new5, new6, new7 (and 2 more) had no training population" in said
