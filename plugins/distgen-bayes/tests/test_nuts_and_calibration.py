"""NUTS as the alternative inference, and calibration of held-out replicate means."""

from __future__ import annotations

import pytest
import torch
from bayes_fixtures import population_table

from distgen.models.generator import build_model
from distgen.types import ConditionLabels
from distgen_bayes.calibration import held_out_coverage, leave_one_replicate_out


@pytest.mark.slow
def test_nuts_reports_rhat_ess_and_predicts() -> None:
    table, truth = population_table(n_batches=3, cells=20, seed=1)
    node = {"name": "bayes_hier", "inference": "nuts", "num_warmup": 60, "num_samples": 60, "num_chains": 2, "seed": 3}
    model = build_model(node, table.info).fit(table)
    d = model.diagnostics
    assert d["method"] == "nuts" and d["num_chains"] == 2
    assert 1.0 <= d["r_hat_max"] < 1.5 and d["ess_min"] > 5
    assert "delta" in d["per_site"] or "z_delta" in d["per_site"]
    est = model.posterior_intervals(ConditionLabels.make([[0], [2, 3]]))["mean"]
    true = torch.stack([truth.shift((0,)), truth.shift((2, 3))]).float()
    assert (est - true).abs().mean() < 0.3


def test_held_out_replicate_means_are_covered(synthetic) -> None:
    table, _ = synthetic
    test = table.labels.batch == 3
    model = build_model({"name": "bayes_hier", "reduction": "genes", "steps": 600, "num_samples": 200, "learning_rate": 0.03},
                        table.info).fit(table.subset(torch.nonzero(~test).squeeze(1)))
    res = held_out_coverage(model, table.subset(torch.nonzero(test).squeeze(1)), level=0.9)
    assert res["n_populations"] == 7
    assert res["coverage"] > 0.75
    assert res["abs_error"] < res["width"] / 2


@pytest.mark.slow
def test_calibration_on_the_synthetic_generator() -> None:
    """90% intervals of held-out replicate means cover roughly 90% (data issue's generator)."""
    from distgen.data import PerturbationData, PerturbationSchema
    from distgen.data.synthetic import populations_dataset

    adata, _ = populations_dataset(n_genes=15, n_atoms=3, n_combos=1, n_populations=6, cells_per_group=40, seed=2)
    data = PerturbationData.from_anndata(adata, PerturbationSchema(context_cols=("cell_type",), batch_col="population", scale="counts"))
    node = {"name": "bayes_hier", "reduction": "genes", "steps": 1000, "num_samples": 300}
    res = leave_one_replicate_out(lambda: build_model(node, data.info), data.table, level=0.9)
    assert 0.75 < res["coverage"] < 0.99, res["coverage"]
