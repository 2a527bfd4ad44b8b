"""Assembly rejects component combinations that cannot work, with the reason, before any compute."""


import pytest
import torch
from torch import nn

from distgen.backbones.base import Backbone, Condition
from distgen.capabilities import BackboneCapabilities, EncoderCapabilities
from distgen.config import build_component
from distgen.encoders.base import Encoder
from distgen.models.generator import AssemblyError, Generator
from distgen.testing.fixtures import tiny_batch, tiny_info

INFO = tiny_info()


def _build(kind, node, **kw):
    torch.manual_seed(0)
    return build_component(kind, node, info=INFO, n_genes=INFO.n_genes, seen_perturbations=None, **kw)


class GeneWise(Backbone):
    """Test backbone: per-gene affine map; any gene subset; optional gene tokens and declarations."""

    capabilities = BackboneCapabilities(gene_subsampling=True)

    def __init__(self, cond_dim: int = 8, population_dim: int = 0, caps: dict | None = None, gene_tokens: int = 0) -> None:
        super().__init__()
        if caps:
            self.capabilities = type(self).capabilities.replace(**caps)
        self.population_dim = population_dim
        self.a = nn.Parameter(torch.ones(1))
        self.cond = nn.Linear(cond_dim + population_dim, 1)
        if gene_tokens:
            self.gene_embedding = nn.Embedding(INFO.n_genes, gene_tokens)
            self.gene_head = nn.Linear(gene_tokens, 1)

    def forward(self, x_t, t, cond: Condition):
        c = [cond.embedding] + ([cond.population] if cond.population is not None else [])
        out = self.a * x_t + t[..., None] + self.cond(torch.cat(c, -1))[:, None, :]
        if hasattr(self, "gene_embedding"):
            out = out + self.gene_head(self.gene_embedding(cond.gene_ids))[:, 0]
        return out


def _model(backbone=None, dynamics=None, conditioner=None, **kw) -> Generator:
    cond = conditioner or _build("conditioners", {"name": "onehot", "dim": 8})
    pop = kw.get("population_encoder")
    bb = backbone or _build("backbones", {"name": "mlp", "hidden": 8, "depth": 1}, cond_dim=8, population_dim=pop.dim if pop else 0)
    dyn = dynamics or _build("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}})
    return Generator(info=INFO, conditioner=cond, backbone=bb, dynamics=dyn, **kw)


def _enc(name, **p):
    return _build("encoders", {"name": name, "dim": 4, "hidden": 8, "heads": 2, "layers": 1, "n_inducing": 2, **p} if name == "set_transformer" else {"name": name, **p})


def test_a_valid_population_condition_assembles_and_trains():
    m = _model(population_encoder=_enc("set_transformer"))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in m.population_encoder.parameters()]
    m.train()
    for _ in range(2):
        loss = m.loss(tiny_batch()).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.population_encoder.parameters()))


def test_population_width_mismatch_is_rejected_with_the_fix():
    bb = _build("backbones", {"name": "mlp", "hidden": 8, "depth": 1}, cond_dim=8, population_dim=0)
    with pytest.raises(AssemblyError, match=r"population_dim=0 but population_encoder SetTransformerEncoder has dim=4.*from_config"):
        _model(backbone=bb, population_encoder=_enc("set_transformer"))


def test_population_output_kind_mismatch():
    class TokenEncoder(Encoder):
        """Outputs a set of tokens."""

        capabilities = EncoderCapabilities(output_kind="tokens")

        def __init__(self) -> None:
            super().__init__()
            self.dim = 4

        def forward(self, cells, mask):
            return cells[..., :4]

    with pytest.raises(AssemblyError, match="outputs 'tokens' but backbone GeneWise takes a 'vector' population"):
        _model(backbone=GeneWise(population_dim=4), population_encoder=TokenEncoder())


def test_population_encoder_built_for_another_gene_panel():
    enc = build_component("encoders", {"name": "deepsets", "dim": 4, "hidden": 8, "depth": 1}, n_genes=7)
    with pytest.raises(AssemblyError, match="built for 7 genes but the data has 12"):
        _model(backbone=GeneWise(population_dim=4), population_encoder=enc)


def test_trainable_distribution_loss_is_rejected_frozen_accepted():
    with pytest.raises(AssemblyError, match=r"trainable parameters.*frozen: true"):
        _model(distribution_loss=_enc("set_transformer"), distribution_weight=0.1)
    m = _model(distribution_loss=_enc("set_transformer", frozen=True), distribution_weight=0.1)
    out = m.loss(tiny_batch())
    assert "distribution" in out.parts and torch.isfinite(out.loss)


def test_fixed_panel_distribution_loss_with_gene_subsampling_is_rejected():
    with pytest.raises(AssemblyError, match="genes_per_step=5 trains on gene subsets; use a kernel mean embedding"):
        _model(backbone=GeneWise(), distribution_loss=_enc("deepsets", frozen=True), distribution_weight=1.0, genes_per_step=5)
    # kme works on any gene subset
    _model(backbone=GeneWise(), distribution_loss=_enc("kme", kernel={"name": "rbf"}), distribution_weight=1.0, genes_per_step=5)


def test_population_condition_sees_the_full_panel_under_gene_subsampling():
    m = _model(backbone=GeneWise(population_dim=4), population_encoder=_enc("set_transformer"), genes_per_step=5)
    m.train()
    out = m.loss(tiny_batch())  # the set transformer reads 12 genes although the step trains on 5
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("weight", [-1.0, -1e-3, float("nan")])
def test_negative_distribution_weight_is_refused(weight):
    with pytest.raises(AssemblyError, match=r"distribution_weight=.*must be >= 0.*model.distribution_weight: 0"):
        _model(distribution_loss=_enc("kme", kernel={"name": "rbf"}), distribution_weight=weight)
    _model(distribution_loss=_enc("kme", kernel={"name": "rbf"}), distribution_weight=0.0)


def test_self_conditioning_dynamics_needs_a_backbone_that_takes_it():
    dyn = _build("dynamics", {"name": "diffusion", "self_condition": 0.5, "schedule": {"name": "linear", "timesteps": 100},
                              "sampler": {"name": "ddim", "steps": 2}})
    with pytest.raises(AssemblyError, match=r"self-conditioning.*enable it on the backbone \(model\.backbone\.self_conditioning=true\) "
                                            r"or train without it \(model\.dynamics\.self_condition=0\)"):
        _model(dynamics=dyn)
    bb = _build("backbones", {"name": "mlp", "hidden": 8, "depth": 1, "self_conditioning": True}, cond_dim=8, population_dim=0)
    _model(backbone=bb, dynamics=dyn)


def test_a_self_conditioning_backbone_needs_a_dynamics_that_feeds_it():
    """The reverse mismatch: the backbone's previous-estimate input would always be zeros (silently, before)."""
    sc = _build("backbones", {"name": "mlp", "hidden": 8, "depth": 1, "self_conditioning": True}, cond_dim=8, population_dim=0)
    with pytest.raises(AssemblyError, match=r"backbone MLPBackbone takes the previous data estimate.*dynamics FlowMatching does not "
                                            r"self-condition.*model\.backbone\.self_conditioning=false\)$"):
        _model(backbone=sc)
    off = _build("dynamics", {"name": "diffusion", "self_condition": 0.0, "schedule": {"name": "linear", "timesteps": 100},
                              "sampler": {"name": "ddim", "steps": 2}})
    with pytest.raises(AssemblyError, match=r"Diffusion does not self-condition \(self_condition=0.0\).*self_conditioning=false\) "
                                            r"or train with self-conditioning \(model\.dynamics\.self_condition > 0"):
        _model(backbone=sc, dynamics=off)
    with pytest.raises(AssemblyError, match=r"backbone CrossDiT takes the previous data estimate"):  # cross_dit's default
        _model(backbone=_build("backbones", {"name": "cross_dit", "dim": 8, "depth": 1, "heads": 2, "output": "identity"},
                               cond_dim=8, population_dim=0))
    with pytest.raises(AssemblyError, match=r"GeneWise takes the previous data estimate.*use a backbone that does not take one"):
        _model(backbone=GeneWise(caps={"self_conditioning": True}))  # declared, with no parameter to turn it off
    plain = _build("backbones", {"name": "mlp", "hidden": 8, "depth": 1, "self_conditioning": False}, cond_dim=8, population_dim=0)
    _model(backbone=plain)
    _model(backbone=plain, dynamics=off)


def test_a_step_time_backbone_must_count_the_schedule_steps():
    """Cross-DiT with time_input: step maps t to steps of its own T: with a 50-step schedule and T = 1000 step 10 would
    reach the network as step ~209 (silently, before)."""

    def dit(**p):
        node = {"name": "cross_dit", "dim": 8, "depth": 1, "heads": 2, "output": "identity", "self_conditioning": False, **p}
        return _build("backbones", node, cond_dim=8, population_dim=0)

    def diffusion(timesteps):
        return _build("dynamics", {"name": "diffusion", "schedule": {"name": "cosine", "timesteps": timesteps},
                                   "sampler": {"name": "ddim", "steps": 3}})

    with pytest.raises(AssemblyError, match=r"timesteps: 1000\).*schedule has timesteps=50.*model\.backbone\.timesteps=50"):
        _model(backbone=dit(), dynamics=diffusion(50))
    _model(backbone=dit(timesteps=50), dynamics=diffusion(50))
    _model(backbone=dit(), dynamics=diffusion(1000))
    _model(backbone=dit(time_input="scaled"), dynamics=diffusion(50))  # reads t itself
    _model(backbone=dit(timesteps=50))  # flow matching has no chain: the step only scales t


def test_clip_denoised_is_checked_against_the_training_values():
    """The cutoff zeroes every estimate below it: 100 gave all-zero predictions, silently."""
    import warnings

    from distgen.testing.fixtures import tiny_table

    train = tiny_table()
    x = train.X
    nonzero = x[x != 0]

    def model(clip, input_scale=1.0):
        dyn = _build("dynamics", {"name": "diffusion", "prediction": "x0", "clip_denoised": clip,
                                  "schedule": {"name": "linear", "timesteps": 100}, "sampler": {"name": "ddim", "steps": 2}})
        return _model(dynamics=dyn, input_scale=input_scale)

    with pytest.raises(AssemblyError, match=r"clip_denoised=100 .*largest training value is .*every generated value would be 0"):
        model(100.0).prepare(train)
    with pytest.raises(AssemblyError, match="every generated value would be 0"):  # model units: expression x input_scale
        model(float(x.max()) * 0.2, input_scale=0.1).prepare(train)
    median = float(nonzero.median())  # zeroes about half of the real values
    with pytest.warns(UserWarning, match=r"deletes (4\d|5\d)\.\d % of the non-zero training values"):
        model(median).prepare(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(1e-4).prepare(train)  # PerturbDiff's cutoff: below every non-zero value
        model(float(nonzero.min()) * 0.99).prepare(train)
    with pytest.raises(ValueError, match=r"clip_denoised=-0.5.*must be a small number >= 0.*clip_denoised: null"):
        model(-0.5)


def test_guidance_needs_condition_dropout():
    dyn = _build("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}, "guidance": 2.0})
    with pytest.raises(AssemblyError, match=r"guidance=2.0.*p_drop_condition > 0"):
        _model(dynamics=dyn)
    _model(dynamics=dyn, p_drop_condition=0.1)


def test_nonnegative_head_cannot_predict_velocity():
    with pytest.raises(AssemblyError, match=r"non-negative output head.*'velocity'"):
        _model(backbone=GeneWise(caps={"output_range": "nonnegative"}))


def test_declared_requirements_both_ways():
    needs = {"requires_dynamics": {"signed_prediction": False}}  # e.g. a backbone made for sample prediction
    with pytest.raises(AssemblyError, match="backbone GeneWise requires dynamics FlowMatching capability signed_prediction=False"):
        _model(backbone=GeneWise(caps=needs))
    ok = _build("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}, "prediction": "endpoint"})
    _model(backbone=GeneWise(caps=needs), dynamics=ok)
    with pytest.raises(AssemblyError, match="capability 'sources_of_truth', which DynamicsCapabilities does not have"):
        _model(backbone=GeneWise(caps={"requires_dynamics": {"sources_of_truth": 1}}))


def test_all_reasons_are_reported_together():
    dyn = _build("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}, "guidance": 3.0})
    with pytest.raises(AssemblyError) as err:
        _model(backbone=GeneWise(caps={"output_range": "nonnegative"}), dynamics=dyn)
    assert "guidance" in str(err.value) and "non-negative" in str(err.value)


def test_every_reason_of_a_swap_is_given_at_once_with_its_fix():
    """The component-matrix walk (benchmarks/component_matrix.py, 2026-12-06): `model.backbone.name=cross_dit` on scdfm-small
    was refused for the missing conditioner only; once that was added, for genes_per_step ("needs a backbone that supports
    gene subsampling; CrossDiT does not", no fix named); then for predict_genes. `model.backbone.name=pad_transformer` on
    perturbdiff-small: for the conditioner, then for self-conditioning, told to "enable self_conditioning on the backbone",
    which PADTransformer cannot. Each refusal now holds every reason, each naming a fix that exists."""
    from distgen.config import load_config
    from distgen.models.generator import build_model

    with pytest.raises(AssemblyError) as err:
        build_model(load_config("scdfm-small", ["model.backbone.name=cross_dit"])["model"], INFO)
    text = str(err.value)
    assert "add a conditioner" in text
    assert "genes_per_step=128 needs a backbone that supports gene subsampling; CrossDiT does not: set model.genes_per_step: null" in text
    assert "predict_genes=128" in text and "model.predict_genes: null" in text and "(pad_transformer)" in text
    assert "nothing in this model reads the perturbation" not in text  # the missing embedding already says it
    with pytest.raises(AssemblyError) as err:
        build_model(load_config("perturbdiff-small", ["model.backbone.name=pad_transformer"])["model"], INFO)
    text = str(err.value)
    assert "use_condition_embedding: true" in text
    assert "backbone PADTransformer does not take the previous estimate; use a backbone that takes it (cross_dit, mlp) or train " \
           "without it (model.dynamics.self_condition=0)" in text
    fixed = ["model.backbone.name=pad_transformer", "model.backbone.use_condition_embedding=true", "model.dynamics.self_condition=0",
             "model.backbone.d_model=8", "model.backbone.heads=2", "model.backbone.layers=1", "model.backbone.graph_k=2"]
    assert build_model(load_config("perturbdiff-small", fixed)["model"], INFO) is not None  # following the fixes assembles


def test_gene_vocab_is_tied_to_backbone_gene_tokens():
    cond = _build("conditioners", {"name": "gene_vocab", "dim": 8}, )
    cond.seen = frozenset({"G0"})
    assert cond.can_embed(["G0", "G3"]) == [True, False]
    m = _model(backbone=GeneWise(gene_tokens=6), conditioner=cond)
    assert m.conditioner.tied
    assert m.can_predict(["G0", "G3", "NOT_A_GENE"]) == [True, True, False]
    # one table, owned by the backbone: it appears once in the model's parameters and state
    assert sum(p is m.backbone.gene_embedding.weight for p in m.parameters()) == 1
    assert not [k for k in m.state_dict() if k.startswith("conditioner.own")]
    m.loss(tiny_batch()).loss.backward()
    assert m.backbone.gene_embedding.weight.grad is not None


def test_population_encoder_with_a_backbone_that_ignores_it_is_rejected():
    class NoPopulation(Backbone):
        """Reads only the embedding."""

        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 1)

        def forward(self, x_t, t, cond):
            return x_t + self.lin(cond.embedding)[:, None, :]

    with pytest.raises(AssemblyError, match=r"does not read Condition.population.*would be computed and ignored"):
        _model(backbone=NoPopulation(), population_encoder=_enc("set_transformer"))


def test_pad_transformer_takes_a_population_condition_and_ties_gene_vocab():
    from distgen.models.generator import build_model

    node = {
        "name": "generator",
        "conditioner": {"name": "gene_vocab", "dim": 8},
        "backbone": {"name": "pad_transformer", "d_model": 16, "heads": 2, "layers": 1, "graph": False, "dropout": 0.0,
                     "use_condition_embedding": True},
        "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}},
        "population_encoder": {"name": "set_transformer", "dim": 4, "hidden": 8, "heads": 2, "layers": 1, "n_inducing": 2},
    }
    torch.manual_seed(0)
    m = build_model(node, INFO, seen_perturbations=["G0", "G1"])
    assert m.conditioner.tied and m.backbone.population_dim == 4
    assert m.can_predict(["G0", "G3", "NOT_A_GENE"]) == [True, True, False]
    out = m.loss(tiny_batch())
    out.loss.backward()
    assert m.backbone.pop_proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.population_encoder.parameters())


def test_a_backbone_returning_the_wrong_shape_is_named():
    class Short(GeneWise):
        """Drops a gene."""

        def forward(self, x_t, t, cond):
            return super().forward(x_t, t, cond)[..., :-1]

    m = _model(backbone=Short())
    with pytest.raises(ValueError, match=r"backbone .*Short .* returned shape \(3, 6, 11\) for x_t of shape \(3, 6, 12\)"):
        m.loss(tiny_batch())


def test_self_conditioning_reaches_only_a_backbone_that_takes_it():
    seen = []

    class Records(GeneWise):
        """Takes the previous estimate."""

        capabilities = BackboneCapabilities(gene_subsampling=True, self_conditioning=True)

        def forward(self, x_t, t, cond, *, x_self_cond=None):
            seen.append(x_self_cond)
            return super().forward(x_t, t, cond)

    dyn = _build("dynamics", {"name": "diffusion", "self_condition": 1.0, "schedule": {"name": "linear", "timesteps": 100},
                              "sampler": {"name": "ddim", "steps": 3}, "prediction": "x0"})
    m = _model(backbone=Records(), dynamics=dyn)
    m.loss(tiny_batch())
    assert seen[0] is None and seen[1] is not None  # the no-grad first pass, then the estimate
    seen.clear()
    b = tiny_batch()
    m.predict(b.control, b.control_mask, b.labels)
    assert seen[0] is None and all(s is not None for s in seen[1:]) and len(seen) == 3
    plain = _model(backbone=GeneWise())  # flow matching: the plain backbone is never offered an estimate
    plain.loss(tiny_batch())


def test_kme_parameters_its_role_never_reads_are_refused():
    # a distribution loss uses only the exact MMD (distance), a population encoder only the explicit features (forward)
    with pytest.raises(AssemblyError, match=r"distribution_loss KernelMeanEmbedding was given features, which has no effect.*"
                                             r"remove model\.distribution_loss\.features"):
        _model(distribution_loss=_enc("kme", kernel={"name": "rbf"}, features=64), distribution_weight=0.5)
    with pytest.raises(AssemblyError, match="distribution_loss KernelMeanEmbedding was given seed"):
        _model(distribution_loss=_enc("kme", seed=3), distribution_weight=0.5)
    with pytest.raises(AssemblyError, match="population_encoder KernelMeanEmbedding was given unbiased, which has no effect"):
        _model(population_encoder=_enc("kme", kernel={"name": "rbf"}, features=8, unbiased=False))
    # each role keeps its own parameters; left out, the distance is the unbiased estimator as before
    _model(distribution_loss=_enc("kme", kernel={"name": "rbf"}, unbiased=False), distribution_weight=0.5)
    _model(population_encoder=_enc("kme", kernel={"name": "rbf"}, features=8, feature_map="rff", seed=1))
    assert _enc("kme").unbiased is True and _enc("kme").dim == 256


def test_batch_condition_dropout_without_dropout_is_refused():
    with pytest.raises(AssemblyError, match=r"condition_dropout='batch'.*p_drop_condition is 0.*no effect"):
        _model(condition_dropout="batch")
    assert _model(condition_dropout="batch", p_drop_condition=0.1).condition_dropout == "batch"


def test_a_model_in_which_nothing_reads_the_perturbation_is_refused():
    """No conditioner and a backbone that does not tokenise perturbations: every condition gets the same prediction.
    It was assembled, then the pre-flight recursed without end (RecursionError: can_predict asked the model itself)."""

    class ControlsOnly(Backbone):
        """Reads the control cells only."""

        requires = frozenset({"control"})

        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.ones(1))

        def forward(self, x_t, t, cond):
            return self.a * x_t + t[..., None]

    dyn = _build("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}})
    with pytest.raises(AssemblyError, match=r"nothing in this model reads the perturbation.*add a conditioner"):
        Generator(info=INFO, conditioner=None, backbone=ControlsOnly(), dynamics=dyn)


def test_a_backbone_that_declares_embedding_perturbations_must_say_which():
    """embeds_perturbations without can_embed: the pre-flight fell back to the model's can_predict, which asked the parts
    again (RecursionError)."""

    class Claims(GeneWise):
        """Claims to tokenise perturbations, has no can_embed."""

        requires = frozenset({"control", "labels"})

    net = Claims(caps={"embeds_perturbations": True})
    dyn = _build("dynamics", {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}})
    with pytest.raises(AssemblyError, match="declares embeds_perturbations but has no can_embed"):
        Generator(info=INFO, conditioner=None, backbone=net, dynamics=dyn)


def test_the_default_coupling_is_named_in_the_resolved_config():
    """A generator without a coupling node was resolved (a run's config.yaml) with `coupling: null`, naming no coupling
    although it pairs cells independently (component-matrix walk, 2026-12-06). The default is the independent coupling
    itself; null, as runs saved before wrote it, still builds it, as does leaving it out in Python."""
    from distgen.config import resolve_node
    from distgen.couplings.independent import IndependentCoupling
    from distgen.models.generator import build_model

    node = {"name": "generator", "conditioner": {"name": "onehot", "dim": 8}, "backbone": {"name": "mlp", "hidden": 8, "depth": 1},
            "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 1}}}
    assert resolve_node("models", node)["coupling"] == {"name": "independent"}
    assert isinstance(build_model({**node, "coupling": None}, INFO).coupling, IndependentCoupling)
    assert isinstance(_model().coupling, IndependentCoupling)
    assert type(_model(coupling="sinkhorn").coupling).__name__ == "SinkhornCoupling"
