"""Gene-interaction graphs: top-k co-expression from training cells, or a user edge list.

scDFM builds its gene graph from the top-k absolute Pearson correlations over training cells;
``coexpression_graph`` does that. Results are cached by a hash of the input values, in memory and
optionally on disk (``cache_dir``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from distgen.errors import warn
from distgen.wording import counted

if TYPE_CHECKING:
    from distgen.data.dataset import PerturbationData

_CACHE: dict[str, Tensor] = {}


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\x1e")
    return h.hexdigest()[:20]


def pearson(x: Tensor) -> Tensor:
    """``[N, G] -> [G, G]`` Pearson correlation; constant genes correlate 0 with everything."""
    x = x.double()
    xc = x - x.mean(0, keepdim=True)
    sd = xc.pow(2).sum(0).sqrt()
    corr = (xc.T @ xc) / (sd[:, None] * sd[None, :])
    return torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)


def topk_adjacency(corr: Tensor, k: int) -> Tensor:
    """``[G, G]`` bool: each gene linked to its ``k`` largest ``|corr|`` partners, symmetrised, self loops.

    Zero correlations are never edges (as in scDFM), so a constant gene has only its self loop.
    """
    g = corr.shape[0]
    score = corr.abs().clone()
    score.fill_diagonal_(-1.0)
    k = min(k, g - 1)
    adj = torch.zeros(g, g, dtype=torch.bool)
    if k > 0:
        top = score.topk(k, dim=1)
        adj.scatter_(1, top.indices, top.values > 0)
    adj = adj | adj.T
    adj.fill_diagonal_(True)
    return adj


def coexpression_graph(x: Tensor | np.ndarray, k: int = 30, cache_dir: str | os.PathLike[str] | None = None) -> Tensor:
    """``[N, G]`` training cells -> ``[G, G]`` bool adjacency (top-k ``|Pearson|``, symmetric max, self loops).

    Fit it on training cells only (``data.table.X[split.train]``) when a split is in force.
    """
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, Tensor) else x.float().contiguous()
    if xt.dim() != 2 or xt.shape[0] < 2:
        raise ValueError(f"coexpression_graph needs [N >= 2, G] cells, got shape {tuple(xt.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    key = _digest(xt.cpu().numpy().tobytes(), str(tuple(xt.shape)).encode(), f"k={k}".encode(), b"no-zero-edges")
    if key in _CACHE:
        return _CACHE[key].clone()
    path = os.path.join(os.fspath(cache_dir), f"coexpr_{key}.pt") if cache_dir is not None else None
    if path is not None and os.path.exists(path):
        adj = torch.load(path)
    else:
        adj = topk_adjacency(pearson(xt.cpu()), k)
        if path is not None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            torch.save(adj, path)
    _CACHE[key] = adj
    return adj.clone()


def edge_list_graph(edges: str | os.PathLike[str] | Iterable[tuple[str, str]], genes: Sequence[str], symmetric: bool = True) -> Tensor:
    """``[G, G]`` bool adjacency from gene pairs (or a CSV/TSV file whose first two columns are pairs).

    Edges naming genes outside ``genes`` are dropped with a warning; self loops are added.
    """
    if isinstance(edges, str | os.PathLike):
        df = pd.read_csv(edges, sep=None, engine="python", header=None, dtype=str)
        if df.shape[1] < 2:
            raise ValueError(f"edge list {os.fspath(edges)!r} needs two columns (source, target)")
        pairs = list(zip(df.iloc[:, 0].str.strip(), df.iloc[:, 1].str.strip()))
        index = {g: i for i, g in enumerate(genes)}
        if pairs and pairs[0][0] not in index and pairs[0][1] not in index:
            pairs = pairs[1:]  # a header row
    else:
        pairs = [(str(a), str(b)) for a, b in edges]
    index = {g: i for i, g in enumerate(genes)}
    keep = [(index[a], index[b]) for a, b in pairs if a in index and b in index]
    dropped = len(pairs) - len(keep)
    if dropped:
        warn(f"edge_list_graph: dropped {dropped} of {counted(len(pairs), 'edge')} naming genes not in the data")
    g = len(genes)
    adj = torch.zeros(g, g, dtype=torch.bool)
    if keep:
        ij = torch.tensor(keep, dtype=torch.long)
        adj[ij[:, 0], ij[:, 1]] = True
    if symmetric:
        adj = adj | adj.T
    adj.fill_diagonal_(True)
    return adj


def gene_graph(data: PerturbationData, fit_on: Sequence[int] | Any, k: int = 30, cache_dir: str | os.PathLike[str] | None = None) -> Tensor:
    """``[G, G]`` co-expression graph of ``data`` fitted on cells ``fit_on`` (normally ``split.train``).

    Records ``data.fitted["gene_graph"]`` so that ``split.check_leakage(data)`` can verify that no
    validation or test cell was used.
    """
    idx = np.sort(np.asarray(fit_on, dtype=np.int64))
    adj = coexpression_graph(data.table.X[torch.from_numpy(idx)], k=k, cache_dir=cache_dir)
    data.fitted["gene_graph"] = idx
    return adj
