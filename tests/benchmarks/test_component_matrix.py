"""``benchmarks/component_matrix.py``: every component a config can swap on the two small presets works or is refused.

The fast subset (``FAST``, about one swap per kind) runs in the default suite; the whole walk is slow-marked. A swap
that trains but changes nothing, a loaded run that predicts otherwise, a re-run from the saved ``config.yaml`` that
differs, a crash after training started, or a refusal that names no fix fails here, with the row of the matrix.
"""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import distgen
from benchmarks.component_matrix import (
    ADVICE,
    FAST,
    PAIRS,
    Combination,
    Result,
    Walk,
    combinations,
    places,
    resolved_model,
    table,
    unread_parts,
    walk,
)
from distgen.registry import registry


def _failures(results):
    return "\n" + table([r for r in results if not r.ok], detail=400)


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    combos = [c for c in combinations() if c.key in FAST]
    assert sorted(c.key for c in combos) == sorted(FAST)  # every FAST label is still a combination the walk makes
    return {r.combination.key: r for r in walk(combos, tmp_path_factory.mktemp("matrix"))}


def test_the_fast_subset_works_or_is_refused_before_training(fast):
    results = list(fast.values())
    assert all(r.ok for r in results), _failures(results)


def test_a_swap_that_cannot_work_is_refused_with_its_fix_and_one_that_can_is_live(fast):
    refused = fast["perturbdiff-small | dynamics=flow_matching"]
    assert refused.outcome == "refused" and refused.detail.startswith("AssemblyError")
    assert "model.backbone.self_conditioning=false" in refused.detail and "linear head" in refused.detail  # both reasons
    preset = fast["perturbdiff-small | (preset)"]
    kernel = fast["perturbdiff-small | distribution_loss.kernel=rbf"]
    assert kernel.outcome == "works" and kernel.losses != preset.losses  # the distribution term changed
    sampler = fast["perturbdiff-small | dynamics.sampler=ddpm"]
    assert sampler.losses == preset.losses and not np.array_equal(sampler.cells, preset.cells)  # sampling only
    assert "acts in sampling only" in sampler.detail


def test_a_swap_to_what_the_preset_already_has_is_found_inert(tmp_path):
    """The walk's own check: 'swapping' scdfm's independent coupling for itself must read INERT, not works."""
    same = Combination("scdfm-small", "coupling=independent", ("model.coupling.name=independent",), "single")
    preset, result = walk([Combination("scdfm-small", "(preset)", (), "single"), same], tmp_path, rerun=False)
    assert preset.outcome == "works" and result.outcome == "INERT", _failures([preset, result])


def test_a_refusal_without_a_fix_and_a_crash_are_findings():
    assert not Result(Combination("p", "x", (), "single"), "REFUSED-NO-FIX", 0.0).ok
    assert not Result(Combination("p", "x", (), "single"), "CRASH@predict", 0.0).ok
    res = Result(Combination("p", "a + b", ("a", "b"), "pair"), "works", 0.0, losses=[1.0], cells=np.ones((2, 3)))
    parent = Result(Combination("p", "b", ("b",), "single"), "works", 0.0, losses=[1.0], cells=np.ones((2, 3)))
    Walk._check_live(res, [parent])
    assert res.outcome == "INERT" and "equal those of b" in res.detail


class _IgnoresTheEmbedding(nn.Module):
    """A backbone that reads the conditioner's embedding as zeros: the conditioner is computed and ignored."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.capabilities, self.requires = inner, inner.capabilities, inner.requires

    def forward(self, x_t, t, cond, **kw):
        return self.inner(x_t, t, dataclasses.replace(cond, embedding=torch.zeros_like(cond.embedding)), **kw)


def test_a_part_whose_output_nothing_reads_is_found_unread(tmp_path):
    """Two training steps cannot show it (PerturbDiff's adaLN-Zero passes no gradient to the condition in step 1, a
    dropped batch none in step 2, and a part's initial draws alone change the losses); shifting its output can."""
    w = Walk(tmp_path, rerun=False)
    doc = w.document(Combination("perturbdiff-small", "backbone=mlp (fixed)", ("model.backbone.name=mlp", "model.dynamics.self_condition=0"), "advice"))
    data = w.dataset(doc)
    model = distgen.build(doc, data).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained weights
        cells = np.asarray(distgen.predict(model, data, seed=0).X, dtype=np.float64)
        assert unread_parts(model, data, cells) == []
        model.backbone = _IgnoresTheEmbedding(model.backbone)
        cells = np.asarray(distgen.predict(model, data, seed=0).X, dtype=np.float64)
        assert unread_parts(model, data, cells) == ["conditioner CovariateConditioner"]


def test_the_matrix_covers_every_registered_component_at_every_place():
    """A component added to a registry (or by a plugin) joins the walk without an edit here."""
    combos = combinations()
    keys = {c.key for c in combos}
    for preset in ("perturbdiff-small", "scdfm-small"):
        model = resolved_model(preset)
        for where, kind, node in places(model):
            if where.count(".") > 1:
                continue
            current = node.get("name") if isinstance(node, dict) else None
            for name in registry(kind).names():
                if name != current:
                    assert any(k.startswith(f"{preset} | {where}={name}") for k in keys), (preset, where, name)
        for name in registry("models").names():
            if name != "generator":
                assert f"{preset} | model={name}" in keys
    for (preset, label), _fix in ADVICE.items():
        assert f"{preset} | {label}" in keys and f"{preset} | {label} (fixed)" in keys, label
    for a, b in PAIRS:
        assert any(f"| {a}=" in k and f" + {b}=" in k for k in keys), (a, b)


@pytest.mark.slow
def test_the_whole_matrix_works_or_is_refused(tmp_path):
    results = walk(combinations(), tmp_path)
    assert all(r.ok for r in results), _failures(results)
    fixed = [r for r in results if r.combination.group == "advice"]
    assert fixed and all(r.outcome == "works" for r in fixed), _failures(fixed)  # each refusal's named fix works
