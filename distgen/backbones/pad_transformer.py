"""PAD-Transformer (scDFM's Perturbation-Aware Differential Transformer): one token per gene.

Per cell, the ``L`` gene columns of the noisy state ``x_t`` and of a control cell become ``L``
tokens: value encoders fused with a gene embedding that attends only along the gene-interaction
graph. The gene embedding depends on gene ids only, so it is computed once per forward pass and
shared by every cell. Perturbation tokens reuse the gene embeddings for genetic perturbations (a
gene of the vocabulary that was never perturbed in training still has a trained embedding) or a
learned table for drugs, pooled over combinations. Each layer: gene adaLN, perturbation adapter,
a self differential-attention block and a cross block with the control cell's attention pattern,
with adaLN time conditioning. Attention is fused (SDPA): memory is linear in ``L``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from distgen.backbones.base import Backbone, Condition, controls_padded
from distgen.backbones.differential_attention import ATTENTIONS, IMPLS, DifferentialAttention
from distgen.backbones.embeddings import TimeEmbedding
from distgen.backbones.gene_encoder import GraphGeneEncoder
from distgen.backbones.pad_layers import Adapter, Decoder, Fusion, GeneAdaLN, PADBlock, ValueEncoder, xavier_joint_
from distgen.capabilities import BackboneCapabilities
from distgen.types import CellTable, ConditionLabels, DataInfo
from distgen.wording import counted, first_of

#: Neighbours per gene of the co-expression graph ``prepare`` builds when ``graph_k`` is left out (scDFM: 30).
DEFAULT_GRAPH_K = 30

ENCODINGS = ("auto", "gene", "table")
MISSING = ("error", "extend")
POOLS = ("mean", "sum", "padded_mean")
CHECKPOINTING = ("auto", "always", "never")
GENE_DROPOUTS = ("per_cell", "shared")
#: ``checkpointing="auto"`` on CPU recomputes blocks in backward when one ``[N, L, d]`` activation has at
#: least this many elements (scDFM's paper shapes: from 17 cells at 1,000 tokens x 512)
CHECKPOINT_ABOVE = 2**23
#: bytes of activations kept for backward per element of one ``[N, L, d]`` activation, without
#: checkpointing (measured on CPU, fp32: 0.45 GiB per cell at 1,000 tokens x 512)
ACTIVATION_BYTES = 1024
#: inference keeps the cross blocks' control projections across ODE steps up to this many elements
PROJECTION_CACHE_ELEMENTS = 2**27
#: inductor options of ``compile``: tanh (in the blocks' tanh-GELU, forward and backward) as ``2 / (1 + exp(-2x)) - 1``
#: in the C++ kernels of the CPU backend (no effect on other devices). By default inductor calls Sleef's vector tanh
#: there, which made the compiled trunk slower than eager on a 2-core Xeon (torch 2.13, one thread: compiled tanh
#: 3.4-6.1 ms against eager's 0.7-1.2 ms for 1.57 M floats; a compiled GELU forward + backward 9.6 against 8.0 ms,
#: with this option 4.9 ms; the scDFM reduced training step, 6 alternating rounds: compiled as torch ships it
#: 1.20-1.38 s, with this option 1.06-1.22 s, eager 1.11-1.41 s; docs/benchmarks.md). Torch leaves it off because
#: the result differs from eager's tanh by ~2e-7.
INDUCTOR_OPTIONS: dict[str, Any] = {"cpp.use_decompose_tanh": True}


class PADTransformer(Backbone):
    """scDFM's PAD-Transformer: gene tokens, graph gene embedding, differential self/cross attention.

    Parameters
    ----------
    info, cond_dim, seen_perturbations, gene_graph
        Injected at assembly. ``gene_graph`` is a ``[G, G]`` bool adjacency over ``info.genes``
        (e.g. ``distgen.data.graph.coexpression_graph(train_X, k)``); when absent, ``prepare``
        builds the top-``graph_k`` co-expression graph from the training cells.
    d_model, heads, layers, mlp_ratio, dropout
        Width, heads, number of (self + cross) layers, MLP ratio, dropout (scDFM: 512, 8, 4, 4, 0.1).
    attention
        ``"differential"`` (scDFM) or ``"standard"`` (ablation).
    attention_impl
        ``"fused"`` (SDPA, linear memory) or ``"naive"`` (explicit ``[L, L]`` maps; benchmarks only).
    graph, graph_k
        Gene embedding refined along the gene graph (``False``: plain embedding, the ablation);
        neighbours per gene when the graph is built by ``prepare``.
    perturbation_encoding
        ``"gene"`` (perturbation tokens = gene embeddings), ``"table"`` (a learned row per atom,
        for drugs) or ``"auto"`` (gene for genetic data, table for chemical data).
    missing_perturbation_genes
        A perturbed gene absent from ``info.genes``: ``"error"``, or ``"extend"`` (declared fallback:
        an extra embedding-only token, outside the graph, trained only when the gene is perturbed
        in training; ``can_embed`` is False for it unless seen).
    pool
        Over the atoms of a combination: ``"mean"``, ``"sum"``, or ``"padded_mean"`` (scDFM: pad to
        two slots with a learned control token, then average).
    use_condition_embedding
        Also add the conditioner's embedding (e.g. context/cell line) to the perturbation vector.
    population_dim
        Injected width of a population encoder's embedding of the control set; when > 0 it is
        projected and added to the perturbation vector (every token reads it).
    checkpointing
        Activation checkpointing in training: ``"always"``, ``"never"``, or ``"auto"`` (on CPU when
        one ``[cells, tokens, d_model]`` activation reaches ``CHECKPOINT_ABOVE`` elements, on CUDA
        when the kept activations would fill half the device's memory). Each block's
        activations are then recomputed in backward instead of kept: memory per cell drops to about
        one block's, for about a third more compute. Same results (dropout masks are replayed).
    gene_dropout
        In training, the graph gene encoder's dropout: ``"per_cell"`` (scDFM, which runs the encoder
        once per cell: every cell draws its own dropout of the gene and perturbation token embeddings;
        the encoder's layers after the q/k/v projections then run on ``[cells, tokens, d]``) or
        ``"shared"`` (one draw for the whole batch, the embedding computed once: cheaper, but the
        dropout noise is common to all cells of a step). Eval mode and dropout 0 are unaffected:
        ``per_cell`` with ``dropout: 0`` or ``graph: false`` warns (``InertSettingWarning``).
    """

    capabilities = BackboneCapabilities(gene_subsampling=True, embeds_perturbations=True, supports_unseen_perturbations=None)
    requires = frozenset({"control", "labels"})
    #: Under FSDP the layers are not units of their own: ``_compute_terms`` reads every layer's gene modulation and
    #: adapter weights before the layers run (``distgen.train.distributed.wrap``).
    fsdp_shard_blocks = False
    example_params: ClassVar[dict[str, Any]] = {"d_model": 16, "heads": 2, "layers": 1, "graph": False, "dropout": 0.0}
    atom_token: Tensor  #: ``[n_atoms]`` token id of each perturbation atom (buffer)

    def __init__(
        self,
        info: DataInfo,
        cond_dim: int = 0,
        seen_perturbations: Sequence[str] | None = None,
        gene_graph: Tensor | None = None,
        d_model: int = 512,
        heads: int = 8,
        layers: int = 4,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
        attention: str = "differential",
        attention_impl: str = "fused",
        graph: bool = True,
        graph_k: int = DEFAULT_GRAPH_K,
        perturbation_encoding: str = "auto",
        missing_perturbation_genes: str = "error",
        pool: str = "mean",
        use_condition_embedding: bool = False,
        population_dim: int = 0,
        checkpointing: str = "auto",
        gene_dropout: str = "shared",
    ) -> None:
        super().__init__()
        _check_choice("attention", attention, ATTENTIONS)
        _check_choice("checkpointing", checkpointing, CHECKPOINTING)
        _check_choice("attention_impl", attention_impl, IMPLS)
        _check_choice("perturbation_encoding", perturbation_encoding, ENCODINGS)
        _check_choice("missing_perturbation_genes", missing_perturbation_genes, MISSING)
        _check_choice("pool", pool, POOLS)
        _check_choice("gene_dropout", gene_dropout, GENE_DROPOUTS)
        if d_model < 1:
            raise ValueError(f"pad_transformer: d_model must be >= 1, got {d_model}")
        if heads < 1 or int(d_model * mlp_ratio) < 1:  # heads 0 divided by zero; an MLP of width 0 trained with no MLP at all
            raise ValueError(f"pad_transformer: heads must be >= 1 and mlp_ratio must give an MLP of at least one unit (d_model * "
                             f"mlp_ratio >= 1), got heads={heads}, mlp_ratio={mlp_ratio} with d_model={d_model}")
        if d_model % heads:
            raise ValueError(f"pad_transformer: d_model={d_model} must be divisible by heads={heads}")
        if layers < 1 or graph_k < 1:
            raise ValueError(f"pad_transformer: layers and graph_k must be >= 1, got layers={layers}, graph_k={graph_k}")
        inert = []  # an ablation over any of these would measure nothing
        if not graph and graph_k != DEFAULT_GRAPH_K:
            inert.append(f"graph_k={graph_k} has no effect with graph: false (it is the neighbours per gene of the gene graph); "
                         "remove it or set graph: true")
        if gene_dropout == "per_cell" and not (graph and dropout > 0):  # per-cell draws of the graph encoder's dropout
            inert.append(f"gene_dropout=per_cell has no effect with {'graph: false' if not graph else f'dropout: {dropout}'} (it "
                         "draws the graph gene encoder's dropout per cell); remove it, or set graph: true and dropout > 0")
        if inert:
            from distgen.config import InertSettingWarning
            from distgen.errors import warn

            for note in inert:
                warn(f"pad_transformer: {note}", InertSettingWarning)
        if perturbation_encoding == "auto":
            perturbation_encoding = "gene" if info.perturbation_type == "genetic" else "table"
        if perturbation_encoding == "gene" and info.perturbation_type != "genetic":
            raise ValueError(
                "pad_transformer: perturbation_encoding='gene' embeds perturbations by their target gene, but this dataset's "
                f"perturbations are {info.perturbation_type!r} ({first_of(list(info.perturbations), 3, render=repr, enclosed=True)}); use perturbation_encoding: table (or auto)"
            )
        self.info, self.n_genes, self.d_model = info, info.n_genes, d_model
        self.encoding, self.pool, self.graph, self.graph_k = perturbation_encoding, pool, graph, graph_k
        self.capabilities = type(self).capabilities.replace(supports_unseen_perturbations=perturbation_encoding == "gene")
        self.seen = frozenset(info.perturbations if seen_perturbations is None else seen_perturbations)
        self.use_condition_embedding = use_condition_embedding
        if use_condition_embedding:
            self.requires = frozenset({"control", "labels", "embedding"})
        atom_token, self.extra_genes = self._atom_tokens(info, perturbation_encoding, missing_perturbation_genes)
        n_vocab = info.n_genes + len(self.extra_genes) + 1  # panel genes, extra perturbed genes, control token
        self.control_token = n_vocab - 1 if perturbation_encoding == "gene" else info.n_perturbations
        self.register_buffer("atom_token", torch.tensor(atom_token or [0], dtype=torch.long), persistent=False)
        self._atom_token_host = np.asarray(atom_token or [0], dtype=np.int64)  # the same on the host: token lists without device reads
        self.genes = GraphGeneEncoder(n_vocab, d_model, heads, graph, dropout, mlp_ratio)
        if perturbation_encoding == "table":
            self.pert_table = nn.Sequential(nn.Embedding(info.n_perturbations + 1, d_model), nn.LayerNorm(d_model))
        self.cond_proj = nn.Linear(cond_dim, d_model) if use_condition_embedding and cond_dim > 0 else None
        self.population_dim = population_dim
        self.pop_proj = nn.Linear(population_dim, d_model) if population_dim > 0 else None
        self.null = nn.Parameter(torch.zeros(d_model))
        self.value_x, self.value_c = ValueEncoder(d_model, dropout), ValueEncoder(d_model, dropout)
        self.fusion = Fusion(d_model)
        self.time = TimeEmbedding(d_model)
        self.gene_ada = nn.ModuleList(GeneAdaLN(d_model) for _ in range(layers))
        self.adapters = nn.ModuleList(Adapter(d_model, dropout) for _ in range(layers))
        self.self_blocks = nn.ModuleList(PADBlock(d_model, heads, i, False, attention, mlp_ratio, attention_impl) for i in range(layers))
        self.cross_blocks = nn.ModuleList(PADBlock(d_model, heads, i, True, attention, mlp_ratio, attention_impl) for i in range(layers))
        self.decoder = Decoder(d_model)
        self.checkpointing = checkpointing
        self.gene_dropout = gene_dropout
        self._term_cache: dict[int, tuple[Any, tuple[Any, ...], _Terms]] = {}
        self._compiled_trunk: Any = None
        for mod in self.modules():  # scDFM: Xavier-uniform Linear weights, zero biases
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
        # ... over the matrices as scDFM builds them: [h; e_p] -> d maps and the gene encoder's fused q/k/v
        xavier_joint_([(self.fusion.wx, 1), (self.fusion.wc, 1)])
        for split in (*(cast(Adapter, a).w1 for a in self.adapters), self.decoder.w3):
            split.reset_joint()
        if graph:
            xavier_joint_([(self.genes.q, 0), (self.genes.k, 0), (self.genes.v, 0)])
        if gene_graph is not None and graph:
            self.set_gene_graph(gene_graph)

    # ------------------------------------------------------------------ vocabulary and graph
    @staticmethod
    def _atom_tokens(info: DataInfo, encoding: str, missing: str) -> tuple[list[int], tuple[str, ...]]:
        """Token of each perturbation atom, and the perturbed genes added to the vocabulary."""
        if encoding == "table":
            return list(range(info.n_perturbations)), ()
        index = info.gene_index()
        absent = [a for a in info.perturbations if a not in index]
        if absent and missing == "error":
            raise ValueError(
                f"pad_transformer: {counted(len(absent), 'perturbed gene')} {'is' if len(absent) == 1 else 'are'} not in the gene vocabulary "
                f"(info.genes): {first_of(absent, 8, render=repr)}; "
                "keep them in the gene panel when preprocessing (scDFM forces perturbed genes into the HVGs), or set "
                "missing_perturbation_genes: extend (an embedding-only token per such gene, trained only when it is perturbed)"
            )
        extra = {a: info.n_genes + i for i, a in enumerate(absent)}
        return [index.get(a, extra.get(a, -1)) for a in info.perturbations], tuple(absent)

    def set_gene_graph(self, adjacency: Tensor) -> None:
        """Use a ``[G, G]`` bool adjacency over ``info.genes`` for the gene embedding."""
        if adjacency.shape != (self.n_genes, self.n_genes):
            raise ValueError(f"gene_graph must be [G, G] = [{self.n_genes}, {self.n_genes}] over info.genes, got {tuple(adjacency.shape)}")
        self.genes.set_graph(adjacency)

    def prepare(self, train: CellTable) -> None:
        """Build the top-``graph_k`` co-expression graph from training cells when none was injected."""
        if self.graph and not self.genes.has_graph:
            from distgen.data.graph import coexpression_graph

            self.set_gene_graph(coexpression_graph(train.X, self.graph_k))

    @property
    def gene_embedding(self) -> nn.Embedding:
        """The gene-token table (ids into ``info.genes``), shared with a ``gene_vocab`` conditioner."""
        return self.genes.table

    @property
    def gene_embedding_dim(self) -> int:
        return self.d_model

    def can_embed(self, atoms: Sequence[str]) -> list[bool]:
        """Per atom: a gene token of the panel (trained as expression token), or an atom seen in training."""
        panel = set(self.info.genes) if self.encoding == "gene" else set()
        known = set(self.info.perturbations)
        return [a in panel or (a in known and a in self.seen) for a in atoms]

    # ------------------------------------------------------------------ forward
    def _perturbation(self, labels: ConditionLabels, token_emb: Any) -> Tensor:
        """``[B, d]`` pooled perturbation embedding; ``token_emb(ids) -> [..., d]``."""
        atoms = labels.perturbation
        tok = torch.where(atoms >= 0, self.atom_token[atoms.clamp_min(0)], torch.full_like(atoms, -1))
        ctrl = torch.full_like(tok, self.control_token)
        if self.pool == "padded_mean":
            if tok.shape[1] < 2:
                tok = nn.functional.pad(tok, (0, 2 - tok.shape[1]), value=-1)
                ctrl = torch.full_like(tok, self.control_token)
            return token_emb(torch.where(tok >= 0, tok, ctrl)).mean(1)
        real = (tok >= 0).to(torch.float32)[..., None]
        e = (token_emb(torch.where(tok >= 0, tok, ctrl)) * real).sum(1)
        if self.pool == "mean":
            e = e / real.sum(1).clamp_min(1.0)
        none = real.sum(1) == 0  # control sets: the control token
        return torch.where(none, token_emb(ctrl[:, 0]), e)

    def _controls(self, cond: Condition, m: int) -> Tensor:
        """``[B, m, L]`` one control cell per generated cell (drawn from the real ones if needed)."""
        c = cond.control
        if c is None:
            raise ValueError("pad_transformer needs control cells (Condition.control)")
        mask = cond.control_mask
        if c.shape[1] == m and not controls_padded(cond):  # the host's record of the batch when it has one
            return c
        w = torch.ones(c.shape[:2], device=c.device) if mask is None else mask.float()
        if bool((w.sum(1) == 0).any()):
            raise ValueError("pad_transformer: a set has no real control cell (control_mask all False)")
        idx = torch.multinomial(w, m, replacement=True)
        return torch.gather(c, 1, idx[..., None].expand(-1, -1, c.shape[2]))

    def _terms(self, cond: Condition, m: int, length: int, device: torch.device) -> _Terms:
        """What the forward needs that depends on the condition only, not on ``x_t`` or ``t``.

        In inference (eval mode, no autograd) the result is kept for the same live ``Condition``
        object and unchanged weights, so an ODE solver's steps compute it once per sampling run.
        """
        cache = not self.training and not torch.is_grad_enabled()
        if cache:
            key = (m, length, str(device), sum(p._version for p in self.parameters()), id(self.genes.nbr_idx))
            hit = self._term_cache.get(id(cond))
            if hit is not None and hit[0]() is cond and hit[1] == key:
                return hit[2]
        terms = self._compute_terms(cond, m, length, device, cache)
        if cache:
            while len(self._term_cache) >= 2:  # a condition and its null (guidance)
                self._term_cache.pop(next(iter(self._term_cache)))
            self._term_cache[id(cond)] = (weakref.ref(cond), key, terms)
        return terms

    def _compute_terms(self, cond: Condition, m: int, length: int, device: torch.device, keep_projections: bool) -> _Terms:
        if cond.labels is None:
            raise ValueError("pad_transformer needs the condition labels (Condition.labels) for its perturbation tokens")
        host = cond.host_tokens()  # (gene ids, perturbation atoms) as host arrays when known: no device read below
        gene_ids = cond.gene_ids.to(device).long()
        self._check_gene_ids(gene_ids, None if host is None else host[0], length)
        labels = cond.labels.to(device)
        n_sets = labels.perturbation.shape[0]
        # scDFM's per-cell gene encoder: each cell its own dropout draw (only matters in training with dropout)
        per_cell = self.gene_dropout == "per_cell" and self.training and self.graph and self.genes.dropout > 0
        cells = n_sets * m if per_cell else None
        per_set = (lambda x: x.repeat_interleave(m, 0)) if per_cell else (lambda x: x)
        if self.encoding == "gene":  # one gene-encoder pass for expression and perturbation tokens alike
            uniq_host: np.ndarray | None = None
            if host is not None:  # the same sorted unique ids and inverse, worked out on the host (numpy: no dispatched op)
                tok_host = self._atom_token_host[np.maximum(host[1], 0)].ravel()
                ids_host = np.concatenate([host[0], tok_host, [self.control_token]])
                uniq_host, inv_host = np.unique(ids_host, return_inverse=True)
                uniq, inv = _to_device(uniq_host, device), _to_device(inv_host.reshape(-1), device)
            else:
                tok = self.atom_token[labels.perturbation.clamp_min(0)].flatten()
                ids = torch.cat([gene_ids, tok, tok.new_tensor([self.control_token])])
                uniq, inv = torch.unique(ids, return_inverse=True)
            enc = self._genes(uniq, cells, length, uniq_host)  # [U, d], or [cells, U, d] per cell
            e_g = enc[..., inv[:length], :]
            pos = torch.full((self.genes.n_vocab,), -1, dtype=torch.long, device=device)
            pos[uniq] = torch.arange(uniq.numel(), device=device)
            if cells is None:
                e_p = self._perturbation(labels, lambda i: enc[pos[i]])
            else:  # cell j reads its own copy of its set's tokens
                row = torch.arange(cells, device=device)
                e_p = self._perturbation(labels.index(row // m), lambda i: enc[row.view(-1, *[1] * (i.dim() - 1)), pos[i]])
        else:
            e_g = self._genes(gene_ids, cells, length, None if host is None else host[0])
            e_p = per_set(self._perturbation(labels, self.pert_table))
        if cond.drop is not None:
            e_p = torch.where(per_set(cond.drop.to(device))[:, None], self.null.expand_as(e_p), e_p)
        if self.cond_proj is not None and cond.embedding is not None:
            e_p = e_p + per_set(self.cond_proj(cond.embedding))
        if self.pop_proj is not None and cond.population is not None:
            e_p = e_p + per_set(self.pop_proj(cond.population))
        ctrl = self._controls(cond, m)
        n = ctrl.shape[0] * m
        h_c = self.value_c(ctrl.reshape(n, length)) + e_g
        if cells is None:
            e_p = e_p.repeat_interleave(m, 0)
        pre = None
        if keep_projections and n * length * self.d_model * len(self.cross_blocks) <= PROJECTION_CACHE_ELEMENTS:
            pre = [cast(PADBlock, blk).attn.control_projections(h_c) for blk in self.cross_blocks]
        return _Terms(
            e_g=e_g, h_c=h_c, wc_hc=self.fusion.wc(h_c),
            coef=[cast(GeneAdaLN, ada).coefficients(e_g) for ada in self.gene_ada],
            pe_adapter=[cast(Adapter, ad).w1.b(e_p) for ad in self.adapters], pe_decoder=self.decoder.w3.b(e_p), pre=pre,
        )

    def _genes(self, ids: Tensor, cells: int | None, length: int, ids_host: np.ndarray | None) -> Tensor:
        """The graph gene encoder; its per-cell copies are recomputed in backward when the blocks are
        (``uses_checkpointing``): kept, their inner activations grow with the cells like a block's.
        ``ids_host``: the same ids on the host, when known (the encoder's edge lists then need no device read)."""
        if cells is not None and torch.is_grad_enabled() and self.uses_checkpointing(cells, length, ids.device):
            return checkpoint(self.genes, ids, cells, ids_host, use_reentrant=False)  # type: ignore[no-any-return]
        return self.genes(ids, cells, ids_host)  # type: ignore[no-any-return]

    def _check_gene_ids(self, gene_ids: Tensor, host: np.ndarray | None, length: int) -> None:
        """Refuse gene ids outside ``info.genes``: read on the host (its copy, or CPU ids); on a device, asserted
        asynchronously (``torch._assert_async``: the step is not held up; a bad id stops the run at the next sync)."""
        message = f"pad_transformer: gene_ids must be [L]={length} ids into the {self.n_genes} genes of info"
        if gene_ids.shape != (length,) or (host is not None and host.shape != (length,)):
            raise ValueError(message)
        if not length:
            return
        if host is not None:
            if int(host.max()) >= self.n_genes:
                raise ValueError(message)
        elif gene_ids.device.type == "cpu":
            if int(gene_ids.max()) >= self.n_genes:  # a host tensor: no device to wait for
                raise ValueError(message)
        else:
            torch._assert_async(gene_ids.max() < self.n_genes, message)

    def forward(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        b, m, length = x_t.shape
        terms = self._terms(cond, m, length, x_t.device)
        n = b * m
        h = self.fusion(self.value_x(x_t.reshape(n, length)) + terms.e_g, terms.h_c, terms.wc_hc)
        c_t = self.time(t.reshape(n))
        trunk = self._compiled_trunk or self._trunk
        return trunk(h, c_t, terms).view(b, m, length)  # type: ignore[no-any-return]

    def uses_checkpointing(self, n: int, length: int, device: torch.device | None = None) -> bool:
        """Whether a training forward over ``n`` cells x ``length`` tokens recomputes blocks in backward.

        ``auto``: on CPU when one ``[n, length, d]`` activation has ``CHECKPOINT_ABOVE`` elements; on
        CUDA when the activations kept for backward (about ``ACTIVATION_BYTES`` per element of it)
        would fill half of the device's memory.
        """
        if self.checkpointing != "auto":
            return self.checkpointing == "always"
        elements = n * length * self.d_model
        if device is not None and device.type == "cuda":
            return elements * ACTIVATION_BYTES > torch.cuda.get_device_properties(device).total_memory // 2
        return elements >= CHECKPOINT_ABOVE

    def _trunk(self, h: Tensor, c_t: Tensor, terms: _Terms) -> Tensor:
        """The layers and the decoder: ``[N, L, d] -> [N, L]`` (pure tensor code, ``torch.compile``-able)."""
        ckpt = torch.is_grad_enabled() and self.training and self.uses_checkpointing(h.shape[0], h.shape[1], h.device)
        for i, (ada, adapter, sblock, cblock) in enumerate(zip(self.gene_ada, self.adapters, self.self_blocks, self.cross_blocks)):
            pre = terms.pre[i] if terms.pre is not None else None

            def inject(h: Tensor, ada: nn.Module = ada, adapter: nn.Module = adapter, i: int = i) -> Tensor:
                return adapter(ada(h, coef=terms.coef[i]), pe=terms.pe_adapter[i])  # type: ignore[no-any-return]

            if ckpt:  # one block at a time is kept in memory; its activations are recomputed in backward
                h = checkpoint(inject, h, use_reentrant=False)
                h = checkpoint(sblock, h, c_t, use_reentrant=False)
                h = checkpoint(cblock, h, c_t, terms.h_c, pre, use_reentrant=False)
            else:
                h = cblock(sblock(inject(h), c_t), c_t, terms.h_c, pre)
        return self.decoder(h, pe=terms.pe_decoder)  # type: ignore[no-any-return]

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """``torch.compile`` the layers and the decoder (``train.compile``); the prologue stays eager.

        The prologue (graph gene encoder, perturbation tokens, control draws) has data-dependent
        shapes; the trunk is plain tensor code of fixed shapes, where compilation fuses the
        elementwise glue around the matmuls. With inductor (the default backend) and no ``options``
        of the caller's, ``INDUCTOR_OPTIONS`` are added to the mode's own (see there).
        """
        if kwargs.get("backend", "inductor") == "inductor" and kwargs.get("options") is None:
            from torch._inductor import list_mode_options

            mode = kwargs.pop("mode", None)
            kwargs["options"] = {**(list_mode_options(mode, kwargs.get("dynamic")) if mode else {}), **INDUCTOR_OPTIONS}
        self._compiled_trunk = torch.compile(self._trunk, *args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state["_term_cache"] = {}
        state["_compiled_trunk"] = None
        return state


@dataclass
class _Terms:
    """Condition-only terms of a forward pass (see ``PADTransformer._terms``)."""

    e_g: Tensor  #: ``[L, d]`` gene embeddings (``[N, L, d]`` with per-cell gene dropout in training)
    h_c: Tensor  #: ``[N, L, d]`` control tokens
    wc_hc: Tensor  #: ``[N, L, d]`` the fusion's control term
    coef: list[tuple[Tensor, Tensor]]  #: per layer, the gene adaLN's ``(A, B)`` ``[L, d]``
    pe_adapter: list[Tensor]  #: per layer, the adapter's perturbation term ``[N, d]``
    pe_decoder: Tensor  #: the decoder's perturbation term ``[N, d]``
    pre: list[dict[str, Tensor]] | None  #: per cross block, projections of ``h_c`` (inference only)


def _to_device(a: np.ndarray, device: torch.device) -> Tensor:
    """A host array of ids as a long tensor on ``device`` (a copy to the device: nothing waits for it)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device, non_blocking=True)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"pad_transformer: {key} must be one of {choices}, got {value!r}")


__all__ = ["DifferentialAttention", "PADTransformer"]
