"""A ``data.set_size`` below what the model's loss needs is refused before training, naming the fix."""

import warnings

import pytest
import torch
import yaml

from distgen.cli import main
from distgen.config import ConfigError, InertSettingWarning
from distgen.models.generator import build_model
from distgen.train import fit

from .conftest import MODEL
from .test_run_cli import CONFIG

RUN = {"steps": 2, "sets_per_batch": 2, "progress": False, "log_every": 1}


def _model(table, unbiased=True, weight=0.5, **more):
    torch.manual_seed(0)
    node = {**MODEL, "distribution_loss": {"name": "kme", "kernel": {"name": "rbf"}, "unbiased": unbiased},
            "distribution_weight": weight, **more}
    return build_model(node, table.info)


def test_unbiased_mmd_with_one_cell_per_set_is_refused_before_any_step(table):
    model = _model(table)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as err:
        fit(model, table, set_size=1, **RUN)
    msg = str(err.value)
    assert "data.set_size=1" in msg and "2" in msg and "unbiased: false" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no step was taken


@pytest.mark.parametrize(("unbiased", "weight", "set_size"), [(False, 0.5, 1), (True, 0.0, 1), (True, 0.5, 2)])
def test_sizes_the_loss_is_defined_for_still_train(table, unbiased, weight, set_size):
    result = fit(_model(table, unbiased, weight), table, set_size=set_size, **RUN)
    assert result is not None and len(result.losses) == RUN["steps"]


def test_a_coupling_with_one_cell_per_set_warns_it_pairs_nothing(table):
    model = _model(table, unbiased=False, coupling={"name": "exact_ot"})
    with pytest.warns(InertSettingWarning, match="coupling"):
        fit(model, table, set_size=1, **RUN)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSettingWarning)
        fit(_model(table, unbiased=False, coupling={"name": "exact_ot"}), table, set_size=2, **RUN)


def test_distgen_train_refuses_it_with_exit_2_and_writes_nothing(tmp_path, capsys):
    doc = {**CONFIG, "model": {**CONFIG["model"], "distribution_loss": {"name": "kme", "kernel": {"name": "rbf"}, "unbiased": True},
                               "distribution_weight": 0.5},
           "data": {**CONFIG["data"], "set_size": 1}}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "data.set_size=1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_conditions_with_fewer_cells_than_the_loss_needs_are_refused_before_any_step():
    """One cell per condition with the unbiased MMD: before, training stopped at the first set of such a condition
    (ValueError "use bigger sets", which cannot help); now refused up front, naming the conditions and the fixes."""
    from distgen.testing.fixtures import tiny_table

    one = tiny_table(n_per_condition=1)
    model = _model(one)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as err:
        fit(model, one, set_size=4, **RUN)
    msg = str(err.value)
    assert "4 training condition(s) have fewer than 2 cells" in msg and "G0+G1 @ ctxA (1 cell)" in msg
    assert "data.replacement: true" in msg and "unbiased: false" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # each fix trains: sets drawn with replacement (data.replacement, which fit on a CellTable ignored before), the biased MMD
    assert len(fit(_model(one), one, set_size=4, config={"data": {"replacement": True}}, **RUN).losses) == RUN["steps"]
    assert len(fit(_model(one, unbiased=False), one, set_size=4, **RUN).losses) == RUN["steps"]


def test_distgen_train_refuses_one_cell_conditions_with_exit_2_and_writes_nothing(tmp_path, capsys):
    import anndata as ad
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = ["ctrl"] * 12 + [c for c in ("G1", "G2", "G3", "G1_G2") for _ in range(6)] + ["G3_G4"] + ["G4"] * 6
    x = np.log1p(rng.poisson(4.0, (len(rows), 12)).astype(np.float32))
    ad.AnnData(X=x, obs=pd.DataFrame({"condition": rows}, index=[f"c{i}" for i in range(len(rows))]),
               var=pd.DataFrame(index=[f"G{i}" for i in range(12)])).write_h5ad(tmp_path / "d.h5ad")
    doc = {**CONFIG, "model": {**CONFIG["model"], "distribution_loss": {"name": "kme", "kernel": {"name": "rbf"}}, "distribution_weight": 0.5},
           "data": {"dataset": str(tmp_path / "d.h5ad"), "set_size": 4,
                    "schema": {"perturbation_col": "condition", "control_labels": ["ctrl"], "combo_delimiter": "_", "min_cells": 1},
                    "split": {"kind": "random_conditions", "test_conditions": ["G1_G2"], "val_frac": 0.0}},
           "train": {**CONFIG["train"], "val_every": 0}}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "G3+G4 @ " in err and "(1 cell)" in err and "data.replacement: true" in err
    assert not (tmp_path / "run").exists()


def test_distgen_train_warns_once_about_a_coupling_that_pairs_nothing(tmp_path, recwarn):
    """``distgen train`` checks the set size before writing anything and ``fit`` no more: the warning came twice."""
    doc = {**CONFIG, "model": {**CONFIG["model"], "coupling": {"name": "exact_ot"}},
           "data": {**CONFIG["data"], "set_size": 1}, "train": {**CONFIG["train"], "steps": 1, "val_every": 0}}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    coupling = [w for w in recwarn if issubclass(w.category, InertSettingWarning) and "model.coupling" in str(w.message)]
    assert len(coupling) == 1, [str(w.message) for w in coupling]


def test_small_conditions_whose_context_holds_a_comma_are_named_whole():
    """The refusal names each small condition with its own cell count: a context ``ctx, A`` stays one name (it was cut at
    its comma and each piece paired with the next condition's count: ``G0 @ ctx (1 cell), A (1 cell)``)."""
    import dataclasses

    from distgen.testing.fixtures import tiny_table
    from distgen.types import CellTable

    one = tiny_table(n_per_condition=1)
    one = CellTable(one.X, one.labels, dataclasses.replace(one.info, contexts=["ctx, A"]))
    with pytest.raises(ConfigError) as err:
        fit(_model(one), one, set_size=4, **RUN)
    msg = str(err.value)
    assert "G0 @ ctx, A (1 cell), G0+G1 @ ctx, A (1 cell), G1 @ ctx, A (1 cell), G2 @ ctx, A (1 cell)." in msg, msg


def test_more_small_conditions_than_named_are_counted():
    """Eight small conditions (four in each of two contexts): four are named, the other four counted, and the count is of
    the conditions, not of the names shown."""
    import dataclasses

    from distgen.testing.fixtures import tiny_table
    from distgen.types import CellTable

    two = tiny_table(n_per_condition=2)
    labels = dataclasses.replace(two.labels, context=torch.arange(len(two.labels)) % 2)  # one cell of each in each context
    table = CellTable(two.X, labels, dataclasses.replace(two.info, contexts=["ctx, A", "B"]))
    with pytest.raises(ConfigError) as err:
        fit(_model(table), table, set_size=4, **RUN)
    msg = str(err.value)
    assert msg.startswith("8 training condition(s) have fewer than 2 cells"), msg
    assert "G0 @ ctx, A (1 cell), G0 @ B (1 cell), G0+G1 @ ctx, A (1 cell), G0+G1 @ B (1 cell) (and 4 more). Sets" in msg, msg
