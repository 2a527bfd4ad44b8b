"""``Generator(anchor="control_mean")``: the dynamics model cells relative to their control set's mean."""

import pytest
import torch
from torch import nn

from distgen.backbones.base import Backbone, Condition
from distgen.config import build_component
from distgen.models.anchor import Anchor, control_mean
from distgen.models.generator import AssemblyError, Generator
from distgen.testing.fixtures import tiny_batch, tiny_info

INFO = tiny_info()


class Constant(Backbone):
    """Test backbone: predicts ``value`` everywhere (x0 prediction), whatever the input."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        return torch.zeros_like(x_t) + self.value


def _model(anchor: str, value: float = 0.0, **dyn) -> Generator:
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    node = {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50}, "sampler": {"name": "ddim", "steps": 5}, **dyn}
    dynamics = build_component("dynamics", node, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    return Generator(info=INFO, conditioner=cond, backbone=Constant(value), dynamics=dynamics, anchor=anchor)


def test_control_mean_ignores_padded_cells():
    control = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.allclose(control_mean(control, mask), torch.tensor([[[2.0, 3.0]]]))
    assert Anchor(INFO, "none")(control, mask, tiny_batch(b=1).labels, torch.arange(2), 1.0) is None


def test_a_zero_response_predicts_each_sets_control_mean():
    b = tiny_batch(b=3, m=6)
    mask = b.control_mask.clone()
    mask[0, -2:] = False  # padded control cells do not move the anchor
    anchored = _model("control_mean").predict(b.control, mask, b.labels)
    want = control_mean(b.control, mask).expand_as(anchored)
    assert torch.allclose(anchored, want, atol=1e-5)
    plain = _model("none").predict(b.control, mask, b.labels)
    assert torch.allclose(plain, torch.zeros_like(plain), atol=1e-5)  # without the anchor the same network gives 0


def test_training_targets_are_relative_to_the_control_mean():
    b = tiny_batch(b=3, m=6, pad_last=0)
    mean = control_mean(b.control, b.control_mask)
    batch = type(b)(target=mean.expand_as(b.target).clone(), target_mask=b.target_mask, control=b.control,
                    control_mask=b.control_mask, labels=b.labels, gene_ids=b.gene_ids)
    # every target cell equals its set's control mean: relative to it the target is 0, which the network predicts
    assert float(_model("control_mean").loss(batch).loss.detach()) < 1e-10
    assert float(_model("none").loss(batch).loss.detach()) > 0.1


def test_anchor_needs_a_signed_head_and_no_clipping():
    with pytest.raises(AssemblyError, match="anchor must be one of"):
        _model("median")
    with pytest.raises(AssemblyError, match="clip_denoised"):
        _model("control_mean", clip_denoised=1e-4)
    bb = build_component("backbones", {"name": "cross_dit", "dim": 8, "depth": 1, "heads": 2, "output": "relu", "self_conditioning": False},
                         info=INFO, n_genes=INFO.n_genes, seen_perturbations=None, cond_dim=4, population_dim=0)
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    dyn = build_component("dynamics", {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50},
                           "sampler": {"name": "ddim", "steps": 5}}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    with pytest.raises(AssemblyError, match=r"non-negative output head.*output: identity"):
        Generator(info=INFO, conditioner=cond, backbone=bb, dynamics=dyn, anchor="control_mean")


# ---------------------------------------------------------------------- anchor: additive
def _two_context_table(seed: int = 0):
    """Controls, singles G0 / G1 / G2 and the pair G0+G1 in two contexts whose responses differ, plus G3 only in a pair."""
    from distgen.types import PAD, CellTable, ConditionLabels

    g = torch.Generator().manual_seed(seed)
    conds = [[PAD, PAD], [0, PAD], [1, PAD], [2, PAD], [0, 1], [2, 3]]
    xs, perts, ctxs = [], [], []
    for ctx in (0, 1):
        base = torch.rand(INFO.n_genes, generator=g) * 2
        effects = torch.randn(4, INFO.n_genes, generator=g)
        for c in conds:
            n = 8 + len(xs)  # unequal group sizes: the effects are means of groups, not of cells
            shift = sum((effects[a] for a in c if a >= 0), torch.zeros(INFO.n_genes)) + 0.7 * (c == [0, 1])
            xs.append(base + shift + 0.3 * torch.randn(n, INFO.n_genes, generator=g))
            perts += [c] * n
            ctxs += [ctx] * n
    pert = torch.tensor(perts)
    labels = ConditionLabels(pert, (pert >= 0).float(), torch.tensor(ctxs), torch.zeros(len(ctxs), dtype=torch.long))
    return CellTable(torch.cat(xs), labels, INFO)


def _additive_model(value: float = 0.0, input_scale: float = 1.0) -> Generator:
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    node = {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50}, "sampler": {"name": "ddim", "steps": 5}}
    dynamics = build_component("dynamics", node, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    return Generator(info=INFO, conditioner=cond, backbone=Constant(value), dynamics=dynamics, anchor="additive", input_scale=input_scale)


def _held_out_pair_query(table, ctx: int = 1, m: int = 7):
    """Control sets of context ``ctx`` (last cells padded) for the pair G0+G1 and for the single G2."""
    from distgen.types import PAD, ConditionLabels

    ctrl = table.X[(table.labels.is_control) & (table.labels.context == ctx)][:m]
    control = torch.stack([ctrl, ctrl.flip(0)])
    mask = torch.ones(2, m, dtype=torch.bool)
    mask[1, -3:] = False
    labels = ConditionLabels(torch.tensor([[0, 1], [2, PAD]]), torch.ones(2, 2), torch.tensor([ctx, ctx]), torch.zeros(2, dtype=torch.long))
    return control, mask, labels


@pytest.mark.parametrize("input_scale", [1.0, 0.1])
def test_additive_anchor_is_the_additive_baselines_mean_for_a_pair(input_scale):
    from distgen.models.baselines.additive import AdditiveBaseline

    table = _two_context_table()
    model = _additive_model(input_scale=input_scale)
    model.prepare(table)
    control, mask, labels = _held_out_pair_query(table)
    got = model.predict(control, mask, labels)  # the network predicts a zero residual: every cell is the anchor
    base = AdditiveBaseline().fit(table).predict(control, mask, labels)
    want = control_mean(base, mask)
    assert torch.allclose(got, want.expand_as(got).float(), atol=1e-4)
    # and not the control mean: the effects are there
    assert (got[:, :1] - control_mean(control, mask)).abs().max() > 0.5


def test_additive_anchor_trains_the_residual_on_any_gene_subset():
    from distgen.models.baselines.additive import AdditiveBaseline
    from distgen.types import SetBatch

    table = _two_context_table()
    model = _additive_model()
    model.prepare(table)
    control, mask, labels = _held_out_pair_query(table, ctx=0)
    target = control_mean(AdditiveBaseline().fit(table).predict(control, mask, labels), mask).expand_as(control).float().clone()
    batch = SetBatch(target=target, target_mask=mask, control=control, control_mask=mask, labels=labels, gene_ids=torch.arange(INFO.n_genes))
    sub = batch.select_genes(torch.tensor([1, 4, 5, 9]))
    # relative to the additive anchor the target is 0, which the network predicts; on gene columns too
    assert float(model.loss(batch).loss.detach()) < 1e-10
    assert float(model.loss(sub).loss.detach()) < 1e-10
    control_only = Generator(info=INFO, conditioner=model.conditioner, backbone=Constant(0.0), dynamics=model.dynamics, anchor="control_mean")
    assert float(control_only.loss(batch).loss.detach()) > 0.1


def test_additive_anchor_adds_nothing_for_an_atom_never_seen_alone_and_says_so():
    from distgen.types import PAD, ConditionLabels

    table = _two_context_table()
    model = _additive_model()
    model.prepare(table)
    assert model.anchor.fitted.tolist() == [True, True, True, False]  # G3 is only in the pair G2+G3
    assert torch.equal(model.anchor.effects[3], torch.zeros(INFO.n_genes))
    control, mask, _ = _held_out_pair_query(table)
    both = ConditionLabels(torch.tensor([[2, 3], [2, PAD]]), torch.ones(2, 2), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.warns(UserWarning, match=r"1 atom \('G3'\) was never seen alone in training; it adds no effect"):
        out = model.predict(control, mask, both)
    assert torch.allclose(out[0, :1], out[1, :1] + (control_mean(control[:1], mask[:1]) - control_mean(control[1:], mask[1:]))[0], atol=1e-4)


def test_additive_anchor_refuses_without_fitted_effects_or_singles():
    table = _two_context_table()
    control, mask, labels = _held_out_pair_query(table)
    with pytest.raises(RuntimeError, match=r"call prepare\(train\)"):
        _additive_model().predict(control, mask, labels)
    keep = (table.labels.perturbation >= 0).sum(1) != 1  # controls and pairs: no single to fit an effect from
    pairs_only = type(table)(table.X[keep], table.labels.index(keep), table.info)
    with pytest.raises(ValueError, match="needs single perturbations"):
        _additive_model().prepare(pairs_only)
    other = type(table)(table.X[:, :-1], table.labels, tiny_info(INFO.n_genes - 1))
    with pytest.raises(ValueError, match="differ from the ones the model was built for"):
        _additive_model().prepare(other)
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    dyn = build_component("dynamics", {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50},
                           "sampler": {"name": "ddim", "steps": 5}, "clip_denoised": 1e-4}, info=INFO, n_genes=INFO.n_genes,
                          seen_perturbations=None)
    with pytest.raises(AssemblyError, match="clip_denoised"):
        Generator(info=INFO, conditioner=cond, backbone=Constant(0.0), dynamics=dyn, anchor="additive")


def test_a_standing_flow_from_the_control_cells_gives_the_additive_baselines_cells():
    from distgen.models.baselines.additive import AdditiveBaseline

    table = _two_context_table()
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    dyn = build_component("dynamics", {"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 3}},
                          info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    model = Generator(info=INFO, conditioner=cond, backbone=Constant(0.0), dynamics=dyn, anchor="additive", input_scale=0.5)
    model.prepare(table)
    control, mask, labels = _held_out_pair_query(table)
    got = model.predict(control, mask, labels)  # zero velocity: each control cell is carried over, in residual space
    want = AdditiveBaseline().fit(table).predict(control, mask, labels).float()
    assert torch.allclose(got[mask], want[mask], atol=1e-4)  # cell by cell, not only the mean


def test_an_anchor_refuses_clamped_flow_samples():
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    dyn = build_component("dynamics", {"name": "flow_matching", "clamp_min": 0.0}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    for anchor in ("control_mean", "additive"):
        with pytest.raises(AssemblyError, match="clamp_min"):
            Generator(info=INFO, conditioner=cond, backbone=Constant(0.0), dynamics=dyn, anchor=anchor)


# ---------------------------------------------------------------------- anchor_reference: training
def _model_with(anchor: str, reference: str, flow: bool = False, input_scale: float = 1.0) -> Generator:
    cond = build_component("conditioners", {"name": "onehot", "dim": 4}, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    node = ({"name": "flow_matching", "source": "control", "solver": {"name": "euler", "steps": 3}} if flow else
            {"name": "diffusion", "prediction": "x0", "schedule": {"name": "linear", "timesteps": 50}, "sampler": {"name": "ddim", "steps": 5}})
    dynamics = build_component("dynamics", node, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None)
    return Generator(info=INFO, conditioner=cond, backbone=Constant(0.0), dynamics=dynamics, anchor=anchor,
                     anchor_reference=reference, input_scale=input_scale)


def _means_by_hand(table):
    """Per context the mean of its control cells, and per atom its effect alone (mean over contexts), computed directly."""
    x, lab = table.X.double(), table.labels
    n_atoms = (lab.perturbation >= 0).sum(1)
    ctrl = {c: x[(n_atoms == 0) & (lab.context == c)].mean(0) for c in (0, 1)}
    effects = torch.zeros(INFO.n_perturbations, INFO.n_genes, dtype=torch.float64)
    for a in range(INFO.n_perturbations):
        per_ctx = [x[(n_atoms == 1) & (lab.perturbation[:, 0] == a) & (lab.context == c)].mean(0) - ctrl[c]
                   for c in (0, 1) if bool(((n_atoms == 1) & (lab.perturbation[:, 0] == a) & (lab.context == c)).any())]
        if per_ctx:
            effects[a] = torch.stack(per_ctx).mean(0)
    return ctrl, effects


@pytest.mark.parametrize("input_scale", [1.0, 0.1])
@pytest.mark.parametrize("ctx", [0, 1])
def test_training_reference_anchors_on_the_contexts_training_control_mean(ctx, input_scale):
    table = _two_context_table()
    ctrl, effects = _means_by_hand(table)
    control, mask, labels = _held_out_pair_query(table, ctx=ctx, m=5)  # 5 of the context's control cells: a noisy set mean
    for anchor, want in (("control_mean", [ctrl[ctx], ctrl[ctx]]), ("additive", [ctrl[ctx] + effects[0] + effects[1], ctrl[ctx] + effects[2]])):
        model = _model_with(anchor, "training", input_scale=input_scale)
        model.prepare(table)
        got = model.predict(control, mask, labels)  # a zero residual: every cell is the anchor
        for b in range(2):
            assert torch.allclose(got[b], want[b].float().expand_as(got[b]), atol=1e-4), (anchor, b)
        # the set's own mean is not what it used: the two sets (same cells, different padding) get the same anchor
        assert (control_mean(control[:1], mask[:1]) - ctrl[ctx].float()).abs().max() > 0.05
        assert torch.allclose(got[0, 0] - got[1, 0], (want[0] - want[1]).float(), atol=1e-4)


def test_training_reference_trains_the_residual_from_the_training_control_mean():
    from distgen.types import SetBatch

    table = _two_context_table()
    ctrl, effects = _means_by_hand(table)
    control, mask, labels = _held_out_pair_query(table, ctx=0, m=5)
    want = torch.stack([ctrl[0] + effects[0] + effects[1], ctrl[0] + effects[2]]).float()[:, None, :].expand_as(control).clone()
    batch = SetBatch(target=want, target_mask=mask, control=control, control_mask=mask, labels=labels, gene_ids=torch.arange(INFO.n_genes))
    trained, own = _model_with("additive", "training"), _model_with("additive", "set")
    trained.prepare(table)
    own.prepare(table)
    assert float(trained.loss(batch).loss.detach()) < 1e-9
    assert float(trained.loss(batch.select_genes(torch.tensor([0, 3, 7]))).loss.detach()) < 1e-9
    assert float(own.loss(batch).loss.detach()) > 1e-4  # the set's mean is off the training mean: a residual is left


def test_a_standing_flow_from_the_control_cells_keeps_their_spread_around_the_training_anchor():
    table = _two_context_table()
    ctrl, effects = _means_by_hand(table)
    control, mask, labels = _held_out_pair_query(table, ctx=1, m=5)
    model = _model_with("additive", "training", flow=True, input_scale=0.5)
    model.prepare(table)
    got = model.predict(control, mask, labels)
    # each control cell, moved off its own set's mean onto the training anchor
    want = control - control_mean(control, mask) + torch.stack([ctrl[1] + effects[0] + effects[1], ctrl[1] + effects[2]]).float()[:, None, :]
    assert torch.allclose(got[mask], want[mask], atol=1e-4)


def test_a_context_without_training_controls_falls_back_to_the_set_mean_and_says_so():
    table = _two_context_table()
    ctrl, _ = _means_by_hand(table)
    control, mask, labels = _held_out_pair_query(table, ctx=1, m=5)
    keep = ~(table.labels.is_control & (table.labels.context == 1))
    no_ctrl_1 = type(table)(table.X[keep], table.labels.index(keep), table.info)
    model = _model_with("control_mean", "training")
    model.prepare(no_ctrl_1)
    assert model.anchor.control_fitted.tolist() == [True, False]
    assert torch.allclose(model.anchor.control[0].double(), ctrl[0], atol=1e-5)
    with pytest.warns(UserWarning, match=r"1 context \('.*'\) has no control cells in training; its anchor"):
        got = model.predict(control, mask, labels)
    assert torch.allclose(got, control_mean(control, mask).expand_as(got), atol=1e-4)
    labels0 = type(labels)(labels.perturbation, labels.dose, torch.zeros(2, dtype=torch.long), labels.batch)
    got0 = model.predict(control, mask, labels0)  # context 0 was fitted: its training mean, whatever cells the set holds
    assert torch.allclose(got0, ctrl[0].float().expand_as(got0), atol=1e-4)


def test_training_reference_refusals():
    table = _two_context_table()
    control, mask, labels = _held_out_pair_query(table)
    with pytest.raises(RuntimeError, match=r"anchor_reference 'training' has no control means: call prepare\(train\)"):
        _model_with("control_mean", "training").predict(control, mask, labels)
    perturbed = type(table)(table.X[~table.labels.is_control], table.labels.index(~table.labels.is_control), table.info)
    with pytest.raises(ValueError, match="needs control cells in the training cells"):
        _model_with("control_mean", "training").prepare(perturbed)
    with pytest.raises(AssemblyError, match="model has no anchor"):
        _model_with("none", "training")
    with pytest.raises(AssemblyError, match="anchor_reference must be one of set, training"):
        _model_with("additive", "population")
