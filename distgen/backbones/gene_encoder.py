"""Gene-token embeddings refined along a gene-interaction graph (scDFM's "symbol embedding").

Each queried gene attends, in one pre-norm cross-attention layer, only to its graph neighbours
(and itself) among all vocabulary embeddings, followed by a feed-forward layer. The graph is held
as compressed sparse rows, and the attention runs over the edge list with a segment softmax, so
cost and memory are ``O(edges of the queried genes)`` instead of a dense ``[L, V]`` masked map.
(torch has no built-in segment softmax; it is written here with ``scatter_reduce``/``index_add``.)
The keys and values stay rows of the vocabulary (``[U, h, d]``); the two products over the edges,
``<q, k>`` per edge and the weighted sum of values per query, run over chunks of edges with
hand-written backwards, so no ``[E, h, d]`` tensor is built or kept for backward.

The result depends only on the gene ids, never on the cells, so a backbone computes it once per
forward pass and shares it across the batch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

#: Elements of the per-copy padded attention weights ``[copies, n, K, h]`` built at once by
#: ``segment_attention(copies=...)`` (64 Mi); more copies are done in chunks.
COPY_CHUNK_ELEMENTS = 1 << 26
#: From this many copies on, ``segment_attention`` sums them with one batched product over edges padded per
#: query; fewer copies go through the edge list (that product's backward then has an inner dimension of
#: ``copies`` and runs slowly).
PADDED_FROM_COPIES = 8
#: Elements of one chunk's temporaries (``[copies, edges, h, d]``) in the edge-list functions on the CPU
#: (1 Mi): enough that the loop over chunks costs little, few enough to stay in cache and to come from
#: the allocator's pool rather than from fresh, page-faulting memory maps.
EDGE_CHUNK_ELEMENTS = 1 << 20
#: The same bound on other devices (CUDA), where fewer, larger kernels matter more than cache (64 Mi).
EDGE_CHUNK_ELEMENTS_DEVICE = 1 << 26


def adjacency_to_csr(adjacency: Tensor, n_vocab: int) -> tuple[Tensor, Tensor]:
    """``[G, G]`` bool adjacency -> CSR ``(ptr [V + 1], idx [nnz])`` over a vocabulary of ``V >= G``.

    Self loops are added for every token; tokens ``G..V-1`` (not in the graph) get only themselves.
    """
    g = adjacency.shape[0]
    if adjacency.dim() != 2 or adjacency.shape[1] != g:
        raise ValueError(f"gene_graph must be a square [G, G] adjacency, got shape {tuple(adjacency.shape)}")
    adj = adjacency.to(torch.bool).cpu() | torch.eye(g, dtype=torch.bool)
    rows, cols = adj.nonzero(as_tuple=True)
    extra = torch.arange(g, n_vocab)
    rows, cols = torch.cat([rows, extra]), torch.cat([cols, extra])
    counts = torch.bincount(rows, minlength=n_vocab)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return ptr, cols.long()


def gather_edges(ptr: Tensor, idx: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
    """Edges out of ``queries [n]``: ``(segment [E], neighbour [E])``, segment = query position."""
    starts, counts = ptr[queries], ptr[queries + 1] - ptr[queries]
    seg = torch.repeat_interleave(torch.arange(queries.numel(), device=queries.device), counts)
    first = torch.repeat_interleave(starts - (counts.cumsum(0) - counts), counts)
    return seg, idx[first + torch.arange(seg.numel(), device=queries.device)]


def gather_edges_host(ptr: np.ndarray, idx: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``gather_edges`` on the host (numpy): the same ``(segment [E], neighbour [E])``, no device read."""
    starts, counts = ptr[queries], ptr[queries + 1] - ptr[queries]
    seg = np.repeat(np.arange(queries.shape[0], dtype=np.int64), counts)
    first = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return seg, idx[first + np.arange(seg.shape[0], dtype=np.int64)]


def _edge_chunks(n_edges: int, per_edge: int, device: torch.device) -> list[slice]:
    """Slices of the edge list whose temporaries (``per_edge`` elements per edge) stay within the device's chunk bound."""
    step = max(1, (EDGE_CHUNK_ELEMENTS if device.type == "cpu" else EDGE_CHUNK_ELEMENTS_DEVICE) // max(1, per_edge))
    return [slice(s, min(s + step, n_edges)) for s in range(0, n_edges, step)]


def _accumulation_dtype(a: Tensor, b: Tensor) -> torch.dtype:
    """The dtype the edge products accumulate in: at least float32 (bf16/fp16 inputs under autocast)."""
    return torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)


class _EdgeDot(torch.autograd.Function):
    """``s[e] = <q[seg[e]], k[nbr[e]]>`` over the last dimension: ``[E, h]`` from ``q [n, h, d]`` and ``k [U, h, d]``.

    Neither ``q[seg]`` nor ``k[nbr]`` (``[E, h, d]`` each) is ever built whole: the edges run in chunks, forward
    and backward, and only the inputs are kept for backward.
    """

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, seg: Tensor, nbr: Tensor) -> Tensor:
        dtype = _accumulation_dtype(q, k)
        out = torch.empty(seg.shape[0], q.shape[1], dtype=dtype, device=q.device)
        for c in _edge_chunks(seg.shape[0], q.shape[1] * q.shape[2], q.device):
            out[c] = torch.linalg.vecdot(q[seg[c]].to(dtype), k[nbr[c]].to(dtype))
        ctx.save_for_backward(q, k, seg, nbr)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        q, k, seg, nbr = ctx.saved_tensors
        gq = torch.zeros(q.shape, dtype=g.dtype, device=g.device) if ctx.needs_input_grad[0] else None
        gk = torch.zeros(k.shape, dtype=g.dtype, device=g.device) if ctx.needs_input_grad[1] else None
        for c in _edge_chunks(seg.shape[0], q.shape[1] * q.shape[2], q.device):
            gc = g[c, :, None]
            if gq is not None:
                gq.index_add_(0, seg[c], gc * k[nbr[c]])
            if gk is not None:
                gk.index_add_(0, nbr[c], gc * q[seg[c]])
        return (None if gq is None else gq.to(q.dtype)), (None if gk is None else gk.to(k.dtype)), None, None


class _EdgeSum(torch.autograd.Function):
    """``out[..., i] = sum over edges e with seg[e] = i of w[..., e] v[nbr[e]]``: ``[*C, n, h, d]`` from ``w [*C, E, h]``.

    ``v [U, h, d]`` is read through ``nbr`` edge chunk by edge chunk; ``w`` may carry a leading dimension of
    copies (one weighting per copy, the same values ``v``).
    """

    @staticmethod
    def forward(ctx: Any, w: Tensor, v: Tensor, seg: Tensor, nbr: Tensor, n: int) -> Tensor:
        dtype = _accumulation_dtype(w, v)
        lead = w.shape[:-2]
        out = torch.zeros(*lead, n, *v.shape[1:], dtype=dtype, device=v.device)
        axis = len(lead)
        for c in _edge_chunks(seg.shape[0], max(1, lead.numel()) * v.shape[1] * v.shape[2], v.device):
            out.index_add_(axis, seg[c], w[..., c, :, None].to(dtype) * v[nbr[c]].to(dtype))
        ctx.save_for_backward(w, v, seg, nbr)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        w, v, seg, nbr = ctx.saved_tensors
        lead = w.shape[:-2]
        gw = torch.empty(w.shape, dtype=g.dtype, device=g.device) if ctx.needs_input_grad[0] else None
        gv = torch.zeros(v.shape, dtype=g.dtype, device=g.device) if ctx.needs_input_grad[1] else None
        for c in _edge_chunks(seg.shape[0], max(1, lead.numel()) * v.shape[1] * v.shape[2], v.device):
            ge = g[..., seg[c], :, :]  # [*C, Ec, h, d]
            if gw is not None:
                gw[..., c, :] = torch.linalg.vecdot(ge, v[nbr[c]].to(g.dtype))
            if gv is not None:
                wg = w[..., c, :, None].to(g.dtype) * ge
                gv.index_add_(0, nbr[c], wg.sum(tuple(range(len(lead)))) if lead else wg)
        return (None if gw is None else gw.to(w.dtype)), (None if gv is None else gv.to(v.dtype)), None, None, None


def segment_attention(q: Tensor, k: Tensor, v: Tensor, seg: Tensor, n: int, dropout: float = 0.0, training: bool = False,
                      copies: int | None = None, nbr: Tensor | None = None) -> Tensor:
    """Softmax attention of query ``q [n, h, d]`` over its edges (``seg [E]``: each edge's query).

    ``k, v``: ``[E, h, d]``, one row per edge; or, with ``nbr [E]``, rows of a memory ``[U, h, d]`` that edge
    ``e`` reads at ``nbr[e]`` (the per-edge rows are then never built: the products run over chunks of edges).
    ``copies`` = C: ``[C, n, h, d]``, the same attention with C independent dropouts of its weights. From
    ``PADDED_FROM_COPIES`` copies on, the C weighted sums run as one batched matrix product over the edges
    padded per query (``[n, h, C, K] @ [n, h, K, d]``, K = the largest number of edges of a query).

    Buffers take the dtype of what is written into them, not of ``q``: under CUDA autocast ``sum``
    returns float32 from bf16 inputs, and scatter/index_add need one dtype.
    """
    if nbr is None:
        nbr = torch.arange(seg.shape[0], device=seg.device)
    scores = _EdgeDot.apply(q, k, seg, nbr) / math.sqrt(q.shape[-1])  # [E, h]
    with torch.no_grad():  # the max only stabilises exp(); treating it as a constant is exact
        top = torch.full((n, q.shape[1]), float("-inf"), device=q.device, dtype=scores.dtype)
        top = top.scatter_reduce(0, seg[:, None].expand_as(scores), scores, "amax", include_self=True)
    w = torch.exp(scores - top[seg])
    w = w / torch.zeros_like(top).index_add(0, seg, w)[seg]
    if copies is not None and not (training and dropout > 0):  # no dropout: every copy is the same sum
        return _EdgeSum.apply(w, v, seg, nbr, n).expand(copies, n, *v.shape[1:])  # type: ignore[no-any-return]
    if copies is None or copies < PADDED_FROM_COPIES:
        wc = nn.functional.dropout(w if copies is None else w.expand(copies, *w.shape), dropout, training)
        return _EdgeSum.apply(wc, v, seg, nbr, n)  # type: ignore[no-any-return]
    pos, width = _slots(seg, n)
    dtype = torch.promote_types(w.dtype, v.dtype)
    v_pad = v.new_zeros((n, width, *v.shape[1:]), dtype=dtype).index_put((seg, pos), v[nbr].to(dtype))  # [n, K, h, d]
    v_pad = v_pad.permute(0, 2, 1, 3)  # [n, h, K, d]
    step = max(1, COPY_CHUNK_ELEMENTS // max(1, n * width * w.shape[1]))
    outs = []
    for start in range(0, copies, step):
        c = min(step, copies - start)
        wc = nn.functional.dropout(w.expand(c, *w.shape), dropout, training)  # [c, E, h]: the draws of the edge-list form
        w_pad = wc.new_zeros((c, n, width, w.shape[1]), dtype=dtype)
        w_pad[:, seg, pos] = wc.to(dtype)
        outs.append(torch.matmul(w_pad.permute(1, 3, 0, 2), v_pad).permute(2, 0, 1, 3))  # [c, n, h, d]
    return torch.cat(outs)


def _slots(seg: Tensor, n: int) -> tuple[Tensor, int]:
    """Each edge's slot among its query's edges (in edge order) and the most edges of any query."""
    counts = torch.bincount(seg, minlength=n)
    order = torch.argsort(seg, stable=True)
    starts = counts.cumsum(0) - counts
    pos = torch.empty_like(seg)
    pos[order] = torch.arange(seg.numel(), device=seg.device) - starts[seg[order]]
    return pos, int(counts.max()) if seg.numel() else 0


class GraphGeneEncoder(nn.Module):
    """``ids [n] -> [n, d]``: LN(table[ids]), refined by graph-masked cross-attention when ``graph``.

    Parameters
    ----------
    n_vocab, dim, heads
        Vocabulary size, width, attention heads.
    graph
        Refine along the graph (True) or return the plain normalised embedding (the ablation).
    dropout, mlp_ratio
        Dropout of the attention weights and sub-layers; feed-forward width multiplier.
    """

    def __init__(self, n_vocab: int, dim: int, heads: int = 8, graph: bool = True, dropout: float = 0.1, mlp_ratio: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"gene encoder: dim={dim} must be divisible by heads={heads}")
        self.n_vocab, self.heads, self.graph, self.dropout = n_vocab, heads, graph, dropout
        self.table = nn.Embedding(n_vocab, dim)
        self.norm0 = nn.LayerNorm(dim)
        self.register_buffer("nbr_ptr", torch.zeros(0, dtype=torch.long))
        self.register_buffer("nbr_idx", torch.zeros(0, dtype=torch.long))
        self._host_csr: tuple[Tensor, Tensor, np.ndarray, np.ndarray] | None = None
        if graph:
            self.norm_q = nn.LayerNorm(dim)
            self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
            self.norm_ff = nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_ratio * dim, dim))
            self.drop = nn.Dropout(dropout)

    @property
    def has_graph(self) -> bool:
        return self.nbr_ptr.numel() > 0

    def set_graph(self, adjacency: Tensor) -> None:
        """Use a ``[G, G]`` bool adjacency over the first ``G`` vocabulary tokens."""
        if adjacency.shape[0] > self.n_vocab:
            raise ValueError(f"gene_graph covers {adjacency.shape[0]} genes but the vocabulary has only {self.n_vocab} tokens")
        ptr, idx = adjacency_to_csr(adjacency, self.n_vocab)
        dev = self.table.weight.device
        self.nbr_ptr, self.nbr_idx = ptr.to(dev), idx.to(dev)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("nbr_ptr", "nbr_idx"):  # the graph's size is data-dependent: adopt the saved one
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.table.weight.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _graph_host(self) -> tuple[np.ndarray, np.ndarray]:
        """The graph's CSR ``(ptr, idx)`` on the host: copied from the device once per graph (kept while the
        buffers are the same tensors: ``set_graph``, loading and moving the module replace them)."""
        ptr, idx = self.nbr_ptr, self.nbr_idx
        cached = getattr(self, "_host_csr", None)  # (absent from modules pickled before it)
        if cached is None or cached[0] is not ptr or cached[1] is not idx:
            cached = (ptr, idx, ptr.detach().cpu().numpy(), idx.detach().cpu().numpy())
            self._host_csr = cached
        return cached[2], cached[3]

    def _edges(self, ids: Tensor, ids_host: np.ndarray | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(segment [E], neighbour slot [E], neighbours [U])`` of the edges out of ``ids``, neighbours sorted unique.

        From ``ids_host`` (the same ids on the host) the lists are built in numpy and copied to the device: the
        step does not wait for the device to tell the number of edges; otherwise built on the ids' device.
        """
        if ids_host is None:
            seg, nbr = gather_edges(self.nbr_ptr, self.nbr_idx, ids)
            uniq, inv = torch.unique(nbr, return_inverse=True)
            return seg, inv, uniq
        ptr, idx = self._graph_host()
        seg_h, nbr_h = gather_edges_host(ptr, idx, ids_host)
        uniq_h, inv_h = np.unique(nbr_h, return_inverse=True)
        dev = ids.device
        return (torch.from_numpy(seg_h).to(dev, non_blocking=True), torch.from_numpy(inv_h.reshape(-1)).to(dev, non_blocking=True),
                torch.from_numpy(uniq_h).to(dev, non_blocking=True))

    def forward(self, ids: Tensor, copies: int | None = None, ids_host: np.ndarray | None = None) -> Tensor:
        """``[n, d]`` embeddings of ``ids``; ``copies`` = C returns ``[C, n, d]``, C draws of the dropout (one per cell).

        scDFM runs its gene encoder once per cell, so in training every cell sees its own dropout of the
        attention weights and the two residual branches; ``copies`` reproduces that (the table lookup,
        the norms and the q/k/v projections are shared, only what follows a dropout is per copy).
        ``ids_host``: the same ids as a host array, when known: the edge lists are then built without a device read.
        """
        e = self.norm0(self.table(ids))
        if not self.graph:
            return e if copies is None else e.expand(copies, *e.shape)
        if not self.has_graph:
            raise RuntimeError(
                "the gene encoder has graph=True but no gene graph: build the backbone with gene_graph=<[G, G] bool adjacency> "
                "(e.g. distgen.data.graph.coexpression_graph(train_X, k)), call prepare(train_table), or set graph: false"
            )
        n, dim = e.shape
        h, dh = self.heads, dim // self.heads
        seg, inv, uniq = self._edges(ids, ids_host)
        mem = self.norm0(self.table(uniq))  # memory: normalised vocabulary embeddings of the neighbours
        k, v = self.k(mem).view(-1, h, dh), self.v(mem).view(-1, h, dh)
        q = self.q(self.norm_q(e)).view(n, h, dh)
        att = segment_attention(q, k, v, seg, n, self.dropout, self.training, copies, nbr=inv)
        x = e + self.drop(self.o(att.reshape(*att.shape[:-2], dim)))
        return x + self.drop(self.ff(self.norm_ff(x)))
