"""Seeds and orders derived from what a draw is for, so that it depends on that and nothing else.

A prediction's noise for one (condition, context, batch) group, or the ceiling's half-split of one
perturbation, should be the same whichever other groups are processed beside it and in whatever order
the rows come. ``label_seed`` gives such a seed: a hash of the labels (BLAKE2b, stable across processes
and Python versions, unlike ``hash``) mixed with the seed by numpy's ``SeedSequence``. A seeded shuffle of
a set of cells is only as canonical as the order it starts from: ``content_order`` (``content_keys``) orders
cells by their values, so the same cells in another row (or gene) order are drawn alike (the ceiling's halves,
``distgen.evaluation.ceiling``; the control cells a prediction and the baselines start from, ``distgen.data.groups``).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    import scipy.sparse as sp


def label_seed(seed: int, labels: Sequence[str], stream: int = 0) -> int:
    """A 63-bit seed from ``seed``, the ``labels`` (in order) and a ``stream`` number keeping different uses apart."""
    key = int.from_bytes(hashlib.blake2b("\x1f".join(labels).encode(), digest_size=16).digest(), "little")
    state = np.random.SeedSequence([int(seed) % 2**64, key, int(stream)]).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def _gene_multipliers(genes: Sequence[str]) -> np.ndarray:
    """An odd 64-bit number per gene, from its name (BLAKE2b)."""
    return np.array([int.from_bytes(hashlib.blake2b(str(g).encode(), digest_size=8).digest(), "little") | 1 for g in genes],
                    dtype=np.uint64)


def content_keys(X: Any, genes: Sequence[str]) -> np.ndarray:
    """``[N]`` uint64 keys of the rows of ``X [N, G]`` (a tensor, array or scipy sparse matrix) from their float32 values.

    The key of a row is ``sum_j bits(x_j) * m(gene_j)`` modulo 2**64, ``m`` an odd 64-bit number from the gene's
    name: a sum, so the column order does not enter it; a zero (``+0.0`` or ``-0.0``) adds nothing. A sparse matrix
    gets the keys of its dense form from its stored values alone (duplicate entries summed first, as densifying does),
    at most 4 million at a time. Identical rows get equal keys; distinct rows collide with probability about 2**-64.
    """
    mult = _gene_multipliers(genes)
    sparse = sys.modules.get("scipy.sparse")  # not imported here (~0.1 s of a cold distgen evaluate): a matrix of it has imported it
    if sparse is not None and sparse.issparse(X):
        return _sparse_keys(sparse.csr_matrix(X), mult)
    x: Any = X.detach().cpu().numpy() if isinstance(X, Tensor) else np.asarray(X)
    keys = np.empty(x.shape[0], dtype=np.uint64)
    step = max(1, min(1024, 4_000_000 // max(len(mult), 1)))  # a block's buffer: at most 32 MB
    buf = np.empty((min(step, x.shape[0]), len(mult)), dtype=np.uint64)  # one buffer for every block
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64 is the point
        for start in range(0, x.shape[0], step):
            block = np.asarray(x[start : start + step], dtype=np.float32) + np.float32(0.0)  # -0.0 hashes as 0.0
            out = buf[: block.shape[0]]
            np.multiply(block.view(np.uint32), mult, out=out)
            keys[start : start + block.shape[0]] = out.sum(1, dtype=np.uint64)
    return keys


#: Stored values of a sparse matrix ``content_keys`` hashes at a time (32 MB of products).
SPARSE_BLOCK = 4_000_000


def _sparse_keys(x: sp.csr_matrix, mult: np.ndarray) -> np.ndarray:
    """``content_keys`` of a CSR matrix: each row's sum over its stored values only (a zero adds nothing to it)."""
    if not x.has_canonical_format:  # duplicate entries are one value of the dense form: summed before hashing
        x = x.copy()
        x.sum_duplicates()
    n = x.shape[0]
    indptr = x.indptr.astype(np.int64)
    keys = np.zeros(n, dtype=np.uint64)
    start = 0
    with np.errstate(over="ignore"):
        while start < n:  # rows holding at most SPARSE_BLOCK stored values at a time (one row whatever its size)
            stop = min(n, max(start + 1, int(np.searchsorted(indptr, indptr[start] + SPARSE_BLOCK, side="right")) - 1))
            lo, hi = int(indptr[start]), int(indptr[stop])
            bits = (np.asarray(x.data[lo:hi], dtype=np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 hashes as 0.0
            total = np.zeros(hi - lo + 1, dtype=np.uint64)
            np.cumsum(bits * mult[x.indices[lo:hi]], dtype=np.uint64, out=total[1:])
            keys[start:stop] = total[indptr[start + 1 : stop + 1] - lo] - total[indptr[start:stop] - lo]  # modulo 2**64
            start = stop
    return keys


def name_keys(names: Sequence[str]) -> np.ndarray:
    """``[N]`` uint64 keys of cells from their names (``obs_names``: unique in memory and streaming), BLAKE2b: what a
    capped group's draw is ordered by (``distgen.data.groups.held_out_groups``), so that it depends on which cells they
    are and not on how their values are stored (counts or log1p, another normalisation total)."""
    return np.array([int.from_bytes(hashlib.blake2b(str(n).encode(), digest_size=8).digest(), "little") for n in names],
                    dtype=np.uint64)


def content_order(X: Any, genes: Sequence[str]) -> Tensor:
    """``[N]`` ranks of the rows of ``X [N, G]`` by ``content_keys``: an order that does not depend on the row or gene order.

    A canonical order of a set of cells: the same cells in another row order, or with their genes in
    another column order, get the same ranks. Identical rows tie (and are interchangeable; ties keep the
    row order).
    """
    order = np.argsort(content_keys(X, genes), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return torch.from_numpy(ranks)


#: An odd 64-bit multiplier (the golden ratio's, as SplitMix64 uses) that scatters salted keys before they are ranked.
_SCATTER = np.uint64(0x9E3779B97F4A7C15)


def content_subset(keys: np.ndarray, cap: int, seed: int = 0) -> Tensor:
    """Indices of at most ``cap`` of the rows whose ``content_keys`` are ``keys [N]`` (all when ``N <= cap``), in an
    order of their values: the rows first in an order of their keys salted by ``seed`` (a pseudo-random subset).

    The same cells in another row or gene order give the same cells in the same order (identical rows are
    interchangeable), another ``seed`` another subset. What a figure that shows a sample of cells draws it by, in that
    order (``distgen.evaluation.report.pick_rows``, ``distgen.report.cells``): a subset by position, drawn in row
    order, gave another figure for the same file saved in another row order.
    """
    salt = np.uint64(label_seed(seed, ("content_subset",)))
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64
        mixed = (np.asarray(keys, dtype=np.uint64) ^ salt) * _SCATTER
    mixed ^= mixed >> np.uint64(31)
    return torch.from_numpy(np.argsort(mixed, kind="stable")[: max(cap, 0)].astype(np.int64))


__all__ = ["content_keys", "content_order", "content_subset", "label_seed", "name_keys"]
