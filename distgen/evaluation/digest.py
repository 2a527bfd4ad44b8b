"""Content digests of the real cells behind each row of an evaluation (``summary.json["truth_digests"]``).

``distgen compare`` pairs two evaluations row by row; a row is a paired observation only when both were scored on
the same real cells, perturbed and control. The number of real cells per row (``n_cells_real``) cannot show it: two
truths drawn with another seed, or one file rewritten with other cells of the same counts, have the same numbers
and other cells. A row's digest is a hash of its real cells' values and of the control cells its delta is taken
against, independent of the order of the cells and of the genes (the evaluation reorders neither into a score) and
of the file's dtype (values are scored as float32), so the same truth reread, resorted or copied has the same digests.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

#: ``summary.json`` key: ``{row label: digest}`` of the real cells each row was scored on.
TRUTH_DIGESTS = "truth_digests"
#: ``summary.json`` key: the same of the predicted cells (``python -m distgen.report`` checks the files it rereads).
PRED_DIGESTS = "pred_digests"


def cells_digest(x: Any, order: np.ndarray | None = None) -> bytes:
    """A digest of the rows of ``x [n, G]`` as a multiset: the same cells in any row order give the same bytes.

    ``order`` reorders the gene columns first (genes by name, so that the gene order of the file does not count).
    """
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)
    if order is not None and not bool(np.array_equal(order, np.arange(len(order)))):
        a = a.take(order, axis=1)  # a new C-ordered array (a[:, order] is F-ordered: twice the time made contiguous)
        a += np.float32(0)  # -0.0 as 0.0: equal values, equal bytes
    else:
        a = np.ascontiguousarray(a + np.float32(0))
    h = hashlib.blake2b(repr(a.shape).encode(), digest_size=16)
    if a.size:
        rows = a.view(np.dtype((np.void, a.shape[1] * a.itemsize))).ravel()
        h.update(np.sort(rows).tobytes())
    return h.digest()


def truth_digests(data: Any, label: Callable[[str], str] = str, side: str = "real") -> dict[str, str]:
    """``{row label: digest}`` of ``data``'s (an ``EvalData``) real cells: each perturbation's with the real control cells
    (``side="pred"``: the predicted cells with the prediction's control cells)."""
    pop = getattr(data, side)
    genes = [str(g) for g in data.genes]
    order = np.argsort(np.asarray(genes, dtype=object), kind="stable")
    control = cells_digest(pop.control, order) + "\x00".join(sorted(genes)).encode()
    out = {}
    for p, name in enumerate(data.perts):
        h = hashlib.blake2b(control, digest_size=8)
        h.update(cells_digest(pop.cells(p), order))
        out[str(label(name))] = h.hexdigest()
    return out


def summary_digests(datas: Mapping[str, Any], label: Callable[[str, str], str]) -> dict[str, dict[str, str]]:
    """``{TRUTH_DIGESTS: ..., PRED_DIGESTS: ...}`` for ``summary.json`` over ``{context: EvalData}``, rows labelled
    ``label(perturbation, context)``."""
    out: dict[str, dict[str, str]] = {}
    for key, side in ((TRUTH_DIGESTS, "real"), (PRED_DIGESTS, "pred")):
        out[key] = {}
        for ctx, data in datas.items():
            out[key].update(truth_digests(data, functools.partial(_context_label, label, ctx), side))
    return out


def _context_label(label: Callable[[str, str], str], context: str, perturbation: str) -> str:
    return label(perturbation, context)
