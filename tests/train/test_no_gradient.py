"""A component that receives no gradient in a whole fit is said (``NoGradientWarning``), not trained silently at its initial
weights; a healthy run, and a parameter without a gradient inside a component that learns, are not warned about
(docs/training.md, "Failures")."""

import warnings

import pytest
import torch

from distgen.train import NoGradientWarning, fit

from .conftest import TINY_GENERATOR

BASE = {"steps": 3, "sets_per_batch": 4, "progress": False}


def test_a_detached_component_is_named_and_keeps_its_weights(table, make_model):
    model = make_model()
    model.conditioner.register_forward_hook(lambda mod, inp, out: out.detach())  # a plugin's stray .detach()
    before = {k: v.clone() for k, v in model.conditioner.state_dict().items()}
    with pytest.warns(NoGradientWarning, match=r"model\.conditioner received no gradient in 3 training steps .*conditioner\.pert\.weight"):
        res = fit(model, table, set_size=4, **BASE)
    assert all(torch.equal(before[k], v) for k, v in model.conditioner.state_dict().items())  # what the warning says
    assert set(res.no_gradient) == {n for n, p in model.named_parameters() if n.startswith("conditioner.") and p.requires_grad}
    assert not any(n.startswith("backbone.") for n in res.no_gradient)


def test_a_healthy_run_and_a_partly_unused_component_are_not_warned(table, make_model):
    model = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoGradientWarning)
        assert fit(model, table, set_size=4, **BASE).no_gradient == []
    model = make_model()
    extra = torch.nn.Parameter(torch.zeros(3))  # never used by the loss, beside parameters that learn
    model.backbone.register_parameter("spare", extra)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoGradientWarning)
        res = fit(model, table, set_size=4, **BASE)
    assert res.no_gradient == ["backbone.spare"]  # listed, not warned: its component learns


def test_a_frozen_component_is_not_warned(table, make_model):
    model = make_model()
    model.conditioner.requires_grad_(False)  # frozen on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoGradientWarning)
        assert fit(model, table, set_size=4, **BASE).no_gradient == []


def test_a_loss_that_depends_on_no_parameter_is_named(table, make_model):
    from distgen.types import LossOutput

    model = make_model()
    model.loss = lambda batch: LossOutput(loss=torch.tensor(1.0), parts={})  # a plugin loss that lost its graph
    from distgen.train import DetachedLossError  # beside NonFiniteLossError, as docs/training.md names it

    with pytest.raises(DetachedLossError, match=r"\.loss returned a loss that depends on no trainable parameter .*no grad_fn"):
        fit(model, table, set_size=4, **BASE)



def test_a_loss_with_zero_gradient_at_every_step_is_said(table, make_model):
    """A loss that depends on the weights only through a factor 0 (every term weighted 0) trained on without a word."""
    from distgen.types import LossOutput

    model = make_model()
    inner = model.loss
    model.loss = lambda batch: LossOutput(loss=inner(batch).loss * 0.0, parts={})
    with pytest.warns(NoGradientWarning, match=r"the gradient norm was 0 at every one of the 3 training steps"):
        res = fit(model, table, set_size=4, **BASE)
    assert res.no_gradient == [] and res.losses == [0.0, 0.0, 0.0]


def test_a_zero_gradient_is_said_also_when_a_parameter_is_listed(table):
    """Without condition dropout (scdfm's presets) the null embedding gets no gradient in any fit: it is listed in
    ``no_gradient``, and that listing silenced the zero-gradient warning, so a loss weighted 0 trained on without a word."""
    from distgen.models.generator import build_model
    from distgen.types import LossOutput

    torch.manual_seed(0)
    model = build_model(TINY_GENERATOR, table.info)  # p_drop_condition 0: conditioner.null is never used
    inner = model.loss
    model.loss = lambda batch: LossOutput(loss=inner(batch).loss * 0.0, parts={})
    with pytest.warns(NoGradientWarning, match=r"the gradient norm was 0 at every one of the 3 training steps"):
        res = fit(model, table, set_size=4, **BASE)
    assert res.no_gradient == ["conditioner.null"]  # listed, its component not warned about


def test_an_unused_parameter_of_the_model_itself_is_listed_not_warned(table, make_model):
    """A plugin model's own (top-level) null vector, unused without condition dropout, was warned about as if it were a
    whole component that learned nothing, at the end of every fit, while every component of the model learned."""
    model = make_model()
    model.register_parameter("null_vector", torch.nn.Parameter(torch.zeros(8)))  # the model's own, used by no loss
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoGradientWarning)
        res = fit(model, table, set_size=4, **BASE)
    assert res.no_gradient == ["null_vector"]


def test_a_component_whose_gradient_is_zero_at_every_step_is_named(table, make_model):
    """The conditioner's output multiplied by 0 while the backbone learns: its parameters get gradients, exactly 0 at every
    step, so the no-gradient check (gradients that are None) and the all-zero check (the global norm) both missed it."""
    model = make_model()
    model.conditioner.register_forward_hook(lambda mod, inp, out: out * 0.0)
    before = {k: v.clone() for k, v in model.conditioner.state_dict().items()}
    with pytest.warns(NoGradientWarning, match=r"model\.conditioner received a gradient of exactly 0 at every one of the 1 "
                                               r"training step of this fit after its first 2 updates .*conditioner\.pert\.weight") as caught:
        res = fit(model, table, set_size=4, **BASE)
    assert all(torch.equal(before[k], v) for k, v in model.conditioner.state_dict().items())  # nothing learned (no decay)
    conditioner = {n for n, p in model.named_parameters() if n.startswith("conditioner.") and p.requires_grad}
    # the backbone's projection of the (zeroed) condition gets 0 too: listed, not warned, since the backbone learns
    assert set(res.zero_gradient) == conditioner | {"backbone.cond.weight"} and res.no_gradient == []
    assert [str(w.message).split(" ")[0] for w in caught if issubclass(w.category, NoGradientWarning)] == ["model.conditioner"]


@pytest.mark.parametrize("run", [{"steps": 1}, {"steps": 2, "schedule": "cosine_floor", "warmup_steps": 100}])
def test_a_zero_initialised_gate_in_a_short_run_is_not_a_zero_gradient(table, make_model, run):
    """adaLN-Zero (the perturbdiff presets): a gate initialised to 0 multiplies the conditioner's output, so at the first
    step, and after steps with a learning rate of 0 (cosine_floor's warm-up starts at 0), the conditioner's gradients are
    exactly 0; the first update with a rate opens the gate. A smoke run (`train.steps=1` or 2) warned that the conditioner
    learned nothing: steps before two updates with a rate are not counted (listed in neither field)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoGradientWarning)
        res = fit(model_with_gate(make_model), table, set_size=4, **{**BASE, **run})
    assert res.zero_gradient == []
    # once the gate is open the conditioner learns: a longer run with the gate is not warned either
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoGradientWarning)
        res = fit(model_with_gate(make_model), table, set_size=4, **{**BASE, "steps": 4})
    assert res.zero_gradient == []


def model_with_gate(make_model):
    """The tiny generator with its conditioner's output multiplied by a learnable gate that starts at 0 (adaLN-Zero)."""
    model = make_model()
    model.backbone.register_parameter("gate", torch.nn.Parameter(torch.zeros(())))
    model.conditioner.register_forward_hook(lambda mod, inp, out: out * model.backbone.gate)
    return model
