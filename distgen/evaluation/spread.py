"""Distribution-over-distributions metrics: compare the SPREAD of several populations per condition.

Given ``R`` generated populations for one condition (e.g. one per donor, batch or seed) and ``S``
real replicate populations (donors, batches), a model can match each mean population yet collapse
the between-replicate variation. These metrics look one level up, at the populations as points in
the RKHS of a cell kernel (kernel mean embeddings; distances between them are MMDs):

* ``population_mmd2``: MMD^2 between the two SETS of populations, with the Gaussian kernel
  ``K(P, Q) = exp(-MMD^2(P, Q) / (2 s^2))`` on populations (``s^2`` = median of the off-diagonal real-real
  MMD^2s clamped at 0, the lower one of an even count as ``torch.median`` takes it);
* ``spread_ratio``: root mean square of the pairwise MMDs between generated populations over the same
  among real ones (1 = same spread, < 1 = too little between-replicate variation);
* ``replicate_coverage``: fraction of real replicates that some generated population is closer to
  than the nearest other real replicate (a population-level coverage, cf. Naeem et al. 2020).

Every population distance is the **unbiased** MMD^2 (U-statistic); ``spread_ratio`` averages them before clamping
the mean at 0 (clamping each pair first would bias a small spread upwards), the other two clamp each at 0. The biased one adds
``(E k(x, x) - E k(x, x')) (1/n + 1/m)`` to every distance, a floor set by the populations' sizes, not
their difference: two draws of one population looked apart, a collapsed generator (one law for every
donor) scored a spread ratio of 0.25 instead of about 0, and a generator writing more cells than a small
donor has looked less spread than the truth (``tests/evaluation/test_spread.py``). Each population
needs at least 2 cells. The cell kernel's data-dependent parameters (RBF median bandwidths) come from
all real cells pooled, so every distance is measured in one RKHS; the energy kernel has none.

Undefined cases are refused or NaN, never a number: fewer than 2 generated or real populations
(``population_mmd2``, ``spread_ratio``) or fewer than 2 real ones (``replicate_coverage``) raise
``ValueError``; real populations that do not differ (mean real-real MMD^2 <= 0: a ratio 0/0 or x/0, and no
bandwidth for ``population_mmd2``) give NaN.

``spread_scores`` applies them to labelled cells (``distgen.types.Cells``): one row per (condition,
context) of the truth, the populations being its batches (the run's ``data.schema.batch_col``; the
``batch`` column of a file).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.kernels.base import Kernel
from distgen.kernels.distances import mmd2

#: The spread metrics, in report order.
SPREAD_METRICS = ("spread_ratio", "population_mmd2", "replicate_coverage")


def pairwise_mmd2(a: Tensor, b: Tensor, kernel: Kernel, a_mask: Tensor | None = None, b_mask: Tensor | None = None,
                  ref: Tensor | None = None, ref_mask: Tensor | None = None, unbiased: bool = False, clamp: bool = True) -> Tensor:
    """``[A, B]`` MMD^2 between populations ``a [A, n, D]`` and ``b [B, m, D]`` (masks optional), clamped at 0 (``clamp``).

    Kernel hyper-parameters come from one shared reference set ``ref [r, D]`` (default: all of ``b``
    pooled), so every entry is measured in the same RKHS. Computed one row of ``a`` at a time (an
    ``[A * B, n, D]`` copy of the cells is never made). ``unbiased``: U-statistic (needs 2 cells per
    population) instead of the V-statistic.
    """
    a_mask = torch.ones(a.shape[:2], dtype=torch.bool) if a_mask is None else a_mask
    b_mask = torch.ones(b.shape[:2], dtype=torch.bool) if b_mask is None else b_mask
    if ref is None:
        ref, ref_mask = b.reshape(1, -1, b.shape[-1]), b_mask.reshape(1, -1)
    elif ref.dim() == 2:
        ref, ref_mask = ref[None], None if ref_mask is None else ref_mask[None]
    if unbiased:
        for name, m in (("a", a_mask), ("b", b_mask)):
            if bool((m.sum(1) < 2).any()):
                raise ValueError(f"population {int((m.sum(1) < 2).nonzero()[0])} of {name} has fewer than 2 cells: "
                                 "the unbiased MMD^2 needs at least 2 per population")
    nb = b.shape[0]
    rows = [mmd2(a[i : i + 1].expand(nb, *a.shape[1:]), b, kernel, a_mask[i : i + 1].expand(nb, -1), b_mask,
                 unbiased=unbiased, ref=ref, ref_mask=ref_mask) for i in range(a.shape[0])]
    out = torch.stack(rows)
    return out.clamp_min(0.0) if clamp else out


def _off_diag_mean(d: Tensor) -> Tensor:
    n = d.shape[0]
    return (d.sum() - d.diagonal().sum()) / max(n * (n - 1), 1)


def _need(gen: Tensor, real: Tensor, what: str, min_gen: int = 2) -> None:
    if gen.shape[0] < min_gen or real.shape[0] < 2:
        raise ValueError(f"{what} needs at least {min_gen} generated and 2 real populations, got {gen.shape[0]} and "
                         f"{real.shape[0]}")


def _ref(real: Tensor, real_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    return real.reshape(-1, real.shape[-1]), None if real_mask is None else real_mask.reshape(-1)


def population_mmd2(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None = None, real_mask: Tensor | None = None) -> Tensor:
    """MMD^2 (unbiased over populations) between the set of generated and the set of real populations; NaN when the
    real populations do not differ (no bandwidth ``s``). Needs >= 2 of each."""
    _need(gen, real, "population_mmd2")
    d = _distances(gen, real, kernel, gen_mask, real_mask)
    return population_mmd2_of(d["gg"], d["rr"], d["gr"])


def spread_ratio(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None = None, real_mask: Tensor | None = None) -> Tensor:
    """``sqrt(mean MMD^2 among generated / mean MMD^2 among real)`` (1 = same spread); NaN when the real populations do
    not differ. Needs >= 2 of each."""
    _need(gen, real, "spread_ratio")
    d = _distances(gen, real, kernel, gen_mask, real_mask, cross=False)
    return spread_ratio_of(d["gg"], d["rr"])


def replicate_coverage(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None = None, real_mask: Tensor | None = None) -> Tensor:
    """Fraction of real replicates whose nearest generated population is within their nearest real neighbour's MMD.
    Needs >= 1 generated and >= 2 real populations."""
    _need(gen, real, "replicate_coverage", min_gen=1)
    d = _distances(gen, real, kernel, gen_mask, real_mask, within_gen=False)
    return replicate_coverage_of(d["rr"], d["gr"])


def _distances(gen: Tensor, real: Tensor, kernel: Kernel, gen_mask: Tensor | None, real_mask: Tensor | None, cross: bool = True,
               within_gen: bool = True) -> dict[str, Tensor]:
    """The unbiased MMD^2 matrices ``gg``, ``rr``, ``gr`` (each computed once), in the RKHS fixed by the real cells."""
    ref, ref_mask = _ref(real, real_mask)
    out = {"rr": pairwise_mmd2(real, real, kernel, real_mask, real_mask, ref, ref_mask, unbiased=True, clamp=False)}
    if within_gen:
        out["gg"] = pairwise_mmd2(gen, gen, kernel, gen_mask, gen_mask, ref, ref_mask, unbiased=True, clamp=False)
    if cross:
        out["gr"] = pairwise_mmd2(gen, real, kernel, gen_mask, real_mask, ref, ref_mask, unbiased=True, clamp=False)
    return out


def spread_ratio_of(dgg: Tensor, drr: Tensor) -> Tensor:
    """``spread_ratio`` from the ``[R, R]`` generated and ``[S, S]`` real MMD^2 matrices."""
    g, r = _off_diag_mean(dgg).clamp_min(0.0), _off_diag_mean(drr)  # means of the unbiased values, then clamped
    return (g / r).sqrt() if bool(r > 0) else torch.tensor(math.nan, dtype=r.dtype)


def population_mmd2_of(dgg: Tensor, drr: Tensor, dgr: Tensor) -> Tensor:
    """``population_mmd2`` from the MMD^2 matrices (``dgr [R, S]``)."""
    dgg, drr, dgr = (d.clamp_min(0.0) for d in (dgg, drr, dgr))  # a distance for the population kernel
    s2 = drr[~torch.eye(drr.shape[0], dtype=torch.bool)].median()
    if not bool(s2 > 0):
        return torch.tensor(math.nan, dtype=drr.dtype)
    kgg, krr, kgr = (torch.exp(-d / (2 * s2)) for d in (dgg, drr, dgr))
    return _off_diag_mean(kgg) + _off_diag_mean(krr) - 2 * kgr.mean()


def replicate_coverage_of(drr: Tensor, dgr: Tensor) -> Tensor:
    """``replicate_coverage`` from the real ``[S, S]`` and generated-real ``[R, S]`` MMD^2 matrices."""
    drr, dgr = drr.clamp_min(0.0), dgr.clamp_min(0.0)
    radius = (drr + torch.diag(torch.full((drr.shape[0],), float("inf"), dtype=drr.dtype))).min(1).values
    return (dgr.min(0).values <= radius).to(torch.float64).mean()


# --------------------------------------------------------------------------------------------------
# Labelled cells: one row per (condition, context), its batches the populations
# --------------------------------------------------------------------------------------------------

#: The permutation test of "the real batches differ" (``batch_permutation_test``), which decides whether a group's spread
#: ratios measure between-batch variation: permutations of the batch labels among a group's real cells (as scored), the
#: level at which a group's real spread is read as distinguishable from noise. 199 permutations put p on a grid of 1/200.
SPREAD_PERMUTATIONS = 199
SPREAD_ALPHA = 0.05
#: Each group's permutations are seeded by ``distgen.seeds.label_seed(seed, (PERMUTATION_STREAM, group label))``: its own
#: stream, whichever other groups are scored (any integer ``seed``, negative ones included).
PERMUTATION_STREAM = "batch_permutation_test"

#: Cells of a group the permutation test holds at most (an equal share of each batch's scored cells, the first in a seeded
#: order of their values: a pseudo-random subset whatever the row order; at least 2 a batch, so over 2,000 batches more):
#: its Gram matrix is ``cells^2`` float64 (4,000 cells: 128 MB); the statistic stays unbiased, only noisier.
PERMUTATION_CELLS = 4000

#: Cells per population kept for the spread scores (a seeded subset in the order of the cells' values): the cost is
#: quadratic in it, and the unbiased distances carry no bias from a cap, only more noise.
MAX_POPULATION_CELLS = 500


class _Groups:
    """Row indices of ``cells`` per (condition, context) and batch, built in one pass over the table.

    ``by[(condition, context)][batch]``: that group's rows of that batch, ascending (as ``np.flatnonzero`` of the row
    masks gives them). Labels are matched by hash and equality, as ``set`` and ``==`` match them; the spread scores look
    groups up here instead of comparing every label of the table for each group and side (~15 scans a group).
    """

    def __init__(self, cells: Any) -> None:
        self.cells = cells
        self.by: dict[tuple[Any, Any], dict[Any, np.ndarray]] = {}
        n = len(cells.conditions)
        if n == 0:
            return
        keys = [_codes(cells.conditions), _codes(cells.contexts), _codes(cells.batches)]
        code = keys[0][1]
        for uniques, c in keys[1:]:
            code = code * len(uniques) + c
        order = np.argsort(code, kind="stable")  # each group's rows ascending
        bounds = np.flatnonzero(np.diff(code[order])) + 1
        for part in np.split(order, bounds):
            i = int(part[0])
            cond, ctx, batch = cells.conditions[i], cells.contexts[i], cells.batches[i]
            self.by.setdefault((cond, ctx), {})[batch] = part

    def batches(self, condition: Any, context: Any) -> dict[Any, np.ndarray]:
        """``{batch: rows}`` of one group (empty when the table has none of it)."""
        return self.by.get((condition, context), {})


def _codes(values: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """Distinct labels (in order of appearance) and each row's ``int64`` code."""
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()), dtype=np.int64, count=len(values))
    return list(index), codes


def _rows_of(cells: Any, rows: np.ndarray) -> Tensor:
    """``cells.X[rows]``, gathering only those rows: ``cells.X`` of an ``IndexedCells`` (the control baseline's prediction)
    gathers its whole table each time it is read, once per group and side before (a table of the truth's size each)."""
    return cells.subset(rows).X


def populations(cells: Any, condition: str, context: str, cap: int = MAX_POPULATION_CELLS, seed: int = 0,
                pool: bool = False) -> tuple[list[str], Tensor, Tensor]:
    """The batches of ``cells``' (``condition``, ``context``) group with at least 2 cells, as ``[P, n, G]`` float64 cells
    padded with a ``[P, n]`` mask; at most ``cap`` cells a batch (``distgen.seeds.content_subset``: the same cells
    whatever the row order). ``pool``: the group's batches as one population (named by its batches, ``|``-joined)."""
    rows = np.flatnonzero((cells.conditions == condition) & (cells.contexts == context))
    by_batch = {b: rows[cells.batches[rows] == b] for b in set(cells.batches[rows].tolist())}
    return _populations(cells, by_batch, cap, seed, pool)


def _populations(cells: Any, by_batch: dict[Any, np.ndarray], cap: int, seed: int, pool: bool = False) -> tuple[list[str], Tensor, Tensor]:
    """``populations`` of one group given its ``{batch: rows}`` (``_Groups.batches``)."""
    from distgen.seeds import content_keys, content_subset

    batches = sorted(by_batch)
    if pool:
        pooled = np.sort(np.concatenate([by_batch[b] for b in batches])) if batches else np.zeros(0, dtype=np.int64)
        items = [("|".join(map(str, batches)), pooled)]
    else:
        items = [(b, by_batch[b]) for b in batches]
    names, parts = [], []
    for batch, mine in items:
        if len(mine) < 2:
            continue
        x = _rows_of(cells, mine).to(torch.float64)
        if len(mine) > cap:
            x = x[content_subset(content_keys(x, cells.genes), cap, seed)]
        names.append(str(batch))
        parts.append(x)
    n = max((len(p) for p in parts), default=0)
    out = torch.zeros(len(parts), n, len(cells.genes), dtype=torch.float64)
    mask = torch.zeros(len(parts), n, dtype=torch.bool)
    for i, p in enumerate(parts):
        out[i, : len(p)], mask[i, : len(p)] = p, True
    return names, out, mask


def spread_row(gen: tuple[Tensor, Tensor], real: tuple[Tensor, Tensor], kernel: Kernel, drr: Tensor | None = None,
               copies: int | None = None) -> dict[str, Any]:
    """The three metrics of generated populations ``(cells, mask)`` against real ones; NaN with ``note`` when undefined.
    ``drr``: the real populations' MMD^2 matrix when already computed (one per group, shared by every side).
    ``copies``: ``gen`` is one population standing for that many identical ones (a collapsed prediction): its
    distances are computed once, not once per copy."""
    n_gen, n_real = (gen[0].shape[0] if copies is None else (copies if gen[0].shape[0] else 0)), real[0].shape[0]
    out: dict[str, Any] = {"n_populations": int(n_gen)}
    why = []
    if n_real < 2 or n_gen < 1:
        why.append(f"needs at least 2 real and 1 generated populations (batches of 2+ cells), got {n_real} and {n_gen}")
        return {**out, **dict.fromkeys(SPREAD_METRICS, math.nan), "note": why[0]}
    ref, ref_mask = _ref(*real)
    rr = drr if drr is not None else pairwise_mmd2(real[0], real[0], kernel, real[1], real[1], ref, ref_mask, unbiased=True, clamp=False)
    gr = pairwise_mmd2(gen[0], real[0], kernel, gen[1], real[1], ref, ref_mask, unbiased=True, clamp=False)
    if copies is not None:
        gr = gr.expand(copies, -1)
    out["replicate_coverage"] = float(replicate_coverage_of(rr, gr))
    if n_gen < 2:
        why.append(f"spread_ratio and population_mmd2 need at least 2 generated populations, got {n_gen}")
        out["spread_ratio"] = out["population_mmd2"] = math.nan
    else:
        one = gen if copies is None else (gen[0][:1], gen[1][:1])
        gg = pairwise_mmd2(one[0], one[0], kernel, one[1], one[1], ref, ref_mask, unbiased=True, clamp=False)
        if copies is not None:
            gg = gg.expand(copies, copies)
        out["spread_ratio"] = float(spread_ratio_of(gg, rr))
        out["population_mmd2"] = float(population_mmd2_of(gg, rr, gr))
        if math.isnan(out["spread_ratio"]):
            why.append("the real populations do not differ (mean real-real MMD^2 <= 0): no spread to compare with")
    if why:
        out["note"] = "; ".join(why)
    return {k: out[k] for k in ("n_populations", *SPREAD_METRICS, *(["note"] if why else []))}


def _test_sizes(sizes: list[int], max_cells: int) -> list[int]:
    """Cells of each batch the permutation test keeps: all of them when they total at most ``max_cells``, else the largest
    equal share each (a batch smaller than its share keeps all of its cells, the rest shared among the others), never
    fewer than 2 (a batch of 1 cell has no unbiased within-batch term: over ``max_cells / 2`` batches the cap yields)."""
    if sum(sizes) <= max_cells:
        return list(sizes)
    keep, left = [0] * len(sizes), max_cells
    for done, i in enumerate(sorted(range(len(sizes)), key=lambda j: sizes[j])):  # smallest first: its spare share passes on
        keep[i] = min(sizes[i], max(2, left // (len(sizes) - done)))
        left -= keep[i]
    return keep


def _between_means(gram: np.ndarray, labels: np.ndarray, n_batches: int) -> np.ndarray:
    """The mean unbiased MMD^2 over ordered pairs of distinct batches (``_off_diag_mean`` of the real-real matrix) for each
    row of ``labels [P, N]`` (a batch index per cell), from the cells' ``[N, N]`` Gram matrix; batch sizes as in each row."""
    diag = np.diagonal(gram)
    off = ~np.eye(n_batches, dtype=bool)
    out = np.empty(len(labels))
    for start in range(0, len(labels), 16):  # 16 labellings at a time: one-hot [16, N, S] and K @ Z of that size
        lab = labels[start : start + 16]
        z = np.zeros((len(lab), lab.shape[1], n_batches))
        np.put_along_axis(z, lab[:, :, None], 1.0, axis=2)
        kz = (gram @ z.transpose(1, 0, 2).reshape(lab.shape[1], -1)).reshape(lab.shape[1], len(lab), n_batches)
        sums = z.transpose(0, 2, 1) @ kz.transpose(1, 0, 2)  # [p, S, S] block sums of the Gram matrix, batch by batch
        n = z.sum(1)  # [p, S]
        within = (np.diagonal(sums, axis1=1, axis2=2) - z.transpose(0, 2, 1) @ diag) / (n * (n - 1))
        cross = sums / (n[:, :, None] * n[:, None, :])
        pair = within[:, :, None] + within[:, None, :] - 2 * cross
        out[start : start + len(lab)] = pair[:, off].mean(1)
    return out


def batch_permutation_test(real: Tensor, mask: Tensor, kernel: Kernel, permutations: int = SPREAD_PERMUTATIONS,
                           seed: int = 0, max_cells: int = PERMUTATION_CELLS, genes: Sequence[str] | None = None) -> dict[str, Any]:
    """Permutation test of "the real batches differ" for one group's real populations ``real [S, n, G]`` (``mask [S, n]``),
    as the spread scores hold them: the statistic is the mean unbiased MMD^2 between the batches (``spread_ratio``'s
    denominator, ``real_spread``), recomputed from one Gram matrix of the group's cells for ``permutations`` random
    reassignments of the batch labels among its cells (batch sizes kept; seeded by ``seed``). The kernel's data-dependent
    parameters come from the real cells pooled, as scored, which no permutation changes. Each batch's cells are taken in a
    seeded order of their values (``distgen.seeds.content_subset`` of their ``content_keys`` under ``genes``, default the
    positions' names), so the same cells in another row order give the same p; over ``max_cells`` cells, an equal share of
    each batch, the first in that order (a pseudo-random subset, never the first rows of a sorted file) (``_test_sizes``). Returns ``{"p", "statistic", "cells"}``: ``p = (1 + #{permuted >=
    observed}) / (1 + permutations)`` (a permuted value within 1e-9 of the Gram matrix's scale of the observed one counts as
    reaching it: a labelling that only renames the batches gives the observed value up to rounding), in ``(0, 1]``."""
    sizes = [int(v) for v in mask.sum(1).tolist()]
    if len(sizes) < 2 or min(sizes) < 2:
        raise ValueError(f"the permutation test needs at least 2 batches of 2+ cells, got sizes {sizes}")
    from distgen.seeds import content_keys, content_subset

    keep = _test_sizes(sizes, max_cells)
    names = [str(j) for j in range(real.shape[2])] if genes is None else list(genes)
    mine = [real[i][mask[i]] for i in range(len(keep))]
    cells = torch.cat([x[content_subset(content_keys(x, names), k, seed)] for x, k in zip(mine, keep, strict=True)])
    ref, ref_mask = _ref(real, mask)
    bound = kernel.bind(ref[None], None if ref_mask is None else ref_mask[None])
    gram = torch.cat([bound.gram(cells[i : i + 1024][None], cells[None])[0] for i in range(0, len(cells), 1024)]).numpy()
    labels = np.repeat(np.arange(len(keep)), keep)
    rng = np.random.default_rng(seed)
    stats = _between_means(gram, np.stack([labels, *(rng.permutation(labels) for _ in range(permutations))]), len(keep))
    observed, null = stats[0], stats[1:]
    tol = 1e-9 * float(np.abs(gram).max())
    p = (1 + int((null >= observed - tol).sum())) / (1 + permutations)
    return {"p": p, "statistic": float(observed), "cells": len(cells)}


def _permutation_work(sizes: list[int], genes: int, permutations: int = SPREAD_PERMUTATIONS,
                      max_cells: int = PERMUTATION_CELLS) -> int:
    """``spread_work`` units of ``batch_permutation_test`` on populations of ``sizes`` cells: the Gram matrix's entries x genes,
    and each labelling's ``K @ Z`` (entries x batches)."""
    n = sum(_test_sizes(sizes, max_cells))
    return n * n * genes + (permutations + 1) * n * n * len(sizes)


def collapsed(cells: Any) -> Any:
    """``cells`` with each (condition, context) group's perturbed cells pooled over its batches and that one population
    copied under every batch label: a prediction with no between-batch variation (spread 0 by construction)."""
    from distgen.types import Cells

    pert = np.flatnonzero(~cells.is_control)
    idx, bats = [], []
    keys = sorted(set(zip(cells.conditions[pert].tolist(), cells.contexts[pert].tolist(), strict=True)))
    for cond, ctx in keys:
        rows = pert[(cells.conditions[pert] == cond) & (cells.contexts[pert] == ctx)]
        for batch in sorted(set(cells.batches[rows].tolist())):
            idx.append(rows)
            bats += [batch] * len(rows)
    i = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
    return Cells(_rows_of(cells, i), cells.conditions[i], cells.genes, cells.contexts[i], np.asarray(bats, dtype=object),
                 cells.control)


def split_halves(cells: Any, seed: int = 0, groups: _Groups | None = None) -> tuple[Any, Any]:
    """Two disjoint halves of every (condition, context, batch) group of ``cells``' perturbed cells (``floor(n/2)`` each,
    in a seeded order of the cells' values): the real split-half, the spread scores' positive reference. ``groups``:
    ``cells``' row index when already built."""
    from distgen.seeds import content_keys, content_subset

    groups = _Groups(cells) if groups is None else groups
    a, b = [], []
    keys = sorted((cond, ctx, batch) for (cond, ctx), by_batch in groups.by.items() if cond != cells.control for batch in by_batch)
    for cond, ctx, batch in keys:
        rows = groups.by[(cond, ctx)][batch]
        order = rows[content_subset(content_keys(_rows_of(cells, rows), cells.genes), len(rows), seed).numpy()]
        h = len(rows) // 2
        a.append(order[:h])
        b.append(order[h : 2 * h])
    return (cells.subset(np.concatenate(a)) if a else cells.subset(np.zeros(0, dtype=np.int64)),
            cells.subset(np.concatenate(b)) if b else cells.subset(np.zeros(0, dtype=np.int64)))


#: ``spread_work`` units charged per ``mmd2`` call (one per row of a ``pairwise_mmd2``): its fixed cost, a few ms on one core.
CALL_WORK = 10**7


def _pair_work(a: int, n: int, b: int, m: int, genes: int) -> int:
    """Work of ``pairwise_mmd2`` of ``a`` populations of ``n`` (padded) cells against ``b`` of ``m``: the kernel-entry x gene
    products of each of the ``a * b`` pairs' ``n x n``, ``m x m`` and ``n x m`` blocks, and ``CALL_WORK`` per ``mmd2`` call."""
    return a * b * (n * n + m * m + n * m) * genes + a * CALL_WORK


def _sizes(by_batch: dict[Any, np.ndarray], cap: int) -> list[int]:
    """Cells of each population ``_populations`` keeps (batches of 2+ cells, at most ``cap`` each)."""
    return [min(len(r), cap) for r in by_batch.values() if len(r) >= 2]


def spread_work(truth: Any, sides: dict[str, Any], cap: int = MAX_POPULATION_CELLS) -> dict[str, Any]:
    """How much ``spread_scores`` of ``sides`` (the model and each reference) against ``truth`` computes, before computing it.

    Returns ``{"groups": G, "work": W}``: the (condition, context) groups with 2+ real batches of 2+ cells, and the sum over
    them of ``_pair_work`` for every MMD^2 matrix scored (real-real; per side generated-real and generated-generated, and
    its pooled population against the real ones; the split-half's three), at the padded sizes they are computed at. The
    cost of the scores is about proportional to ``W`` (``SPREAD_SECONDS_PER_WORK``); it depends only on the labels and the
    group sizes, so whether ``spread="auto"`` scores a pair is the same on every machine.
    """
    t_idx = _Groups(truth)
    s_idx = {k: _Groups(v) for k, v in sides.items()}
    return _work(truth, t_idx, s_idx, cap)


def _work(truth: Any, t_idx: _Groups, s_idx: dict[str, _Groups], cap: int) -> dict[str, Any]:
    genes = len(truth.genes)
    groups, work = 0, 0
    for (cond, ctx), by_batch in t_idx.by.items():
        if cond == truth.control:
            continue
        real = _sizes(by_batch, cap)
        if len(real) < 2:
            continue
        groups += 1
        s, n = len(real), max(real)
        work += _pair_work(s, n, s, n, genes) + _permutation_work(real, genes)
        halves = [min(len(r) // 2, cap) for r in by_batch.values() if len(r) // 2 >= 2]
        if len(halves) >= 2:  # the split-half (spread_row): its real-real, generated-real and generated-generated matrices
            work += 3 * _pair_work(len(halves), max(halves), len(halves), max(halves), genes)
        for idx in s_idx.values():  # as spread_row computes them: gr with 1+ populations, gg with 2+
            gen_batches = idx.batches(cond, ctx)
            gen = _sizes(gen_batches, cap)
            if gen:
                g = max(gen)
                work += _pair_work(len(gen), g, s, n, genes) + (_pair_work(len(gen), g, len(gen), g, genes) if len(gen) >= 2 else 0)
            pooled = sum(len(r) for r in gen_batches.values())  # the collapsed copy: one population, as many copies as batches
            if pooled >= 2:
                p = min(pooled, cap)
                work += _pair_work(1, p, s, n, genes) + (_pair_work(1, p, 1, p, genes) if len(gen_batches) >= 2 else 0)
    return {"groups": groups, "work": int(work)}


def spread_scores(pred: Any, truth: Any, references: dict[str, Any] | None = None, kernel: str | Kernel = "energy", seed: int = 0,
                  cap: int = MAX_POPULATION_CELLS, progress: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Spread scores of ``pred`` (and each reference, and each collapsed to one population copied per batch) against the
    truth's batches, per (condition, context) with at least 2 real batches; the split-half of the truth as the positive
    reference. None when no group of the truth has 2 batches (nothing to score). ``kernel``: the cell kernel, a registered
    name (default ``energy``: bandwidth-free, PerturbDiff's loss) or a ``Kernel``.

    Returns ``{"kernel", "cells_per_population", "rows": {label: {"n_real": S, who: {metric..., n_populations, note?}}},
    "means": {who: {metric: mean over rows, NaN left out}}, "intervals": {who: {metric: [lo, hi]}}, "roles": {who: role}}``;
    ``who``: ``model``, each reference, ``model_collapsed`` and ``<reference>_collapsed``, ``split_half``. ``intervals``: of
    each mean over the groups (``_interval``; NaN below 2 groups): how far it would move with other groups like these, not
    the estimation noise of one group's value (the split-half row measures that).
    """
    from distgen.kernels import kernels
    from distgen.seeds import label_seed
    from distgen.wording import counted, first_of

    name = kernel if isinstance(kernel, str) else type(kernel).__name__
    kernel = kernels.build(kernel) if isinstance(kernel, str) else kernel
    t_idx = _Groups(truth)  # each table's rows grouped once: no scan of the whole table per group and side
    groups = sorted(key for key, by_batch in t_idx.by.items() if key[0] != truth.control and len(_sizes(by_batch, 2)) >= 2)
    if not groups:
        return None
    sides = {"model": pred, **dict(references or {})}  # each also scored collapsed (collapsed(cells), computed pooled once)
    s_idx = {who: _Groups(cells) for who, cells in sides.items()}
    half_a, half_b = split_halves(truth, seed, t_idx)
    a_idx, b_idx = _Groups(half_a), _Groups(half_b)
    roles = {"model": "model", **{k: "negative" for k in sides if k != "model"}, **{f"{k}_collapsed": "collapsed" for k in sides},
             "split_half": "positive"}
    rows: dict[str, Any] = {}
    for cond, ctx in groups:
        label = cond if ctx == "all" else f"{cond} @ {ctx}"
        if progress is not None:
            progress(f"spread of {label}")
        _, rx, rm = _populations(truth, t_idx.batches(cond, ctx), cap, seed)
        row: dict[str, Any] = {"n_real": int(rx.shape[0])}
        drr = pairwise_mmd2(rx, rx, kernel, rm, rm, *_ref(rx, rm), unbiased=True, clamp=False)
        for who, cells in sides.items():
            _, gx, gm = _populations(cells, s_idx[who].batches(cond, ctx), cap, seed)
            row[who] = spread_row((gx, gm), (rx, rm), kernel, drr)
        for who, cells in sides.items():
            mine = s_idx[who].batches(cond, ctx)
            _, px, pm = _populations(cells, mine, cap, seed, pool=True)
            row[f"{who}_collapsed"] = spread_row((px, pm), (rx, rm), kernel, drr, copies=len(mine))
        _, ax, am = _populations(half_a, a_idx.batches(cond, ctx), cap, seed)
        _, bx, bm = _populations(half_b, b_idx.batches(cond, ctx), cap, seed)
        row["split_half"] = spread_row((ax, am), (bx, bm), kernel)
        row["real_spread"] = float(_off_diag_mean(drr))  # mean unbiased MMD^2 between the real batches
        # do the real batches differ beyond noise? batch labels permuted among the group's cells (its own seeded stream)
        row["batch_test"] = batch_permutation_test(rx, rm, kernel, seed=label_seed(seed, (PERMUTATION_STREAM, label)),
                                                   genes=truth.genes)
        why = []
        if row["batch_test"]["p"] > SPREAD_ALPHA:
            why.append(f"the real batches' spread is not distinguishable from noise (permutation p = {row['batch_test']['p']:.3g} > "
                       f"{SPREAD_ALPHA:g}, {SPREAD_PERMUTATIONS} permutations of the batch labels among this group's cells), so no "
                       "spread_ratio of this group measures between-batch variation")
        short = sorted(str(b) for b, r in t_idx.batches(cond, ctx).items() if 2 <= len(r) < 4)
        if short:  # in the full-depth scores, not in the split-half: a half of 1 cell has no unbiased MMD^2
            why.append(f"the split-half leaves out {counted(len(short), 'batch', 'batches')} of fewer than 4 cells "
                       f"({first_of(short, 5, enclosed=True)}): a half of 1 cell has no unbiased MMD^2, so "
                       f"the split-half compares {row['split_half']['n_populations']} batches where the scores compare {row['n_real']}")
        if why:
            row["note"] = "; ".join(why)
        rows[label] = row
    whos = list(roles)
    means = {who: {m: _nanmean([r[who][m] for r in rows.values()]) for m in SPREAD_METRICS} for who in whos}
    intervals = {who: {m: _interval([r[who][m] for r in rows.values()], m, seed) for m in SPREAD_METRICS} for who in whos}
    tested = [r["batch_test"]["p"] for r in rows.values()]
    batch_test = {"permutations": SPREAD_PERMUTATIONS, "alpha": SPREAD_ALPHA, "seed": seed, "groups": len(tested),
                  "distinguishable": sum(p <= SPREAD_ALPHA for p in tested),
                  "statistic": "mean unbiased MMD^2 between the real batches (real_spread)"}
    out: dict[str, Any] = {"kernel": name, "cells_per_population": cap, "rows": rows, "means": means, "intervals": intervals,
                           "roles": roles, "batch_test": batch_test}
    unshared = _unshared_labels(truth, t_idx, s_idx["model"], groups)
    if unshared:
        out["batch_labels_note"] = unshared
    return out


def _unshared_labels(truth: Any, t_idx: _Groups, p_idx: _Groups, groups: list[tuple[Any, Any]]) -> str | None:
    """A note when, in some scored groups, the prediction's batch labels share none with the truth's; None otherwise. The
    scores pair no batches by label (sets of populations are compared), so they are defined; but a prediction made from the
    truth's batches' controls carries their labels, and none shared says it was not (another column, other donors). A
    prediction read without batches (every label ``ALL``) has no labels to share: its one population a group is said by
    the rows, not here."""
    from distgen.types.cells import ALL
    from distgen.wording import counted, first_of

    apart: list[tuple[str, list[str], list[str]]] = []
    for cond, ctx in groups:
        ours, real = set(p_idx.batches(cond, ctx)), set(t_idx.batches(cond, ctx))
        if ours and ours != {ALL} and not ours & real:  # {ALL}: read without batches, no labels to share (the row says got 1)
            apart.append((cond if ctx == "all" else f"{cond} @ {ctx}", sorted(map(str, ours)), sorted(map(str, real))))
    if not apart:
        return None
    label, mine, theirs = apart[0]

    def show(v: list[str]) -> str:
        return first_of(v, 4)

    return (f"spread: in {len(apart)} of {counted(len(groups), 'scored group')} the prediction's batch labels share none with the "
            f"truth's (e.g. {label}: prediction {show(mine)}; truth {show(theirs)}). The spread scores compare the two sets of "
            "populations without pairing batches by label, so they are scored, but a prediction generated from the truth's "
            "batches' controls carries their labels: these populations were made from other batches (other donors), or the "
            "files' batch columns name different things. Check that --batch-col (the run's data.schema.batch_col) names the same "
            "column in both files, or predict from the truth's batches (docs/metrics.md, 'Distribution-over-distributions')")


#: The range each spread metric can take (``intervals``' cut): a ratio of root mean squares, a fraction; ``population_mmd2``
#: (a difference of means of kernel values in ``(0, 1]``) is left uncut.
SPREAD_BOUNDS: dict[str, tuple[float, float] | None] = {"spread_ratio": (0.0, math.inf), "population_mmd2": None,
                                                        "replicate_coverage": (0.0, 1.0)}


def _interval(values: list[float], metric: str, seed: int) -> list[float]:
    """``[lo, hi]``: the studentized bootstrap interval over groups of their mean (``intervals.bootstrap_ci``, the interval of
    the other metrics' means over perturbations, Student t at 3 groups or fewer); NaN below 2 groups with a value."""
    from distgen.evaluation.intervals import bootstrap_ci

    lo, hi = bootstrap_ci(values, seed=seed, bounds=SPREAD_BOUNDS[metric])
    return [float(lo), float(hi)]


#: ``spread=`` of an evaluation: ``auto`` scores the spread when ``spread_work`` is within ``SPREAD_BUDGET`` (else a note says
#: why not and how to ask), ``on`` always, ``off`` never. A YAML ``on``/``off`` reads as true/false: both are taken.
SPREAD_MODES = ("auto", "on", "off")

#: ``spread="auto"``'s budget in ``spread_work`` units: about a minute of one busy core (``SPREAD_SECONDS_PER_WORK``;
#: docs/metrics.md has the measurements), e.g. 50 groups of 3 batches x 50 cells x 1,000 genes with one baseline (5.0e10)
#: are scored, 500 of them (5.0e11) are not. A fixed count, not a clock: the same pair is scored or skipped on every machine.
SPREAD_BUDGET = 10**11

#: Seconds per ``spread_work`` unit on one core of a busy 2-core box (2.3e-10 to 8.3e-10 measured, docs/metrics.md): only
#: for the time the skip note estimates.
SPREAD_SECONDS_PER_WORK = 5e-10


def spread_mode(value: Any, where: str = "spread") -> str:
    """``value`` as one of ``SPREAD_MODES`` (``True``/``False``: ``on``/``off``, as YAML reads them); ``ValueError`` otherwise."""
    if value is True or value is False:
        return "on" if value else "off"
    if isinstance(value, str) and value in SPREAD_MODES:
        return value
    raise ValueError(f"{where} must be one of {', '.join(SPREAD_MODES)} (or true/false), got {value!r}")


def scored_spread(pred: Any, truth: Any, references: dict[str, Any] | None = None, mode: Any = "auto", seed: int = 0,
                  budget: int | None = None, progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """``(spread_scores(...), None)`` as ``mode`` asks, or ``(None, note)`` when ``auto`` skipped a pair whose ``spread_work``
    is over ``budget`` (default ``SPREAD_BUDGET``), or when the truth has several batches but no group in 2 of them (the note
    says so); ``(None, None)`` when off or the truth has one batch; ``(scores, note)`` when the prediction's batch labels
    share none with the truth's in some group (``_unshared_labels``)."""
    from distgen.wording import counted

    mode = spread_mode(mode)
    if mode == "off":
        return None, None
    budget = SPREAD_BUDGET if budget is None else budget
    if mode == "auto":
        est = spread_work(truth, {"model": pred, **dict(references or {})})
        if est["work"] > budget:
            secs = est["work"] * SPREAD_SECONDS_PER_WORK
            groups = counted(est["groups"], "(condition, context) group")
            return None, (f"spread scores not computed: {groups} with several batches, an "
                          f"estimated work of {est['work']:.3g} (about {_duration(secs)} on one core), over the "
                          f"automatic budget of {budget:.3g} (spread auto); ask for them with --spread on "
                          "(distgen.evaluate(..., spread='on'); evaluate: {spread: on} in a run config), or silence this note "
                          "with --spread off (docs/metrics.md, 'Distribution-over-distributions')")
    out = spread_scores(pred, truth, references, seed=seed, progress=progress)
    if out is None:
        return None, _unshared_batches_note(truth)
    return out, out.get("batch_labels_note")


def _unshared_batches_note(truth: Any) -> str | None:
    """A note when the truth's perturbed cells carry several batch labels but no (condition, context) group has 2 batches of
    2+ cells (each group in one batch: batch confounded with condition), so no spread was scored; None otherwise."""
    from distgen.wording import counted

    batches = set(truth.batches[~truth.is_control].tolist())
    if len(batches) < 2:
        return None
    return (f"spread scores not computed: the truth's perturbed cells are in {counted(len(batches), 'batch', 'batches')} but no (condition, "
            "context) group has 2 batches of 2+ cells, so no group yields several real populations to compare (each group is "
            "in one batch); the spread needs the same condition measured in several batches (donors, plates)")


def batch_test_line(spread: Any) -> str | None:
    """One sentence on ``spread["batch_test"]`` (how many groups' real batches differ beyond noise) for summary.md and the
    page; None for a summary written before the test (or without it)."""
    from distgen.wording import counted

    test = spread.get("batch_test") if isinstance(spread, dict) else None
    if not test:
        return None
    return (f"Real batches distinguishable from noise in {test['distinguishable']} of {counted(test['groups'], 'group')} "
            f"(permutation test: {test['permutations']} permutations of the batch labels among each group's real cells, seed "
            f"{test['seed']}; statistic the mean unbiased MMD^2 between the batches; p = (1 + #permuted >= observed) / "
            f"(1 + permutations) <= {test['alpha']:g}; about {test['alpha'] * test['groups']:.2g} expected by chance if no "
            "group's batches differed). A group above the level has a note: its spread ratios measure noise, not between-batch "
            "variation.")


def spread_over_seeds(by_variant: Mapping[str, Mapping[int, Any]], who: str = "model") -> dict[str, Any]:
    """A sweep's spread scores: ``{variant: {seed: summary.json["spread"] of that run, or None}}`` as ``{variant: {"seeds":
    {seed: {metric: the run's mean over its groups, "groups": G, "distinguishable": k or None}}, "mean": {metric: mean over
    seeds}, "sd": {metric: sd over seeds (n - 1; NaN below 2 seeds)}, "n_seeds": n, "n_runs": N}}``, of ``who`` (the model);
    ``N``: the variant's runs given, ``n`` of them with spread scores. Variants whose runs scored no spread are left out; a
    run's NaN mean (no group defined it) is left out of its variant's mean."""
    out: dict[str, Any] = {}
    for variant, by_seed in by_variant.items():
        per: dict[str, dict[str, Any]] = {}
        for seed, spread in sorted(by_seed.items()):
            means = spread.get("means") if isinstance(spread, Mapping) else None
            if not isinstance(means, Mapping) or not isinstance(means.get(who), Mapping):
                continue
            test = spread.get("batch_test") or {}
            per[str(seed)] = {**{m: _number(means[who].get(m)) for m in SPREAD_METRICS}, "groups": len(spread.get("rows") or {}),
                              "distinguishable": test.get("distinguishable")}
        if not per:
            continue
        values = {m: [v[m] for v in per.values() if not math.isnan(v[m])] for m in SPREAD_METRICS}
        out[variant] = {"seeds": per, "mean": {m: float(np.mean(v)) if v else math.nan for m, v in values.items()},
                        "sd": {m: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan for m, v in values.items()},
                        "n_seeds": len(per), "n_runs": len(by_seed)}
    return out


def seeds_count(v: Mapping[str, Any]) -> str:
    """One variant's seeds of ``spread_over_seeds``: ``n``, or ``n of N`` when only ``n`` of its ``N`` runs scored the spread
    (a run evaluated before the scores existed, or skipped by ``spread: auto``); ``n`` for a summary written before
    ``n_runs``."""
    runs = v.get("n_runs")
    return f"{v.get('n_seeds')} of {runs}" if isinstance(runs, int) and runs != v.get("n_seeds") else str(v.get("n_seeds"))


def seeds_cell(v: Mapping[str, Any], metric: str, pm: str = "+/-") -> str:
    """One variant's ``metric`` of ``spread_over_seeds``: ``mean +/- sd``, ``mean (1 seed: no sd)``, or ``- (no value)`` (NaN in
    every run)."""
    mean, sd = (_number(v[k].get(metric)) for k in ("mean", "sd"))
    if math.isnan(mean):
        return "- (no value)"
    if not math.isnan(sd):
        return f"{mean:.4g} {pm} {sd:.2g}"
    return f"{mean:.4g} (1 seed: no sd)" if v["n_seeds"] == 1 else f"{mean:.4g} (1 seed with a value: no sd)"


def distinguishable_counts(v: Mapping[str, Any]) -> str:
    """Each seed's ``distinguishable/groups`` of one variant of ``spread_over_seeds`` (``?`` for a run scored before the test)."""
    return ", ".join(f"{'?' if d.get('distinguishable') is None else d['distinguishable']}/{d.get('groups')}"
                     for d in (v.get("seeds") or {}).values())


def _number(value: Any) -> float:
    """A mean read back from summary.json: a number, or NaN (``null`` is how NaN is written)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _nanmean(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan
