"""A methods developer composing models: presets built by hand from their parts, and plugin parts of the kinds a
model is assembled from (couplings, matchers) held to their contracts at first use.

Cases from docs/reliability.md, "Composition round": a coupling that pairs source cells of one set with another
set's targets trained without a word; a matcher with the wrong signature, count or indices failed deep in the
sampler (an internal error, or "control_mask must be (2, 7)") without naming the plugin.
"""

import pytest
import torch

import distgen
from distgen.backbones.cross_dit import CrossDiT
from distgen.backbones.pad_transformer import PADTransformer
from distgen.conditioners.covariate import CovariateConditioner
from distgen.couplings.base import Coupling
from distgen.couplings.independent import IndependentCoupling
from distgen.dynamics.diffusion import Diffusion
from distgen.dynamics.diffusion_samplers import DDIMOfficialTruncated
from distgen.dynamics.flow_matching import FlowMatching
from distgen.dynamics.noise_schedules import LinearSchedule
from distgen.dynamics.ode_solvers import RK4
from distgen.dynamics.paths import CondOTPath
from distgen.dynamics.time_samplers import UniformTime
from distgen.encoders.kme import KernelMeanEmbedding
from distgen.kernels.energy import EnergyKernel
from distgen.kernels.rbf import RBFKernel
from distgen.models.generator import Generator
from distgen.testing import checks, tiny_batch, tiny_info, tiny_table


# ---------------------------------------------------------------------------- presets by hand
def _perturbdiff_small(info, seen):
    """perturbdiff-small written out part by part, as docs/perturbdiff.md and the preset files describe it."""
    g = info.n_genes
    cond = CovariateConditioner(info, g, seen, perturbation="onehot", part_dim=32, use_context=True, use_batch=True, dim=128,
                                onehot_std=None)
    net = CrossDiT(g, cond.dim, dim=64, depth=2, heads=4, mlp_ratio=4.0, qk_norm=True, block="parallel", self_conditioning=True,
                   output="relu", time_input="step", timesteps=1000, null_condition=True, control_init="xavier",
                   token_bias="folded")
    dyn = Diffusion(schedule=LinearSchedule(1000, 1e-4, 0.02), prediction="x0", self_condition=0.5, guidance=2.0,
                    sampler=DDIMOfficialTruncated(start_step=99, eta=0.0), clip_denoised=1e-4)
    return Generator(info, net, dyn, conditioner=cond, coupling=IndependentCoupling(),
                     distribution_loss=KernelMeanEmbedding(g, kernel=EnergyKernel(), unbiased=False), distribution_weight=0.5,
                     p_drop_condition=0.5, condition_dropout="set", input_scale=0.1)


def _scdfm_small(info, seen):
    """scdfm-small written out part by part."""
    net = PADTransformer(info, seen_perturbations=seen, d_model=64, heads=4, layers=2, mlp_ratio=4, dropout=0.0,
                         attention="differential", graph=True, graph_k=20, perturbation_encoding="auto",
                         missing_perturbation_genes="extend", pool="padded_mean", gene_dropout="shared")
    dyn = FlowMatching(source="noise", path=CondOTPath(0.0), prediction="velocity", time_sampler=UniformTime(),
                       solver=RK4(5), clamp_min=0.0)
    return Generator(info, net, dyn, coupling=IndependentCoupling(),
                     distribution_loss=KernelMeanEmbedding(info.n_genes, kernel=RBFKernel(scales=[0.5, 1, 2, 4]), unbiased=True),
                     distribution_weight=0.5, genes_per_step=128, predict_genes=128)


@pytest.mark.parametrize(("preset", "by_hand"), [("perturbdiff-small", _perturbdiff_small), ("scdfm-small", _scdfm_small)])
def test_a_preset_built_by_hand_from_its_parts_is_the_registered_preset(preset, by_hand):
    """The same parameters (names, shapes, count), and with the preset's weights the same loss parts and cells."""
    info = tiny_info()
    seen = list(info.perturbations)
    registered, hand = distgen.build(preset, info, seen_perturbations=seen), by_hand(info, seen)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(hand) == shapes(registered)
    assert sum(p.numel() for p in hand.parameters()) == sum(p.numel() for p in registered.parameters())
    hand.load_state_dict(registered.state_dict())
    for m in (hand, registered):
        m.prepare(tiny_table())
    parts, cells = [], []
    for m in (hand, registered):
        m.train()
        torch.manual_seed(3)
        parts.append({k: float(v) for k, v in m.loss(tiny_batch()).parts.items()})
        m.eval()
        torch.manual_seed(5)
        b = tiny_batch()
        cells.append(m.predict(b.control, b.control_mask, b.labels))
    assert parts[0] == parts[1] and parts[0]["distribution"] != 0.0
    torch.testing.assert_close(cells[0], cells[1], rtol=0, atol=0)


# ---------------------------------------------------------------------------- couplings
class _AcrossSets(Coupling):
    """Pairs each set's targets with the source cells of another set (the sets reversed)."""

    def pair(self, x0, x1, mask):
        return x0.flip(0)


class _WritesPadding(Coupling):
    """The real cells kept, the padded positions overwritten."""

    def pair(self, x0, x1, mask):
        return torch.where(mask[..., None], x0, torch.zeros_like(x0))


class _Reverse(Coupling):
    """A within-set permutation of the real cells (a valid coupling)."""

    def pair(self, x0, x1, mask):
        out = x0.clone()
        for b in range(x0.shape[0]):
            idx = mask[b].nonzero().flatten()
            out[b, idx] = x0[b, idx.flip(0)]
        return out


def test_a_coupling_that_pairs_cells_across_sets_fails_the_cheap_checks():
    """Before: only the shape was checked, so a coupling mixing sets trained with another condition's source cells."""
    found = checks.problems("couplings", _AcrossSets())
    assert found and "within each set" in found[0]
    found = checks.problems("couplings", _WritesPadding())
    assert found and "padded" in found[0]
    assert checks.problems("couplings", _Reverse()) == []
    for name in ("independent", "exact_ot", "sinkhorn"):
        assert checks.check_component("couplings", name) == []


# ---------------------------------------------------------------------------- matchers
PLUGIN_MATCHERS = '''
import torch
from distgen.data.matching import ControlMatcher

class FewerCells(ControlMatcher):
    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None):
        return torch.arange(max(n - 1, 0))

class OutOfPool(ControlMatcher):
    def match(self, context, batch, pool_context, pool_batch, n, generator, target=None, pool_x=None):
        return torch.full((n,), len(pool_context) + 5)

class OldSignature(ControlMatcher):
    def match(self, context, n, generator):
        return torch.zeros(n, dtype=torch.long)
'''


def test_a_plugin_matcher_is_checked_when_a_data_section_or_a_sampler_names_it(plugins):
    """Before: "control_mask must be (2, 7), got (2, 8)", "index 53 is out of bounds" and an internal TypeError at the
    first batch, none naming the plugin; now PluginCheckError naming it, at load and when a sampler is built."""
    plugins.install("fake-matchers", "fake_matchers", PLUGIN_MATCHERS,
                    {"fewer": "fake_matchers:FewerCells", "out_of_pool": "fake_matchers:OutOfPool",
                     "old_signature": "fake_matchers:OldSignature"}, "distgen.matchers")
    code = """
from distgen.data.section import data_section
from distgen.data.sampler import SetSampler
from distgen.testing import tiny_table
for name in ["fewer", "out_of_pool", "old_signature", "random"]:
    for where, call in [("section", lambda: data_section({"matcher": name})),
                        ("sampler", lambda: SetSampler(tiny_table(), set_size=4, matcher=name))]:
        try:
            call()
            print("OK", name, where)
        except Exception as exc:
            print("RAISED", name, where, type(exc).__name__, str(exc).replace(chr(10), " "))
"""
    out = plugins.run(code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for name, what in [("fewer", "expected (10,)"), ("out_of_pool", "outside the control pool"), ("old_signature", "TypeError")]:
        for where in ("section", "sampler"):
            line = next(x for x in lines if x.split()[1:3] == [name, where])
            assert line.startswith("RAISED") and "PluginCheckError" in line, line
            assert f"matchers component {name!r} from plugin 'fake-matchers'" in line and what in line, line
    assert "OK random section" in lines and "OK random sampler" in lines


def test_a_misspelt_matcher_is_refused_with_the_name_it_was_probably_meant_to_be():
    """Before: "unknown matcher 'same_contxt'; available: ..." (every other misspelt name gets a suggestion)."""
    from distgen.config import ConfigError
    from distgen.data.section import data_section

    with pytest.raises(ConfigError, match=r"unknown matcher 'same_contxt'\. Did you mean 'same_context'\? Available: .*random"):
        data_section({"matcher": "same_contxt"})
    with pytest.raises(ConfigError, match=r"unknown matcher 'zzz'; available: .*random") as err:
        data_section({"matcher": "zzz"})
    assert "Did you mean" not in str(err.value)


# ---------------------------------------------------------------------------- conditioners
def _undeclared_context_conditioner():
    from distgen.conditioners.base import Conditioner, pool_slots

    class ContextRows(Conditioner):
        """An atom table plus a context table; declares nothing (embeds_contexts is False by default)."""

        def __init__(self, info, dim: int = 8) -> None:
            super().__init__()
            self.dim = dim
            self.table = torch.nn.Embedding(len(info.perturbations), dim)
            self.context = torch.nn.Embedding(len(info.contexts), dim)
            self._init_null()

        def embed(self, labels):
            ids = labels.perturbation
            return pool_slots(self.table(ids.clamp_min(0)), ids, "sum") + self.context(labels.context)

        def can_embed(self, atoms):
            return [True for _ in atoms]

    return ContextRows(tiny_info())


def test_a_conditioner_that_embeds_contexts_without_declaring_it_fails_the_cheap_checks():
    """Before: only embeds_batches was checked at first use, so a plugin's learned context rows went undeclared (the
    default), and a held-out context with data.control_sets=none, refused for onehot, was predicted from an untrained row."""
    found = checks.problems("conditioners", _undeclared_context_conditioner())
    assert found and "embeds_contexts is False" in found[0] and "only one context trains" in found[0]
    for name in ("onehot", "gene_vocab", "covariate", "embedding_table"):
        assert checks.check_component("conditioners", name) == []
        assert checks.problems("conditioners", checks.make("conditioners", name, use_context=False)) == []
    # frozen context vectors (a context table) hold no learned row per context: embeds_contexts False is right
    table = {"ctxA": [0.3, -1.2, 0.5, 0.9], "ctxB": [1.1, 0.2, -0.7, 0.4]}
    assert checks.problems("conditioners", checks.make("conditioners", "covariate", context_table=table)) == []


def _tiny_conditioner(dim: int, parts, embed):
    """A plugin-style conditioner of width ``dim``: ``parts(module)`` adds its weights, ``embed(module, labels)`` embeds."""
    from distgen.conditioners.base import Conditioner

    class Tiny(Conditioner):
        def __init__(self) -> None:
            super().__init__()
            self.dim = dim
            parts(self)
            self._init_null()

        def embed(self, labels):
            return embed(self, labels)

        def can_embed(self, atoms):
            return [True for _ in atoms]

    return Tiny()


def _frozen_context_conditioner(kind: str, seed: int = 0):
    """Frozen context vectors (a zero-shot context encoder, embeds_contexts False as the docs say) read through ReLU
    layers; or (kind "frozen_only") frozen atom vectors whose only trainable parameter is the null embedding."""
    from distgen.conditioners.base import pool_slots

    info = tiny_info()

    def parts(m):
        m.register_buffer("ctx_vec", torch.tensor([[0.3, -1.2, 0.5, 0.9], [1.1, 0.2, -0.7, 0.4]]))
        m.register_buffer("atom_vec", torch.randn(len(info.perturbations), 8))
        m.table = torch.nn.Embedding(len(info.perturbations), 8)
        m.ctx = torch.nn.Linear(4, 8)
        m.mlp = torch.nn.Sequential(torch.nn.Linear(8 + 4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
        if kind == "frozen_only":
            for p in m.parameters():
                p.requires_grad_(False)

    def embed(m, labels):
        ids = labels.perturbation
        if kind == "frozen_only":
            return pool_slots(m.atom_vec[ids.clamp_min(0)], ids, "sum")
        atoms = pool_slots(m.table(ids.clamp_min(0)), ids, "sum")
        if kind == "relu_branch":  # a context branch: frozen vector -> Linear -> ReLU
            return atoms + torch.relu(m.ctx(m.ctx_vec[labels.context]))
        return m.mlp(torch.cat([atoms, m.ctx_vec[labels.context]], -1))  # "relu_mlp"

    torch.manual_seed(seed)
    return _tiny_conditioner(8, parts, embed)


@pytest.mark.parametrize(("kind", "seed"), [("relu_branch", 0), *[("relu_mlp", s) for s in range(5)], ("frozen_only", 0)])
def test_frozen_context_vectors_read_through_relu_layers_pass_the_cheap_checks(kind, seed):
    """An earlier check judged "a learned row per context" by which entries got a gradient at the
    initial weights, so a ReLU unit off for one context counted as that context's row, and a plugin that reads frozen
    context vectors through ReLU layers, declaring embeds_contexts False as the docs say, was refused (relu_branch, and
    relu_mlp for 3 of 5 seeds); a conditioner whose only trainable parameter is the unused null embedding was refused
    with "raised RuntimeError: element 0 of tensors does not require grad"."""
    assert checks.problems("conditioners", _frozen_context_conditioner(kind, seed)) == []


def test_learned_context_rows_read_through_relu_layers_still_fail_the_cheap_checks():
    """The refusal the composition round added still holds when the learned rows are read through ReLU layers."""
    info = tiny_info()

    def parts(m):
        m.context = torch.nn.Embedding(len(info.contexts), 8)
        m.mlp = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU())

    def embed(m, labels):
        return m.mlp(m.context(labels.context)) + labels.perturbation.clamp_min(0).sum(1, keepdim=True).float()

    for seed in range(3):
        torch.manual_seed(seed)
        found = checks.problems("conditioners", _tiny_conditioner(8, parts, embed))
        assert found and "embeds_contexts is False" in found[0], seed


# ---------------------------------------------------------------------------- dynamics
def _wrapped_flow_matching(detach: bool):
    from distgen.dynamics.base import Dynamics

    class Wrapped(Dynamics):
        """Flow matching with its loss doubled, by composition (a plugin's way to change a built-in)."""

        def __init__(self) -> None:
            self.inner = FlowMatching(solver={"name": "euler", "steps": 2})

        def draw_source(self, x1, control):
            return self.inner.draw_source(x1, control)

        def loss(self, field, x1, mask, source, coupling):
            out = self.inner.loss(field, x1, mask, source, coupling)
            out.loss = 2 * out.loss
            if detach:
                out.extras["x1_hat"] = out.extras["x1_hat"].detach()
            return out

        def sample(self, field, x0, mask):
            return self.inner.sample(field, x0, mask)

    return Wrapped()


def test_a_dynamics_whose_data_estimate_carries_no_gradient_fails_the_cheap_checks():
    """Before: a plugin dynamics returning extras['x1_hat'] detached trained with scdfm's distribution loss computed,
    logged and training nothing (the same loss values, distribution_weight an inert ablation), without a word."""
    found = checks.problems("dynamics", _wrapped_flow_matching(detach=True))
    assert found and "x1_hat" in found[0] and "gradient" in found[0]
    assert checks.problems("dynamics", _wrapped_flow_matching(detach=False)) == []
    for name in ("flow_matching", "diffusion"):
        assert checks.check_component("dynamics", name) == []


@pytest.mark.parametrize(("kind", "name"), [("dynamics", "flow_matching"), ("dynamics", "diffusion"), ("conditioners", "onehot"),
                                            ("conditioners", "covariate")])
def test_the_cheap_checks_pass_a_good_component_first_built_under_inference_mode(kind, name):
    """The gradient checks (x1_hat, context rows) read no gradient under torch.inference_mode,
    so a plugin dynamics or conditioner first built there (distgen.load_run inside a notebook's inference block) was
    refused: "x1_hat carries no gradient", "embeds_contexts is True but ... no learned parameters"."""
    with torch.inference_mode():
        assert checks.check_component(kind, name) == []


def test_a_conditioner_that_needs_its_weights_in_range_passes_the_context_rows_check():
    """The context-rows check reads gradients at random weights around the initial ones too; a
    conditioner that refuses weights out of its range there (a Cholesky factor of a learned covariance) must not be
    refused for what its own weights never are."""
    from distgen.conditioners.base import pool_slots

    info = tiny_info()

    def parts(m):
        m.table = torch.nn.Embedding(len(info.perturbations), 4)
        m.cov = torch.nn.Parameter(torch.eye(4))

    def embed(m, labels):
        ids = labels.perturbation
        return pool_slots(m.table(ids.clamp_min(0)), ids, "sum") @ torch.linalg.cholesky(m.cov).T

    torch.manual_seed(0)
    assert checks.problems("conditioners", _tiny_conditioner(4, parts, embed)) == []
