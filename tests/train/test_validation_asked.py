"""Validation asked for (``val_every``, ``patience``) where there are no validation cells is said, not skipped silently
(docs/training.md, "Failures")."""

import warnings

import pytest

from distgen.train import fit

BASE = {"steps": 3, "sets_per_batch": 4, "progress": False}


def test_validation_asked_for_without_validation_cells_is_said(table, make_model):
    """val_every (and patience) with no validation cells trained to the last step, never validated, without a word."""
    from distgen.config import InertSettingWarning

    with pytest.warns(InertSettingWarning, match=r"train\.val_every, train\.patience set, but there are no validation cells.*never stops early"):
        res = fit(make_model(), table, set_size=4, val_every=1, patience=1, **BASE)
    assert res.validations == [] and res.step == BASE["steps"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", InertSettingWarning)
        assert len(fit(make_model(), table, set_size=4, val=table, val_every=1, **BASE).validations) == BASE["steps"]


def test_an_early_stop_says_the_model_is_the_last_steps_not_the_best(table, make_model, capsys):
    """patience stops `patience` validations after the best; the weights kept are the last step's (docs/data.md), which
    nothing said: result.best_step named another step."""
    res = fit(make_model(), table, set_size=4, val=table, val_every=2, patience=1, **{**BASE, "steps": 60, "lr": 0.3})
    assert res.stopped_early and res.best_step is not None and res.best_step < res.step  # lr 0.3: the validation loss jumps
    err = capsys.readouterr().err
    assert f"stopped early at step {res.step}" in err and f"at step {res.best_step}; the model" in err and "not the best step's" in err
    assert "checkpoint None" not in err  # a fit without run_dir writes no checkpoint: none is named


def test_an_early_stop_names_the_checkpoint_of_a_run_folder(table, make_model, capsys, tmp_path):
    res = fit(make_model(), table, set_size=4, val=table, val_every=2, patience=1, run_dir=tmp_path,
              **{**BASE, "steps": 60, "lr": 0.3})
    assert res.stopped_early and res.checkpoint is not None and res.checkpoint.name == f"step_{res.step:08d}"
    err = capsys.readouterr().err
    assert f"the model (and checkpoint {res.checkpoint}) is step {res.step}'s" in err
    assert res.best_checkpoint is not None and res.best_checkpoint.name == f"step_{res.best_step:08d}"
    assert f"the best step's is checkpoint {res.best_checkpoint} (distgen predict RUN --checkpoint best)" in err


def test_a_time_budget_spent_at_a_validation_step_stops_there(table, make_model):
    """train.minutes run out at a step that also validates: the validation's 'no early stop' overwrote the budget's stop,
    so the run trained one step more than its budget (to the next step without validation)."""
    res = fit(make_model(), table, set_size=4, val=table, val_every=1, minutes=1e-9, **{**BASE, "steps": 5})
    assert res.stopped_by_budget and not res.stopped_early
    assert res.step == 1 and len(res.validations) == 1
