"""The assembled generator: conditioner + backbone + dynamics + coupling (+ encoders).

Every generative model in distgen, PerturbDiff and scDFM included, is this class with different
components. Assembly checks that the components can work together before any compute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from distgen.backbones.base import Backbone, Condition
from distgen.capabilities import ModelCapabilities
from distgen.conditioners.base import Conditioner
from distgen.config import ConfigError, Node, as_component, build_component, validate_node
from distgen.couplings.base import Coupling
from distgen.couplings.independent import IndependentCoupling
from distgen.dynamics.base import Dynamics, Field
from distgen.encoders.base import Encoder
from distgen.errors import warn
from distgen.models.anchor import ANCHOR_REFERENCES, ANCHORS, Anchor, control_mean
from distgen.models.assembly import (
    capability_problems,
    clip_denoised_problems,
    supports_unseen_perturbations,
    tie_gene_embeddings,
)
from distgen.models.base import PerturbationModel, TrainableModel, models
from distgen.types import CellTable, ConditionLabels, DataInfo, LossOutput, SetBatch
from distgen.wording import first_of

#: What one classifier-free condition-dropout draw covers in training (``Generator.condition_dropout``).
CONDITION_DROPOUTS = ("set", "batch")

class AssemblyError(ConfigError):
    """Components that cannot work together; raised before any compute."""


class Generator(nn.Module, TrainableModel):
    """A conditional generative model of cell populations, assembled from components.

    Parameters
    ----------
    info
        Dataset vocabularies (injected).
    backbone, dynamics
        The network and the generative dynamics (config nodes in a config, objects in Python).
    conditioner
        Embeds the condition labels for the backbone; None (left out of the config) for a
        backbone that reads no embedding (one that tokenises perturbations itself, e.g. scDFM's
        PAD-Transformer). A conditioner the backbone would not read is rejected at assembly.
    coupling
        Pairing of source and target cells within a set (default: independent, named so in a run's
        resolved config; null, as runs saved before wrote it, is the same).
    population_encoder
        Optional encoder of the control population; its embedding conditions the backbone.
    distribution_loss
        Optional encoder whose ``distance`` between the one-step data estimate and the real set is
        added to the loss with ``distribution_weight`` (scDFM: RBF-MMD, PerturbDiff: energy).
    distribution_weight
        Weight of the distribution term (gamma in scDFM, lambda in PerturbDiff); >= 0, 0 leaves it out.
    p_drop_condition
        Probability of replacing the condition by the null embedding in training
        (classifier-free guidance).
    condition_dropout
        What one condition-dropout draw covers: ``"set"`` (default: each set of a batch is dropped
        on its own) or ``"batch"`` (one draw per training step drops every set of the batch or none,
        as PerturbDiff's official ``training_losses`` does per micro-batch; refused with
        ``p_drop_condition: 0``, where nothing is dropped).
    genes_per_step
        Random gene columns kept per training step (scDFM: 1000); None keeps all.
    predict_genes
        Generate at most this many genes per sampling run, in random chunks (scDFM: 1000, its
        training sequence length); None generates the whole panel in one run.
    input_scale
        Multiply expression by this before the dynamics (PerturbDiff: 0.1), divide outputs back.
    anchor
        What the dynamics model the cells relative to: ``"none"`` (the cells, default),
        ``"control_mean"`` (each set's cells minus the mean of its control set, added back after
        sampling: the network learns the response and the spread around the control population,
        whose own profile, e.g. an unseen cell type's, reaches the output without passing through
        the network) or ``"additive"`` (the control mean plus the sum of the condition's per-atom
        effects, each the additive baseline's effect of that atom applied alone in the training cells,
        averaged over contexts: for a combination whose atoms were all seen alone the anchor is the
        additive baseline's mean, and the network learns the interaction and the spread; an atom never
        seen alone in training adds nothing and predicting it warns). ``"additive"`` fits its effects in
        ``prepare(train)`` (``distgen.train.fit`` calls it) and keeps them in the checkpoint (buffer
        ``anchor.effects`` of the ``distgen.models.anchor.Anchor`` module). With a control source
        (``flow_matching`` ``source: control``) the source cells are the control cells minus their
        mean, so a transport that does not move
        them predicts the anchor plus the controls' spread (for ``"additive"``: the additive
        baseline's cells). Needs a backbone with a signed output, no ``clip_denoised`` and no ``clamp_min``.
    anchor_reference
        Which control mean the anchor starts from: ``"set"`` (default: each set's own control cells'
        mean) or ``"training"`` (the mean of all training control cells of the set's context, fitted
        in ``prepare(train)`` and kept in the checkpoint as buffer ``anchor.control``: a set of a few
        dozen control cells carries its sampling noise in its mean, and with ``"set"`` that noise moves
        every generated cell of the set). A context with no control cells in training falls back to
        its set's mean (predicting it warns). A control source is always the control cells minus
        their own set's mean, so the anchor alone places the generated cells. Needs an anchor.
    """

    #: Whether unseen perturbations can be predicted depends on the parts that embed perturbations
    #: (the conditioner, or a backbone with its own perturbation tokens); a built model resolves it.
    capabilities = ModelCapabilities(supports_unseen_perturbations=None)
    example_params: ClassVar[dict[str, Any]] = {
        "conditioner": {"name": "onehot", "dim": 8},
        "backbone": {"name": "mlp", "hidden": 32, "depth": 1},
        "dynamics": {"name": "flow_matching", "solver": {"name": "euler", "steps": 2}},
        "coupling": {"name": "independent"},
    }
    example_fit_kwargs: ClassVar[dict[str, Any]] = {"steps": 2, "set_size": 4}

    def __init__(
        self,
        info: DataInfo,
        backbone: Backbone,
        dynamics: Dynamics,
        conditioner: Conditioner | None = None,
        coupling: Coupling | Node | None = "independent",
        population_encoder: Encoder | None = None,
        distribution_loss: Encoder | None = None,
        distribution_weight: float = 0.0,
        p_drop_condition: float = 0.0,
        condition_dropout: str = "set",
        genes_per_step: int | None = None,
        input_scale: float = 1.0,
        predict_genes: int | None = None,
        anchor: str = "none",
        anchor_reference: str = "set",
    ) -> None:
        super().__init__()
        self.info = info
        self.conditioner = conditioner
        self.backbone = backbone
        self.dynamics = dynamics
        self.coupling = IndependentCoupling() if coupling is None else as_component("couplings", coupling)
        self.population_encoder = population_encoder
        self.distribution_loss = distribution_loss
        self.distribution_weight = float(distribution_weight)
        self.p_drop_condition = float(p_drop_condition)
        self.condition_dropout = condition_dropout
        self.genes_per_step = genes_per_step
        self.input_scale = float(input_scale)
        self.predict_genes = predict_genes
        self.anchor = Anchor(info, anchor, anchor_reference)  # its fitted state (prepare) is saved with the weights
        self.last_nfe = 0
        tie_gene_embeddings(self)
        check_assembly(self)
        self.capabilities = ModelCapabilities(supports_unseen_perturbations=supports_unseen_perturbations(self))

    # ------------------------------------------------------------------ assembly
    @classmethod
    def from_config(
        cls, node: Mapping[str, Any], info: DataInfo, seen_perturbations: Sequence[str] | None = None, **injected: Any
    ) -> Generator:
        """Build from a config node, injecting data-dependent sizes in dependency order."""
        validate_node("models", node)
        inj: dict[str, Any] = {"info": info, "n_genes": info.n_genes, "seen_perturbations": seen_perturbations, **injected}
        cond_node = node.get("conditioner")
        conditioner = build_component("conditioners", cond_node, **inj) if cond_node else None
        pop = node.get("population_encoder")
        population_encoder = build_component("encoders", pop, **inj) if pop else None
        dist = node.get("distribution_loss")
        distribution_loss = build_component("encoders", dist, **inj) if dist else None
        backbone = build_component(
            "backbones",
            node["backbone"],
            cond_dim=conditioner.dim if conditioner is not None else 0,
            population_dim=population_encoder.dim if population_encoder is not None else 0,
            **inj,
        )
        params = {k: v for k, v in node.items() if k not in {"name", "conditioner", "backbone", "dynamics", "coupling", "population_encoder", "distribution_loss"}}
        return cls(
            info=info,
            conditioner=conditioner,
            backbone=backbone,
            dynamics=build_component("dynamics", node["dynamics"], **inj),
            coupling=build_component("couplings", node.get("coupling") or {"name": "independent"}, **inj),
            population_encoder=population_encoder,
            distribution_loss=distribution_loss,
            **params,
        )

    # ------------------------------------------------------------------ conditioning
    def condition(
        self,
        labels: ConditionLabels,
        control: Tensor,
        control_mask: Tensor,
        gene_ids: Tensor,
        drop: Tensor | None = None,
        population: Tensor | None = None,
    ) -> Condition:
        """The backbone's ``Condition`` for ``B`` sets (``drop`` [B] bool selects the null embedding).

        ``population`` overrides the population encoder's embedding of ``control`` (``loss`` passes
        the embedding of the full gene panel when it trains on a gene subset).
        """
        if population is None and self.population_encoder is not None:
            population = self.population_encoder(control, control_mask)
        return Condition(
            gene_ids=gene_ids,
            embedding=self.conditioner(labels, drop) if self.conditioner is not None else None,
            control=control,
            control_mask=control_mask,
            population=population,
            labels=labels,
            drop=drop,
        )

    def bind(self, cond: Condition, uncond: Condition | None = None) -> Field:
        """The backbone with ``cond`` bound (``uncond`` used when the dynamics asks for it).

        A previous estimate ``x_self_cond`` reaches only a backbone that self-conditions (assembly
        rejects a self-conditioning dynamics with any other backbone).
        """

        def field(x_t: Tensor, t: Tensor, *, x_self_cond: Tensor | None = None, uncond: bool = False) -> Tensor:
            if uncond and null is None:
                raise RuntimeError("unconditional prediction requested but no null condition was bound")
            c = null if uncond else cond
            assert c is not None
            out = self.backbone(x_t, t, c, x_self_cond=x_self_cond) if x_self_cond is not None else self.backbone(x_t, t, c)
            if out.shape != x_t.shape:
                bb = type(self.backbone)
                raise ValueError(
                    f"backbone {bb.__qualname__} (module {bb.__module__}) returned shape {tuple(out.shape)} for x_t of shape "
                    f"{tuple(x_t.shape)}; a backbone must return the shape of x_t"
                )
            return out  # type: ignore[no-any-return]

        null = uncond
        bb = self.backbone
        if null is not None and bb.capabilities.independent_sets and "labels" not in bb.requires:
            pair: list[Condition] = []  # the two conditions stacked along sets, built once per bind

            def both(x_t: Tensor, t: Tensor, *, x_self_cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
                if not pair:
                    assert null is not None
                    pair.append(stack_conditions(cond, null))
                kw: dict[str, Any] = {} if x_self_cond is None else {"x_self_cond": x_self_cond}
                if bb.capabilities.input_copies:  # the noisy cells are projected once for both
                    out = bb(x_t, t, pair[0], copies=2, **kw)
                else:
                    kw = {k: torch.cat([v, v]) for k, v in kw.items()}
                    out = bb(torch.cat([x_t, x_t]), torch.cat([t, t]), pair[0], **kw)
                if out.shape[1:] != x_t.shape[1:] or out.shape[0] != 2 * x_t.shape[0]:
                    raise ValueError(f"backbone {type(bb).__qualname__} returned shape {tuple(out.shape)} for a stacked x_t of "
                                     f"shape {(2 * x_t.shape[0], *x_t.shape[1:])}")
                return out[: x_t.shape[0]], out[x_t.shape[0]:]

            field.both = both  # type: ignore[attr-defined]
        return field  # type: ignore[return-value]

    # ------------------------------------------------------------------ training
    def loss(self, batch: SetBatch) -> LossOutput:
        """Training loss on a set batch: the dynamics' objective plus the distribution term."""
        population = None
        if self.genes_per_step is not None and self.genes_per_step < batch.shape[2] and self.training:
            if self.population_encoder is not None:  # the population condition always sees the full panel
                population = self.population_encoder(batch.control * self.input_scale, batch.control_mask)
            # drawn on the host when it knows the batch's ids (the batch was made on the CPU): the backbone then sizes
            # its token lists from the host's copy; on a CPU-made batch the draws are those of the CPU generator as ever
            on_host = batch.host_tokens() is not None
            cols = torch.randperm(batch.shape[2], device="cpu" if on_host else batch.target.device)[: self.genes_per_step]
            batch = batch.select_genes(cols.sort().values)
        s = self.input_scale
        x1, control = batch.target * s, batch.control * s
        b = x1.shape[0]
        drop = None
        if self.training and self.p_drop_condition > 0:
            draws = torch.rand(1 if self.condition_dropout == "batch" else b, device=x1.device)
            drop = (draws < self.p_drop_condition).expand(b).clone()
        cond = self.condition(batch.labels, control, batch.control_mask, batch.gene_ids, drop, population)
        cond.control_full = batch.control_full  # the host's record: the backbone need not read the mask back
        cond.host_ids = batch.host_ids  # ... nor the gene and perturbation ids
        shift = self.anchor(control, batch.control_mask, batch.labels, batch.gene_ids, self.input_scale)  # the backbone still reads the raw control cells
        if shift is not None:
            x1 = x1 - shift
        # a control source is moved as the controls' own anchor (their mean): an identity transport then predicts
        # "the anchor plus the control cells' spread" (for anchor additive: the additive baseline's cells)
        source = self.dynamics.draw_source(x1, control if shift is None else control - control_mean(control, batch.control_mask))
        out = self.dynamics.loss(self.bind(cond), x1, batch.target_mask, source, self.coupling)
        if self.distribution_loss is not None and self.distribution_weight > 0:
            x1_hat = out.extras["x1_hat"]
            dist = self.distribution_loss.distance(x1_hat, batch.target_mask, x1, batch.target_mask).mean()
            out.loss = out.loss + self.distribution_weight * dist
            out.parts["distribution"] = dist.detach()
        out.parts["loss"] = out.loss.detach()  # tensors: the trainer reads the parts back when it logs, not every step
        return out

    def min_set_size(self) -> tuple[int, str]:
        """The distribution loss's minimum (its ``Encoder.min_set_size("distance")``), when it counts."""
        if self.distribution_loss is None or self.distribution_weight <= 0:
            return 1, ""
        n, why = self.distribution_loss.min_set_size("distance")
        return n, f"model.distribution_loss: {why}" if why else ""

    def prepare(self, train: CellTable) -> None:
        """Let the backbone set up what it derives from training cells (``Backbone.prepare``,
        e.g. the PAD-Transformer's co-expression gene graph), and fit the ``additive`` anchor's
        per-atom effects, and check a diffusion ``clip_denoised`` against the training values (refused
        above all of them, a warning above more than 1 %). ``distgen.train.fit`` calls this once before training."""
        error, warning = clip_denoised_problems(self, train)
        if error:
            raise AssemblyError(error)
        if warning:
            warn(warning)
        self.backbone.prepare(train)
        self.anchor.fit(train)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels, genes: Tensor | None = None) -> Tensor:
        """Generate ``[B, m, G]`` cells for each condition from its control set ``[B, m, G]``.

        ``genes`` (``[P]`` ids into ``info.genes``) returns only those genes, ``[B, m, P]``: a backbone
        that supports gene subsampling sees only them (as scDFM predicts its evaluated panel); any
        other backbone generates every gene and the panel's columns are kept. With ``predict_genes`` set, the genes are generated in random chunks of at most that
        many, one sampling run per chunk (scDFM's sequence length at training).
        """
        if control.shape[-1] != self.info.n_genes:
            raise ValueError(f"control cells have {control.shape[-1]} genes; the model was built for {self.info.n_genes}")
        self._warn_unembedded(labels)
        if genes is not None and not self.backbone.capabilities.gene_subsampling:  # whole panel, then the asked columns
            return self.predict(control, control_mask, labels)[..., genes.to(control.device).long()]
        s = self.input_scale
        ctrl = control * s
        panel = torch.arange(ctrl.shape[-1], device=ctrl.device) if genes is None else genes.to(ctrl.device).long()
        chunks = [panel]
        if self.predict_genes is not None and panel.numel() > self.predict_genes:
            shuffled = panel[torch.randperm(panel.numel(), device=panel.device)]
            chunks = [c.sort().values for c in shuffled.split(self.predict_genes)]
        population = self.population_encoder(ctrl, control_mask) if self.population_encoder is not None else None
        out = torch.zeros(*ctrl.shape[:2], panel.numel(), dtype=ctrl.dtype, device=ctrl.device)
        where = torch.empty(self.info.n_genes, dtype=torch.long, device=ctrl.device)
        where[panel] = torch.arange(panel.numel(), device=ctrl.device)
        self.last_nfe = 0
        drop = torch.ones(len(labels), dtype=torch.bool, device=ctrl.device)
        full = bool(control_mask.all())  # read once here, not by the backbone at each of the sampler's steps
        for ids in chunks:
            c = ctrl[..., ids]
            cond = self.condition(labels, c, control_mask, ids, population=population)
            null = self.condition(labels, c, control_mask, ids, drop, population=population)
            cond.control_full = null.control_full = full
            shift = self.anchor(c, control_mask, labels, ids, s, warn=ids is chunks[0])
            start = c if shift is None else c - control_mean(c, control_mask)
            res = self.dynamics.sample(self.bind(cond, null), self.dynamics.draw_source(start, start), control_mask)
            out[..., where[ids]] = res.cells if shift is None else res.cells + shift
            self.last_nfe += res.nfe
        return out / s

    def can_predict(self, atoms: list[str]) -> list[bool]:
        """Per atom: can the parts that embed perturbations (conditioner, or a backbone's own tokens) embed it?"""
        from distgen.models.preflight import embeddable

        return embeddable(self, atoms)

    def _warn_unembedded(self, labels: ConditionLabels) -> None:
        """Warn (once per atom and model) when ``labels`` name atoms this model cannot embed: their rows were never trained.

        ``distgen.predict`` refuses such conditions before generating (pre-flight, unless ``allow_unembedded``); a direct
        ``model.predict`` on labels of other cells (``data.labels_for``, ``data.encode``) generated them silently.
        """
        from distgen.models.preflight import PreflightWarning, deciders

        ids = labels.perturbation
        names = [self.info.perturbations[i] for i in torch.unique(ids[ids >= 0]).tolist()]
        checked: set[str] = self.__dict__.setdefault("_embedding_checked", set())
        new = [a for a in names if a not in checked]
        if not new:
            return
        checked.update(new)
        try:
            parts = ", ".join(name for _, name in deciders(self))
            bad = [a for a, ok in zip(new, self.can_predict(new)) if not ok]
        except TypeError:  # no part embeds perturbations: nothing is looked up by atom
            return
        if bad:
            shown = first_of(bad, 8)
            warn(f"predict: {shown} cannot be embedded by {parts} (never seen in training, no embedding for them): their cells are "
                 "generated from untrained embedding rows and mean nothing. distgen.predict and distgen predict refuse such "
                 "conditions unless allow_unembedded (preflight); check model.can_predict(atoms) before predicting",
                 PreflightWarning)


def stack_conditions(a: Condition, b: Condition) -> Condition:
    """``a`` and ``b`` (``B`` sets each) as one condition of ``2B`` sets: ``a``'s first (labels left out).

    ``drop`` is False where a condition has none. For backbones whose sets are independent
    (``BackboneCapabilities.independent_sets``) and that do not read the labels.
    """

    def cat(x: Tensor | None, y: Tensor | None, what: str) -> Tensor | None:
        if x is None and y is None:
            return None
        if x is None or y is None:
            raise ValueError(f"cannot stack a condition with {what} and one without")
        return torch.cat([x, y.to(x.device)])

    n_a = a.control.shape[0] if a.control is not None else a.embedding.shape[0] if a.embedding is not None else None
    n_b = b.control.shape[0] if b.control is not None else b.embedding.shape[0] if b.embedding is not None else None
    drop = None
    if a.drop is not None or b.drop is not None:
        if n_a is None or n_b is None:
            raise ValueError("cannot stack conditions with drop flags but neither control nor embedding to count sets")
        dev = (a.drop if a.drop is not None else b.drop).device  # type: ignore[union-attr]
        da = a.drop if a.drop is not None else torch.zeros(n_a, dtype=torch.bool, device=dev)
        db = b.drop if b.drop is not None else torch.zeros(n_b, dtype=torch.bool, device=dev)
        drop = torch.cat([da.to(dev), db.to(dev)])
    return Condition(
        gene_ids=a.gene_ids,
        embedding=cat(a.embedding, b.embedding, "an embedding"),
        control=cat(a.control, b.control, "control cells"),
        control_mask=cat(a.control_mask, b.control_mask, "a control mask"),
        population=cat(a.population, b.population, "a population embedding"),
        labels=None,
        drop=drop,
        control_full=a.control_full and b.control_full if a.control_full is not None and b.control_full is not None else None,
    )


def check_assembly(model: Generator) -> None:
    """Reject component combinations that cannot work, with every reason at once, before any compute.

    All the problems of one assembly go into one ``AssemblyError`` (joined by ``; ``), so a user who follows its fixes
    is not refused again for the next one (``backbone.name=cross_dit`` on scdfm-small needs a conditioner *and* no gene
    subsampling; the second was said only after the first was fixed).
    """
    problems: list[str] = []
    bb = model.backbone
    name = type(bb).__name__
    provided = {"control", "labels"} | ({"embedding"} if model.conditioner is not None else set())
    provided |= {"population"} if model.population_encoder is not None else set()
    missing = set(bb.requires) - provided
    if missing:
        hints = {"population": "add a population encoder, e.g. 'model.population_encoder={name: kme}'",
                 "embedding": "add a conditioner, e.g. 'model.conditioner={name: onehot}'"}  # as an override, quoted for a shell
        fixes = [hints[m] for m in sorted(missing) if m in hints]
        problems.append(
            f"backbone {name} needs condition field(s) {sorted(missing)} that this model does not provide"
            + (f" ({'; '.join(fixes)})" if fixes else "")
        )
    if bb.capabilities.embeds_perturbations and not callable(getattr(bb, "can_embed", None)):
        problems.append(
            f"backbone {name} declares embeds_perturbations but has no can_embed(atoms) method, so nothing can tell which "
            "perturbations it embeds; give it can_embed (one bool per atom) or do not declare embeds_perturbations"
        )
    if model.conditioner is None and not bb.capabilities.embeds_perturbations and "embedding" not in missing:
        problems.append(
            f"nothing in this model reads the perturbation: it has no conditioner and backbone {name} does not tokenise "
            "perturbations itself (embeds_perturbations is False), so every condition would get the same prediction; add a "
            "conditioner (e.g. conditioner: {name: onehot}) with a backbone that reads its embedding ('embedding' in requires)"
        )
    if model.conditioner is not None and "embedding" not in bb.requires:
        problems.append(
            f"backbone {name} does not read the conditioner's embedding, so conditioner {type(model.conditioner).__name__} "
            "would be computed and ignored; remove the conditioner from the model, or configure the backbone to read it "
            "(e.g. pad_transformer's use_condition_embedding: true)"
        )
    for key in ("genes_per_step", "predict_genes"):
        value = getattr(model, key)
        if value is not None and not bb.capabilities.gene_subsampling:
            problems.append(f"{key}={value} needs a backbone that supports gene subsampling; {name} does not: set "
                            f"model.{key}: null (every gene{' at each step' if key == 'genes_per_step' else ' in one run'}) or use a "
                            f"backbone that does ({', '.join(_gene_subsampling_backbones()) or 'none is registered'})")
        if value is not None and value < 1:
            problems.append(f"{key} must be >= 1 or null, got {value}")
    if not model.distribution_weight >= 0:  # also NaN
        problems.append(
            f"distribution_weight={model.distribution_weight}: the weight of the distribution distance in the loss must be "
            ">= 0 (a negative weight would push generated sets away from the real ones); set model.distribution_weight: 0 "
            "to train without the term"
        )
    if model.distribution_weight > 0 and model.distribution_loss is None:
        problems.append("distribution_weight > 0 needs a distribution_loss encoder (e.g. {name: kme, kernel: {name: rbf}})")
    if model.dynamics.source not in model.dynamics.capabilities.sources:
        problems.append(f"dynamics {type(model.dynamics).__name__} does not support source={model.dynamics.source!r}")
    if not 0.0 <= model.p_drop_condition < 1.0:
        problems.append(f"p_drop_condition must be in [0, 1), got {model.p_drop_condition}")
    if model.condition_dropout not in CONDITION_DROPOUTS:
        problems.append(f"condition_dropout must be one of {', '.join(CONDITION_DROPOUTS)}, got {model.condition_dropout!r}")
    if model.condition_dropout != "set" and model.p_drop_condition == 0:
        problems.append(f"condition_dropout={model.condition_dropout!r} chooses what one condition-dropout draw covers, but "
                        "p_drop_condition is 0 (no condition is ever dropped), so it would have no effect; set "
                        "model.p_drop_condition > 0 (e.g. 0.1) or remove condition_dropout")
    if model.input_scale <= 0:
        problems.append(f"input_scale must be > 0, got {model.input_scale}")
    anchor, reference = model.anchor.kind, model.anchor.reference
    if anchor not in ANCHORS:
        problems.append(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
    if reference not in ANCHOR_REFERENCES:
        problems.append(f"anchor_reference must be one of {', '.join(ANCHOR_REFERENCES)}, got {reference!r}")
    if reference != "set" and anchor == "none":
        problems.append(f"anchor_reference={reference!r} chooses the control mean an anchor starts from, but the "
                        "model has no anchor (anchor: none); set model.anchor: control_mean or additive")
    if anchor != "none" and bb.capabilities.output_range == "nonnegative":
        problems.append(f"anchor={anchor!r} models cells relative to an anchor, so the residuals take either sign, but "
                        f"backbone {name} has a non-negative output head; use a linear head (e.g. cross_dit's output: identity)")
    clamp = getattr(model.dynamics, "clamp_min", None)
    if anchor != "none" and clamp is not None:
        problems.append(f"anchor={anchor!r} models cells relative to an anchor, so the residuals take either sign, but the "
                        f"dynamics clamp generated values at {clamp} (clamp_min); set model.dynamics.clamp_min: null")
    if anchor != "none" and getattr(model.dynamics, "clip_denoised", None) is not None:
        problems.append(f"anchor={anchor!r} models cells relative to an anchor, so the residuals take either sign, but the "
                        "dynamics zero small estimates (clip_denoised); set model.dynamics.clip_denoised: null")
    problems += capability_problems(model)
    if problems:
        raise AssemblyError("; ".join(problems))


def _gene_subsampling_backbones() -> list[str]:
    """Registered backbones that declare ``gene_subsampling``."""
    from distgen.backbones.base import backbones

    return [i.name for i in backbones.infos() if getattr(i.capabilities, "gene_subsampling", False)]


def build_model(
    config: Mapping[str, Any], info: DataInfo, seen_perturbations: Sequence[str] | None = None, **injected: Any
) -> PerturbationModel:
    """Build any registered model from its config node (``{name: ..., ...}``)."""
    validate_node("models", config)
    cls = models.get(config["name"])
    if hasattr(cls, "from_config"):
        model = cls.from_config(config, info=info, seen_perturbations=seen_perturbations, **injected)
        models.verify(config["name"])  # a plugin's first build runs the cheap contract checks
        return model  # type: ignore[no-any-return]
    return build_component("models", config, info=info, seen_perturbations=seen_perturbations, **injected)  # type: ignore[no-any-return]
