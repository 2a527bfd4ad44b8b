"""Differential expression of every perturbation against control: vectorised Wilcoxon rank-sum + BH.

Matches cell-eval's DE (pdex ``mode="ref"``): per gene, a two-sided Mann-Whitney U / Wilcoxon
rank-sum test of the perturbation's cells against the control cells (normal approximation, tie
correction, continuity correction 1/2), Benjamini-Hochberg FDR over the genes of each perturbation,
and ``log2`` fold changes of pseudobulk geometric means in count space,
``log2(expm1(mean(X_p)) / expm1(mean(X_c)))`` for log1p data (``0`` where both are zero, ``+-inf``
where one is).

The speed comes from ranking every perturbation at once (``pooled_rank_sums``): the non-zero values
of each gene are sorted once, stably, with the perturbations' cells (grouped) before the controls;
with average ranks a perturbation's rank sum is ``U = sum_i (#controls < x_i + #controls == x_i / 2)``
and the pooled tie term expands into counts of equal values, all read off running counts along
that order; zeros are one block per gene, handled by counting. Cost ``O(nnz log nnz)`` for all
perturbations instead of re-ranking ``n_p + n_c`` cells per gene per perturbation; the result is
exact (every quantity is a count), and the p-value uses the C library's ``erfc`` as pdex does.
``rank_sum_batch`` (per-perturbation ``searchsorted`` against once-sorted controls) remains for
single tests. On CPU, ``differential_expression`` uses the compiled kernel of
``distgen.evaluation.ranksums`` (numba), which gives the same ``U`` and tie sums exactly, ~10x faster
on one thread; ``pooled_rank_sums`` is the path for CUDA tensors and the fallback. cell-eval2's v2 table (counts per million, arithmetic means, the CPM gene gate) is
``de_table`` below; with the compiled kernels it reads raw counts' non-zeros only
(``ranksums.normalised_rank_sums``), with the same numbers as normalising the dense matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distgen.evaluation.evaldata import Population, segment_sums

_BLOCK = 2**23  #: elements of one padded block of perturbation cells


@dataclass
class DEResult:
    """Per perturbation and gene: ``statistic`` (U of the perturbation), ``pvalue``, ``fdr``, ``lfc``; ``[P, G]``."""

    statistic: Tensor
    pvalue: Tensor
    fdr: Tensor
    lfc: Tensor

    def significant(self, threshold: float = 0.05) -> Tensor:
        """``[P, G]`` bool ``fdr < threshold``, compared in float32 as cell-eval stores it."""
        return self.fdr.to(torch.float32) < torch.tensor(threshold, dtype=torch.float32)


class SortedControl:
    """Per-gene sorted control cells and their tie statistics (computed once, reused for every perturbation)."""

    def __init__(self, control: Tensor) -> None:
        self.n = control.shape[0]
        # ranks only compare values, so the sort keeps the input dtype (float32 halves the memory traffic)
        if not control.is_floating_point():
            control = control.to(torch.float64)  # integer counts: padding below needs inf
        self.sorted = control.T.contiguous().sort(dim=1).values  # [G, n_c]
        lo = torch.searchsorted(self.sorted, self.sorted, side="left")
        hi = torch.searchsorted(self.sorted, self.sorted, side="right")
        self.tie_sq = (hi - lo).to(torch.float64).pow(2).sum(1)  # sum_v a_v^3 = sum_cells a(v)^2, [G]


def rank_sum_test(x: Tensor, ctrl: SortedControl, continuity: bool = True) -> tuple[Tensor, Tensor]:
    """Two-sided Mann-Whitney U of ``x [n, G]`` against the control, per gene: ``(U [G], p [G])``."""
    u, p = rank_sum_batch(x[None], torch.tensor([x.shape[0]]), ctrl, continuity)
    return u[0], p[0]


def rank_sum_batch(x: Tensor, n1: Tensor, ctrl: SortedControl, continuity: bool = True) -> tuple[Tensor, Tensor]:
    """Rank-sum tests of ``B`` padded groups ``x [B, m, G]`` (first ``n1[b]`` rows real) vs the control: ``[B, G]``."""
    b_, m, g = x.shape
    valid = torch.arange(m)[None, :] < n1[:, None]  # [B, m]
    x = x.to(ctrl.sorted.dtype)
    xs = torch.where(valid[..., None], x, torch.tensor(float("inf"), dtype=x.dtype))
    xs = xs.transpose(1, 2).contiguous().sort(dim=-1).values  # [B, G, m], padding (inf) last
    keep = valid[:, None, :].to(torch.float64)  # sorted order keeps the n1 real values first
    flat = xs.permute(1, 0, 2).reshape(g, b_ * m)
    lo = torch.searchsorted(ctrl.sorted, flat, side="left")
    hi = torch.searchsorted(ctrl.sorted, flat, side="right")
    lo = lo.reshape(g, b_, m).permute(1, 0, 2).to(torch.float64) * keep
    a = (hi.reshape(g, b_, m).permute(1, 0, 2).to(torch.float64)) * keep - lo  # controls equal to x_i
    u1 = (lo + 0.5 * a).sum(-1)  # rank sum of x minus n1 (n1 + 1) / 2
    cnt = (torch.searchsorted(xs, xs, side="right") - torch.searchsorted(xs, xs, side="left")).to(torch.float64) * keep
    # sum over pooled tie groups of t^3, t = a_v + b_v, expanded into sums over the group's cells
    t3 = ctrl.tie_sq[None] + 3.0 * (a * a).sum(-1) + 3.0 * (a * cnt).sum(-1) + (cnt * cnt).sum(-1)
    n1f = n1.to(torch.float64)[:, None]
    n = n1f + ctrl.n
    tie = t3 - n
    mu = n1f * ctrl.n / 2.0
    s2 = n1f * ctrl.n / 12.0 * ((n + 1.0) - tie / (n * (n - 1.0)))
    u = torch.maximum(u1, n1f * ctrl.n - u1)
    num = u - mu - (0.5 if continuity else 0.0)
    z = num / s2.clamp_min(1e-300).sqrt()
    p = two_sided_normal_p(z).clamp(0.0, 1.0)
    return u1, torch.where(s2 > 0, p, torch.ones_like(p))


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def two_sided_normal_p(z: Tensor) -> Tensor:
    """``2 * Phi(-z) = erfc(z / sqrt 2)`` with the C library's ``erfc`` (as pdex/numba and hpdex compute it).

    torch's and scipy's ``erfc`` differ from libm's in the last bit for ~20-40% of inputs; that is
    harmless for a p-value but decides which BH-adjusted values TIE, and the AUC metrics rank on them.
    """
    flat = z.detach().to(torch.float64).cpu().numpy().ravel() / math.sqrt(2.0)
    p = np.asarray(_ERFC(flat), dtype=np.float64)
    return torch.from_numpy(p).reshape(z.shape).to(z.device)


def benjamini_hochberg(p: Tensor) -> Tensor:
    """BH-adjusted p-values along the last dim (``scipy.stats.false_discovery_control`` semantics)."""
    m = p.shape[-1]
    ps, order = p.sort(dim=-1)
    ranks = torch.arange(1, m + 1, dtype=p.dtype, device=p.device)
    adj = ps * (m / ranks)  # scipy's order of operations: equal values tie exactly as there
    adj = adj.flip(-1).cummin(-1).values.flip(-1).clamp(max=1.0)
    return torch.empty_like(adj).scatter_(-1, order, adj)


def log2_fold_change(mean_p: Tensor, mean_c: Tensor, log1p: bool = True) -> Tensor:
    """``log2`` ratio of geometric means in count space; ``0`` where both are zero (as pdex)."""
    gp, gc = (torch.expm1(mean_p), torch.expm1(mean_c)) if log1p else (mean_p, mean_c)
    lfc = torch.log2(gp / gc)
    return torch.nan_to_num(lfc, nan=0.0, posinf=float("inf"), neginf=float("-inf"))


def pooled_rank_sums(pop: Population) -> tuple[Tensor, Tensor]:
    """``(U [P, G], tie [P, G])`` of every perturbation against ``pop.control``, from one sort of the non-zeros.

    The non-zero values of every gene (perturbations first, grouped, then the controls) are sorted
    once by ``(gene, value)``, stably, so equal values form contiguous blocks and, inside a block,
    each group's cells are contiguous; the zeros of each gene are one block handled by counting.
    For a cell ``i`` of perturbation ``p`` with value ``v``: ``c_<`` controls below ``v`` and ``a``
    controls equal to ``v`` give ``U_p = sum_i (c_< + a / 2)``; with ``b`` = cells of ``p`` equal to
    ``v`` the pooled tie sum of the test ``p`` vs control is
    ``sum_v (a_v + b_v)^3 = sum_ctrl a^2 + sum_i (3 a^2 + 3 a b + b^2)``. Every quantity is a count,
    so the result is exact. Cost ``O(nnz log nnz)`` for all perturbations at once.
    """
    p_count, g = pop.n_perts, pop.X.shape[1]
    x = torch.cat([pop.X, pop.control.to(pop.X.dtype)])
    if not x.is_floating_point():
        x = x.to(torch.float64)
    codes = torch.cat([pop.codes(), torch.full((pop.control.shape[0],), p_count, dtype=torch.long)])  # control = P
    sizes = torch.cat([pop.counts, torch.tensor([pop.control.shape[0]])]).to(torch.float64)  # [P + 1]
    row, gene = (x != 0).nonzero(as_tuple=True)  # row-major: within a gene, rows in group order
    val = x[row, gene]
    code = codes[row]
    order = torch.sort(val, stable=True).indices
    order = order[torch.sort(gene[order].to(torch.int32), stable=True).indices]  # (gene, value), ties keep row order
    val, gene, code = val[order], gene[order], code[order]
    k = val.numel()
    is_c = code == p_count
    new_gene = torch.ones(k, dtype=torch.bool)
    new_gene[1:] = gene[1:] != gene[:-1]
    new_val = new_gene.clone()
    new_val[1:] |= val[1:] != val[:-1]
    new_run = new_val.clone()
    new_run[1:] |= code[1:] != code[:-1]

    def segments(new: Tensor) -> tuple[Tensor, Tensor]:  # (first index, one past the last) of each entry's segment
        seg = new.cumsum(0) - 1
        starts = new.nonzero().flatten()
        stops = torch.cat([starts[1:], torch.tensor([k])])
        return starts[seg], stops[seg]

    ctrl_upto = torch.zeros(k + 1, dtype=torch.float64)
    ctrl_upto[1:] = is_c.cumsum(0)
    gene_first, _ = segments(new_gene)
    val_first, val_stop = segments(new_val)
    run_first, run_stop = segments(new_run)
    below_nz = ctrl_upto[val_first] - ctrl_upto[gene_first]  # non-zero controls below v in this gene
    a = ctrl_upto[val_stop] - ctrl_upto[val_first]
    b = (run_stop - run_first).to(torch.float64)
    cell = code * g + gene  # (group, gene) of each entry, flattened
    size = (p_count + 1) * g

    def per_group(w: Tensor | None) -> Tensor:
        return torch.bincount(cell, weights=w, minlength=size).to(torch.float64).reshape(p_count + 1, g)

    # zeros of each gene: one block; non-zero values above it see its controls below them
    zeros = sizes[:, None] - per_group(None)  # [P + 1, G]
    a0 = zeros[p_count]  # zero controls per gene
    neg_c = torch.bincount(gene, weights=(is_c & (val < 0)).to(torch.float64), minlength=g)
    below = below_nz + torch.where(val > 0, a0[gene], torch.zeros_like(a))
    u = per_group(below + 0.5 * a)
    tie = per_group(torch.where(is_c, a * a, 3.0 * a * a + 3.0 * a * b + b * b))
    z = zeros[:p_count]
    u = u[:p_count] + z * (neg_c + 0.5 * a0)[None]
    tie = tie[:p_count] + z * (3.0 * a0 * a0 + 3.0 * a0 * z) + z.pow(3) + tie[p_count] + a0.pow(3)
    return u, tie


def rank_sum_pvalues(u1: Tensor, t3: Tensor, n1: Tensor, n_c: int, continuity: bool = True) -> Tensor:
    """Two-sided normal-approximation p-values of rank-sum statistics ``u1`` with pooled tie sums ``t3`` (``[..., G]``)."""
    n1f = n1.to(torch.float64)[:, None]
    n = n1f + n_c
    tie = t3 - n
    mu = n1f * n_c / 2.0
    s2 = n1f * n_c / 12.0 * ((n + 1.0) - tie / (n * (n - 1.0)))
    u = torch.maximum(u1, n1f * n_c - u1)
    num = u - mu - (0.5 if continuity else 0.0)
    z = num / s2.clamp_min(1e-300).sqrt()
    p = two_sided_normal_p(z).clamp(0.0, 1.0)
    return torch.where(s2 > 0, p, torch.ones_like(p))


def differential_expression(pop: Population, log1p: bool = True, progress: bool = False) -> DEResult:
    """DE of each of ``P`` perturbations of ``pop`` against ``pop.control``: ``[P, G]`` tables.

    Perturbations without cells get NaN rows. (``progress`` is accepted for callers; one pass needs none.)
    """
    from distgen.evaluation.ranksums import rank_sums

    fast = rank_sums(pop)  # the compiled exact kernel (numba) on CPU; the same numbers as the torch path
    u1, t3 = fast if fast is not None else pooled_rank_sums(pop)
    counts = pop.counts
    pval = rank_sum_pvalues(u1, t3, counts, pop.control.shape[0])
    empty = counts == 0
    stat = torch.where(empty[:, None], torch.full_like(u1, float("nan")), u1)
    pval = torch.where(empty[:, None], torch.full_like(pval, float("nan")), pval)
    fdr = benjamini_hochberg(torch.nan_to_num(pval, nan=1.0))
    fdr[torch.isnan(pval)] = float("nan")
    mean_c = column_means(pop.control.to(torch.float64))
    lfc = log2_fold_change(pop.means(), mean_c[None], log1p)
    return DEResult(statistic=stat, pvalue=pval, fdr=fdr, lfc=lfc)


# --- cell-eval2 (v2) DE: counts-per-million, arithmetic-mean fold changes, one reference pool -------------


@dataclass
class DETable:
    """A cell-eval2 DE table as ``[P, G]`` tensors over the TESTED genes (``tested [G]``; other columns NaN).

    ``pvalue`` (two-sided Wilcoxon rank-sum against the reference cells), ``fdr`` (BH over the tested
    genes of each perturbation, or over all rows with ``fdr_scope="global"``), ``lfc`` (``log2`` ratio
    of group means in linear space) and ``ref_cpm [G]`` (the reference pool's mean counts per million).
    A gene absent from ``tested`` is a row cell-eval2 drops from its table (the CPM gate).
    """

    pvalue: Tensor
    fdr: Tensor
    lfc: Tensor
    tested: Tensor

    def significant(self, threshold: float = 0.05) -> Tensor:
        """``[P, G]`` bool ``fdr < threshold`` (False on untested genes)."""
        return torch.nan_to_num(self.fdr, nan=2.0) < threshold


def log1p_(x: Tensor) -> Tensor:
    """``x.log1p_()``, through numpy for contiguous CPU tensors: its vectorised float64 ``log1p`` is ~5x torch's there."""
    if x.device.type == "cpu" and x.is_contiguous() and x.dtype in (torch.float32, torch.float64):
        a = x.detach().numpy()
        np.log1p(a, out=a)
        return x
    return x.log1p_()


def normalize_total(x: Tensor, target_sum: float, totals: Tensor | None = None) -> Tensor:
    """Per-cell library-size normalisation ``x / (sum_g x / target_sum)`` in float64 (scanpy's formula; a new tensor).

    ``totals``: ``[N]`` float64 ``sum_g x`` already summed (``Population.totals``: the same ``torch.sum`` of each row in
    float64), else summed here."""
    x = x.to(torch.float64, copy=True)
    lib = (x.sum(-1, keepdim=True) if totals is None else totals.to(x.device)[:, None]) / target_sum
    pos = lib > 0
    x.div_(torch.where(pos, lib, torch.ones_like(lib)))  # in place: the same quotients, one pass, no temporaries
    if not bool(pos.all()):
        x.masked_fill_(~pos, 0.0)
    return x


def column_means(x: Tensor) -> Tensor:
    """``[G]`` float64 means over the rows of ``x [n, G]``, each column summed row by row in order (numpy's ``mean(0)``,
    cell-eval2's ``_grouped_means``): two equal columns get equal means, bit for bit, wherever they sit.

    torch's ``mean(0)`` vectorises across columns and can round two equal columns differently in the last
    bit (measured: 3 of 299 duplicated Papalexi genes), which breaks ties cell-eval2 keeps (Spearman of fold
    changes, top-N cuts).
    """
    if x.device.type == "cpu" and not x.requires_grad:
        return torch.from_numpy(np.asarray(x.detach().numpy().mean(0, dtype=np.float64)))
    return x.to(torch.float64).mean(0)


@dataclass
class Reference:
    """The reference cells of cell-eval2's DE tables, prepared once and shared by the tables tested against them.

    ``lin`` (linear scale, float64), ``mean_lin [G]`` and ``mean_log1p [G]`` (for the geometric mean),
    ``ranked`` (the values the rank test compares: ``log1p`` of CPM for counts, the input otherwise),
    ``table`` (the compiled kernel's sorted controls, or None: torch path).
    """

    counts: bool
    target_sum: float | None
    mean_lin: Tensor
    mean_log1p: Tensor
    ranked: Tensor
    table: Any


def prepare_reference(reference: Tensor, *, counts: bool, target_sum: float | None = 1e6, totals: Tensor | None = None) -> Reference:
    """``reference [n_c, G]`` prepared for ``de_table`` (normalised, log-transformed and sorted once); ``totals``: its rows'
    sums when known (``Population.control_totals``, ``normalize_total``)."""
    from distgen.evaluation.ranksums import control_table

    if counts:
        if target_sum is None:
            raise ValueError("counts input needs a numeric target_sum (cell-eval2 resolves None to the control median first)")
        lin = normalize_total(reference, target_sum, totals)
        mean_lin = column_means(lin)
        ranked = log1p_(lin)  # in place: the linear values are not needed any more
        mean_log1p = column_means(ranked)
    else:
        ranked = reference
        lin = torch.expm1(reference.to(torch.float64))
        mean_lin, mean_log1p = column_means(lin), column_means(torch.log1p(lin))
    return Reference(counts, target_sum, mean_lin, mean_log1p, ranked, control_table(ranked))


def _group_means(pop: Population, x: Tensor, geometric: bool) -> Tensor:
    """``[P, G]`` float64 means of the rows of ``x`` (``pop``'s grouping); geometric = ``expm1(mean(log1p))``."""
    v = torch.log1p(x) if geometric else x
    m = segment_sums(v, pop.offsets) / pop.counts[:, None].to(torch.float64)
    return torch.expm1(m) if geometric else m


def fold_change(mean_t: Tensor, mean_r: Tensor, epsilon: float, clip_value: float | None = None) -> Tensor:
    """cell-eval2's ``log2((m_t + eps) / (m_r + eps))``; with ``clip_value`` the v1 rule (zero means clipped)."""
    if clip_value is None:
        return torch.log2((mean_t + epsilon) / (mean_r + epsilon))
    both0 = (mean_t == 0) & (mean_r == 0)
    ref0 = (mean_r == 0) & (mean_t != 0)
    tgt0 = (mean_t == 0) & (mean_r != 0)
    ratio = mean_t / torch.where(mean_r == 0, torch.ones_like(mean_r), mean_r)
    ratio = torch.where(both0, torch.ones_like(ratio), ratio)
    ratio = torch.where(ref0, torch.full_like(ratio, clip_value), ratio)
    ratio = torch.where(tgt0, torch.full_like(ratio, 1.0 / clip_value), ratio)
    return torch.log2(ratio)


def de_table(
    pop: Population,
    reference: Tensor | Reference,
    *,
    counts: bool,
    target_sum: float | None = 1e6,
    mean_calc: str = "arithmetic",
    epsilon: float = 1e-9,
    clip_value: float | None = None,
    min_cpm: float | None = 5.0,
    fdr_scope: str = "per_pert",
) -> DETable:
    """cell-eval2's DE of every perturbation of ``pop`` against the ``reference [n_c, G]`` cells.

    ``counts=True``: raw counts, normalised per cell to ``target_sum`` (CPM at ``1e6``); the rank test
    runs on ``log1p`` of that, fold changes on the linear means (``mean_calc``: ``arithmetic`` or
    ``geometric``), and genes whose reference mean CPM is not above ``min_cpm`` are not tested.
    ``counts=False``: log-normalised input; linear space is ``expm1(X)`` and the CPM gate does not
    apply (cell-eval2 skips it without counts). Perturbations without cells get NaN rows.
    """
    if mean_calc not in ("arithmetic", "geometric"):
        raise ValueError(f"mean_calc must be 'arithmetic' or 'geometric', got {mean_calc!r}")
    if fdr_scope not in ("per_pert", "global"):
        raise ValueError(f"fdr_scope must be 'per_pert' or 'global', got {fdr_scope!r}")
    if counts and target_sum is None:
        raise ValueError("counts input needs a numeric target_sum (cell-eval2 resolves None to the control median first)")
    ref = reference if isinstance(reference, Reference) else prepare_reference(reference, counts=counts, target_sum=target_sum)
    if ref.counts != counts or ref.target_sum != (target_sum if counts else ref.target_sum):
        raise ValueError("the prepared reference was made for another scale or target_sum")
    geometric = mean_calc == "geometric"
    mean_t, pval = _means_and_pvalues(pop, ref, counts, target_sum, geometric)
    mean_r = (ref.mean_log1p.expm1() if geometric else ref.mean_lin)[None]
    lfc = fold_change(mean_t, mean_r, epsilon, clip_value)
    g = pop.X.shape[1]
    tested = torch.ones(g, dtype=torch.bool)
    if counts and min_cpm is not None and min_cpm >= 0:
        # the gate reads ARITHMETIC mean CPM whatever mean_calc is (as cell-eval2)
        tested = ref.mean_lin * (1e6 / target_sum) > min_cpm  # type: ignore[operator]
    pval[:, ~tested] = float("nan")
    fdr = torch.full_like(pval, float("nan"))
    rows = pop.counts > 0
    if fdr_scope == "per_pert":
        sub = pval[rows][:, tested]
        fdr_rows = torch.full((int(rows.sum()), g), float("nan"), dtype=torch.float64)
        fdr_rows[:, tested] = benjamini_hochberg(sub)
        fdr[rows] = fdr_rows
    else:
        flat = pval[rows][:, tested].reshape(-1)
        adj = benjamini_hochberg(flat[None])[0].reshape(int(rows.sum()), int(tested.sum()))
        fdr_rows = torch.full((int(rows.sum()), g), float("nan"), dtype=torch.float64)
        fdr_rows[:, tested] = adj
        fdr[rows] = fdr_rows
    lfc[~rows] = float("nan")
    lfc[:, ~tested] = float("nan")
    return DETable(pvalue=pval, fdr=fdr, lfc=lfc, tested=tested)


def _means_and_pvalues(pop: Population, ref: Reference, counts: bool, target_sum: float | None,
                       geometric: bool) -> tuple[Tensor, Tensor]:
    """``(group means [P, G] in linear space, rank-sum p-values [P, G])`` of ``de_table`` (NaN rows: no cells).

    Raw counts with arithmetic means go through ``ranksums.normalised_rank_sums`` (the non-zeros only)
    where it applies; otherwise, and with the same numbers, through the dense normalised matrix.
    """
    from distgen.evaluation.ranksums import normalised_rank_sums

    if counts and not geometric:
        sparse = normalised_rank_sums(pop, ref.table, target_sum)  # type: ignore[arg-type]
        if sparse is not None:
            u1, t3, sums = sparse
            return sums / pop.counts[:, None].to(torch.float64), _pvalues(u1, t3, pop.counts, ref.ranked.shape[0])
    if counts:
        lin_x = normalize_total(pop.X, target_sum, pop.totals)  # type: ignore[arg-type]
        mean_t = _group_means(pop, lin_x, geometric)
        log_x = log1p_(lin_x)  # in place, after the means
    else:
        log_x = pop.X
        mean_t = _group_means(pop, torch.expm1(pop.X.to(torch.float64)), geometric)
    return mean_t, _rank_pvalues(Population(X=log_x, offsets=pop.offsets, control=ref.ranked), ref.table)


def _rank_pvalues(pop: Population, table: Any = None) -> Tensor:
    """``[P, G]`` two-sided rank-sum p-values of each perturbation of ``pop`` against ``pop.control`` (NaN rows: no cells).

    ``table``: the controls already prepared for the compiled kernel (``ranksums.control_table``), if any.
    """
    from distgen.evaluation.ranksums import rank_sums

    fast = rank_sums(pop, table)
    u1, t3 = fast if fast is not None else pooled_rank_sums(pop)
    return _pvalues(u1, t3, pop.counts, pop.control.shape[0])


def _pvalues(u1: Tensor, t3: Tensor, counts: Tensor, n_c: int) -> Tensor:
    """``rank_sum_pvalues`` with NaN rows for the perturbations without cells."""
    pval = rank_sum_pvalues(u1, t3, counts, n_c)
    return torch.where((counts == 0)[:, None], torch.full_like(pval, float("nan")), pval)
