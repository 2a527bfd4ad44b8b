"""Guidance in one batched forward: a condition and its null stacked along sets give the two separate calls' samples."""

import pytest
import torch

from distgen.api import build
from distgen.backbones.adaln import AdaLNZero
from distgen.backbones.base import Condition
from distgen.models.generator import stack_conditions
from distgen.testing import tiny_batch, tiny_info

SMALL = ["model.backbone.dim=16", "model.backbone.depth=2", "model.backbone.heads=2", "model.conditioner.part_dim=4",
         "model.dynamics.sampler.start_step=9"]


def _model():
    torch.manual_seed(0)
    model = build("perturbdiff", tiny_info(), overrides=SMALL)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # zero-initialised modulations would hide the condition; random weights use every path
        for mod in model.modules():
            if isinstance(mod, AdaLNZero):
                mod.lin.weight.copy_(torch.randn(mod.lin.weight.shape, generator=g) * 0.3)
    return model.eval()


def _sample(model, batched: bool):
    b = tiny_batch()
    calls = []
    # sets per forward (output rows), and how many conditions shared one input projection
    hook = model.backbone.register_forward_hook(lambda _m, _a, kw, out: calls.append((out.shape[0], kw.get("copies", 1))), with_kwargs=True)
    caps = model.backbone.capabilities
    if not batched:
        model.backbone.capabilities = caps.replace(independent_sets=False)
    try:
        torch.manual_seed(1)
        cells = model.predict(b.control, b.control_mask, b.labels)
    finally:
        model.backbone.capabilities = caps
        hook.remove()
    return cells, calls, model.last_nfe


def test_one_batched_call_gives_the_two_separate_predictions():
    model = _model()
    b = tiny_batch()
    with torch.inference_mode():
        cond = model.condition(b.labels, b.control, b.control_mask, b.gene_ids)
        null = model.condition(b.labels, b.control, b.control_mask, b.gene_ids, torch.ones(len(b.labels), dtype=torch.bool))
        field = model.bind(cond, null)
        x, x_sc = torch.randn_like(b.control), torch.rand_like(b.control)
        t = torch.full(b.control.shape[:2], 0.37)
        for kw in ({}, {"x_self_cond": x_sc}):
            got_c, got_u = field.both(x, t, **kw)
            torch.testing.assert_close(got_c, field(x, t, **kw), atol=1e-6, rtol=1e-6)
            torch.testing.assert_close(got_u, field(x, t, uncond=True, **kw), atol=1e-6, rtol=1e-6)
        assert (got_c - got_u).abs().max() > 1e-3, "the null condition must change the prediction"


def test_batched_guidance_gives_the_separate_calls_samples_in_half_the_forwards():
    model = _model()
    sets = tiny_batch().control.shape[0]
    batched, calls_b, nfe_b = _sample(model, True)
    separate, calls_s, nfe_s = _sample(model, False)
    # each forward agrees to float rounding (above); 10 guided steps (x2 guidance, /0.1 input scale) amplify it
    torch.testing.assert_close(batched, separate, atol=1e-4, rtol=1e-4)
    assert nfe_b == nfe_s == 20  # 10 steps x (condition + null): network evaluations are counted the same way
    assert calls_s == [(sets, 1)] * 20 and calls_b == [(2 * sets, 2)] * 10


def test_stacked_condition_puts_the_condition_first_and_marks_the_null():
    g = torch.Generator().manual_seed(0)
    ctrl = torch.rand(2, 3, 4, generator=g)
    a = Condition(gene_ids=torch.arange(4), embedding=torch.randn(2, 5, generator=g), control=ctrl, control_mask=torch.ones(2, 3, dtype=torch.bool))
    b = Condition(**{**a.__dict__, "embedding": torch.zeros(2, 5), "drop": torch.ones(2, dtype=torch.bool)})
    s = stack_conditions(a, b)
    assert s.control.shape == (4, 3, 4) and torch.equal(s.control[:2], ctrl) and torch.equal(s.control[2:], ctrl)
    assert s.drop.tolist() == [False, False, True, True]
    assert torch.equal(s.embedding[:2], a.embedding) and s.labels is None
    with pytest.raises(ValueError, match="an embedding"):
        stack_conditions(a, Condition(**{**a.__dict__, "embedding": None}))
