"""Training that goes wrong numerically: a loss that explodes while finite is said (``DivergenceWarning``) and recorded;
a NaN/inf loss stops naming the settings that drove it; a non-finite validation counts against ``patience``; float64
cells train as float32 (docs/training.md, "Failures")."""

import json
import math
import warnings

import pytest
import torch
from torch import nn

from distgen.errors import DivergenceWarning
from distgen.train import NonFiniteLossError, fit
from distgen.train.checkpoint import list_checkpoints, load_checkpoint
from distgen.train.trainer import DIVERGENCE_FACTOR
from distgen.types import CellTable

BASE = {"steps": 6, "sets_per_batch": 4, "progress": False}


def test_a_loss_that_explodes_without_nan_is_warned_and_recorded(table, make_model, tmp_path):
    # lr 10 with the default grad_clip=1: the loss of this tiny model reaches ~1e14 at step 2 and stays finite
    with pytest.warns(DivergenceWarning, match=r"loss at step 2 was .*times the first step's") as caught:
        res = fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**BASE, "lr": 10.0})
    assert all(math.isfinite(v) for v in res.losses)  # no NaN: before, nothing told the user
    assert len([w for w in caught if issubclass(w.category, DivergenceWarning)]) == 1  # once, not every step
    d = res.diverged
    assert d is not None and d["step"] == 2 and d["loss"] > DIVERGENCE_FACTOR * abs(d["first_loss"])
    assert d["first_loss"] == pytest.approx(res.losses[0]) and d["loss"] == pytest.approx(res.losses[1])
    state = json.loads((res.checkpoint / "state.json").read_text())
    assert state["diverged"]["step"] == 2 and state["first_loss"] == pytest.approx(res.losses[0])  # resumes keep the reference


def test_a_healthy_run_is_not_called_diverging(table, make_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        res = fit(make_model(), table, set_size=4, **{**BASE, "lr": 3e-3, "steps": 30})
    assert res.diverged is None


def test_a_resumed_run_measures_divergence_against_the_first_step_of_the_run(table, make_model, tmp_path):
    """The reference loss is checkpointed: a run resumed after it diverged still knows it (and says so once)."""
    with pytest.warns(DivergenceWarning):
        fit(make_model(), table, set_size=4, run_dir=tmp_path, checkpoint_every=3, **{**BASE, "lr": 10.0, "steps": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)  # said before the checkpoint: not again
        res = fit(make_model(), table, set_size=4, run_dir=tmp_path, resume=tmp_path / "checkpoints" / "step_00000003",
                  **{**BASE, "lr": 10.0, "steps": 6})
    assert res.diverged is not None and res.diverged["step"] == 2


def test_nan_loss_names_the_learning_rate_clipping_and_the_loss_before(table, make_model, tmp_path):
    def poison(trainer, step):
        if step == 3:
            with torch.no_grad():
                trainer.model.backbone.inp.weight.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError) as err:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, checkpoint_every=2, callbacks=[poison], grad_clip=None,
            **{**BASE, "lr": 3e-3})
    msg = str(err.value)
    assert "at step 4" in msg and "train.grad_clip=null" in msg and "set train.grad_clip" in msg
    assert "lr 0.00" in msg and "the loss was" in msg and "at step 3" in msg and "step_00000002" in msg


def test_nan_after_divergence_says_since_when_and_that_the_last_checkpoint_is_after_it(table, make_model, tmp_path):
    def poison(trainer, step):
        if step == 4:
            with torch.no_grad():
                trainer.model.backbone.inp.weight.fill_(float("nan"))

    with pytest.warns(DivergenceWarning), pytest.raises(NonFiniteLossError) as err:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, checkpoint_every=3, callbacks=[poison], **{**BASE, "lr": 10.0})
    msg = str(err.value)
    assert "diverging since step 2" in msg and "step_00000003 (written after the loss began to diverge at step 2" in msg
    assert "none was written before it: train again" in msg  # "take an earlier one" when there was none
    assert "train.grad_clip=1" in msg and "set train.grad_clip" not in msg  # clipping is on: not suggested again


def test_nan_after_divergence_names_the_checkpoint_written_before_it(table, make_model, tmp_path):
    def poison(trainer, step):
        if step == 4:
            with torch.no_grad():
                trainer.model.backbone.inp.weight.fill_(float("nan"))

    # a checkpoint every step, two kept: the diverging steps pruned step 1, the only one of the model before it
    with pytest.warns(DivergenceWarning), pytest.raises(NonFiniteLossError) as err:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, checkpoint_every=1, callbacks=[poison], **{**BASE, "lr": 10.0})
    msg = str(err.value)
    assert "(written after the loss began to diverge at step 2: take the one written before it, step_00000001)" in msg
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000001", "step_00000003", "step_00000004"]
    load_checkpoint(tmp_path / "checkpoints" / "step_00000001")  # whole: its digests check


class NanValidation(nn.Module):
    """The tiny generator, whose loss is NaN in evaluation mode (validation) and fine in training."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def loss(self, batch):
        out = self.inner.loss(batch)
        if not self.training:
            out.loss = out.loss * float("nan")
        return out

    def predict(self, *args):
        return self.inner.predict(*args)


def test_a_nan_validation_counts_against_patience_and_is_said(table, make_model):
    model = NanValidation(make_model())
    with pytest.warns(DivergenceWarning, match=r"validation at step 1 gave val_loss=nan") as caught:
        res = fit(model, table, val=table, set_size=4, val_every=1, patience=2, val_metrics=[], **{**BASE, "steps": 20, "lr": 3e-3})
    # before: a NaN validation was neither the best nor counted, so patience never ran out and training went to step 20
    assert res.stopped_early and res.step == 2 and res.best is None
    assert len([w for w in caught if issubclass(w.category, DivergenceWarning)]) == 1


def test_float64_cells_train_as_float32(table, make_model):
    """A CellTable built from a numpy float64 matrix stopped inside torch ("mat1 and mat2 must have the same dtype")."""
    t64 = CellTable(table.X.double(), table.labels, table.info)
    assert t64.X.dtype == torch.float32
    a, b = make_model(), make_model()
    ra = fit(a, t64, set_size=4, **BASE)
    rb = fit(b, table, set_size=4, **BASE)
    assert ra.losses == rb.losses


def test_nan_at_the_first_step_does_not_blame_the_learning_rate_and_names_the_loss_terms(table):
    """No update precedes step 1, so lowering train.lr cannot help; the (unweighted) terms show which part overflowed."""
    from distgen.models.generator import build_model

    from .conftest import MODEL

    torch.manual_seed(0)
    node = {**MODEL, "distribution_loss": {"name": "kme", "kernel": {"name": "rbf"}}, "distribution_weight": 1e40}
    with pytest.raises(NonFiniteLossError) as err:
        fit(build_model(node, table.info), table, set_size=4, **BASE)
    msg = str(err.value)
    assert "at step 1" in msg and "learning rate is not the cause" in msg and "lower train.lr" not in msg
    assert "loss terms: " in msg and "distribution " in msg and "weight that overflows float32" in msg


def test_weights_that_overflow_at_the_last_step_stop_the_run_before_its_checkpoint(table, make_model, tmp_path):
    """A one-step run with lr 1e40 (Adam moves every weight by about lr): the weights became inf and the run finished
    without a word (no later loss to turn NaN), writing them as its checkpoint."""
    with pytest.raises(NonFiniteLossError, match=r"weights after step 1 are not finite.*lower train\.lr") as err:
        fit(make_model(), table, set_size=4, run_dir=tmp_path, **{**BASE, "steps": 1, "lr": 1e40, "grad_clip": None})
    assert "Last checkpoint: none saved yet" in str(err.value)
    assert list_checkpoints(tmp_path / "checkpoints") == []  # the inf weights were not written


def test_weights_that_explode_at_the_last_step_are_warned(table, make_model):
    """lr 1e30 for one step: weights of 1e30, finite, no loss after them; the run finished without a word."""
    with pytest.warns(DivergenceWarning, match=r"the weights after step 1 reach .* times their norm .* at the start of this fit"):
        res = fit(make_model(), table, set_size=4, **{**BASE, "steps": 1, "lr": 1e30, "grad_clip": None})
    assert res.step == 1 and res.diverged is None  # not a loss divergence: the warning is the record (manifest warnings)
