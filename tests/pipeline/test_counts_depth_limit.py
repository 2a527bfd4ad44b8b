"""``evaluate: {counts: MODEL}`` on data whose cells pass the counts profiles' limit (1,000,000 counts a cell, as cell-eval2
refuses past it): said before the model is trained, not found by ``distgen evaluate --profile vcc2026`` on the files the
run wrote after it."""

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from distgen.errors import DistgenWarning
from distgen.pipeline import experiment

GENES = [f"G{i}" for i in range(12)]


def _raw(path, big):
    """Raw counts: 60 control cells, 20 of each of P1-P3; one cell of P2 (held out) holds ``big`` more counts of G0."""
    rng = np.random.default_rng(0)
    labels = ["control"] * 60 + [p for p in ("P1", "P2", "P3") for _ in range(20)]
    x = rng.poisson(50.0, (len(labels), len(GENES))).astype(np.float32)
    x[labels.index("P2"), 0] += big
    a = ad.AnnData(X=x, obs=pd.DataFrame({"condition": labels}, index=[f"c{i}" for i in range(len(labels))]),
                   var=pd.DataFrame(index=GENES))
    a.write_h5ad(path)
    return str(path)


def _config(data):
    return {"model": {"name": "generator", "conditioner": {"name": "onehot", "dim": 4}, "backbone": {"name": "mlp", "hidden": 8, "depth": 1},
                      "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}},
            "data": {"dataset": data, "schema": {"perturbation_type": "chemical"}, "split": {"kind": "random_conditions", "seed": 0, "test_conditions": ["P2"]}, "set_size": 4},
            "train": {"steps": 2, "sets_per_batch": 2, "progress": False}, "preflight": {"allow_unembedded": True},
            "evaluate": {"counts": "round", "metrics": ["mse"], "plots": False, "ceiling": False, "baselines": []}}


class _Trained(Exception):
    pass


def _no_training(*args, **kwargs):
    raise _Trained


@pytest.mark.parametrize(("big", "said"), [(2_000_000, True), (100_000, False)])
def test_a_cell_past_a_million_counts_is_said_before_training(tmp_path, monkeypatch, recwarn, big, said):
    """A held-out cell of 2,000,000 counts: the run trained, wrote ``real_counts.h5ad`` holding it, and only then did
    ``distgen evaluate --profile vcc2026`` (or cell-eval2) refuse the pair. Now a warning names it before training
    (training is stopped here by a stand-in that raises: the warning came first)."""
    monkeypatch.setattr(experiment, "train_model", _no_training)
    with pytest.raises(_Trained):
        experiment.run(_config(_raw(tmp_path / "raw.h5ad", big)), tmp_path / "out", progress=False)
    words = [" ".join(str(w.message).split()) for w in recwarn if issubclass(w.category, DistgenWarning)]
    hit = [w for w in words if "1,000,000" in w]
    assert bool(hit) == said, words
    if said:
        assert "evaluate.counts" in hit[0] and "1 cell of the held-out cells" in hit[0] and re.search(r"the largest 2,00\d,\d{3}\)", hit[0]) and "vcc2026" in hit[0], hit
