"""Figures of the cells themselves: a shared 2-D embedding and marginal densities of the most changed genes.

Both read the evaluated cells through ``{condition label: (EvalData, index)}``
(``ReportInputs.cell_index``), so conditions scored per context each come with their own
context's controls. The embedding is a PCA fitted on real cells only (perturbed and control, of
every part), so generated cells are placed in the real data's coordinates and a shift or a
collapse shows as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from distgen.evaluation.evaldata import EvalData
from distgen.evaluation.io import finite_rows
from distgen.evaluation.pca import principal_axes
from distgen.report.style import CONTROL, MODEL, REAL, short_label, short_labels
from distgen.seeds import content_keys, content_subset

CellIndex = Mapping[str, tuple[EvalData, int]]


def pick_conditions(strength: Mapping[str, float], k: int = 3) -> list[tuple[str, str]]:
    """``[(role, condition)]``: the strongest, median and weakest responses (fewer when fewer conditions)."""
    order = [p for p in sorted(strength, key=lambda p: (-strength[p], p)) if not math.isnan(strength[p])]
    if not order:
        return []
    picks = [("strongest response", order[0]), ("median response", order[len(order) // 2]), ("weakest response", order[-1])]
    out: list[tuple[str, str]] = []
    for role, p in picks[:k]:
        if p not in [q for _, q in out]:
            out.append((role, p))
    return out


def _rows(x: torch.Tensor, genes: Sequence[str], cap: int, seed: int) -> torch.Tensor:
    """At most ``cap`` row indices of ``x [n, G]``, chosen and ordered by the cells' values
    (``distgen.seeds.content_subset``), so the same cells in another row or gene order are drawn alike. Before
    2026-12-06 a seeded random subset of positions in row order: a truth saved in another row order drew other cells,
    another PCA and other population means in the report's embedding figure."""
    return content_subset(content_keys(x, genes), cap, seed)


class RealPCA:
    """Two principal axes of the real cells (perturbed and control): ``project(x [n, G]) -> [n, 2]``."""

    def __init__(self, datas: Sequence[EvalData], max_cells: int = 4000, seed: int = 0) -> None:
        blocks = [t for d in datas for t in (d.real.X, d.real.control)]
        rows = content_subset(np.concatenate([content_keys(t, datas[0].genes) for t in blocks]), max_cells, seed)
        # the chosen rows of the stacked cells, in the order content_subset gives them, gathered block by block into one
        # float64 table (no float64 copy of every cell, no float32 copy of the chosen ones), centred and squared in place:
        # one table of the picked cells at a time (four were: the float32 picks, the float64 ones, the centred ones and
        # their squares, ~200 MB at 2,000 genes)
        x = torch.empty(len(rows), blocks[0].shape[1], dtype=torch.float64, device=blocks[0].device)
        start = 0
        for t in blocks:
            mine = (rows >= start) & (rows < start + t.shape[0])
            x[mine.to(x.device)] = t[(rows[mine] - start).to(t.device)].to(torch.float64)
            start += int(t.shape[0])
        finite = finite_rows(x)  # torch.isfinite(x) made a float64 copy of x (its abs) and three bool tables
        if not bool(finite.all()):
            x = x[finite]
        self.mean = x.mean(0)
        centred = x.sub_(self.mean)  # the values of x - mean
        s, self.axes = principal_axes(centred, 2, seed=seed, q=6)  # the same axes, signs included, for the same cells
        total = float(centred.pow_(2).sum()) or 1.0  # centred is not used after: squared in place
        self.explained = [float(s[i] ** 2) / total for i in range(min(2, s.numel()))]

    def project(self, x: torch.Tensor) -> np.ndarray:
        x = x.to(torch.float64)
        x = x[torch.isfinite(x).all(1)]
        return ((x - self.mean) @ self.axes).numpy()


def embedding_figure(index: CellIndex, picks: Sequence[tuple[str, str]], model_name: str = "model",
                     max_cells: int = 600, seed: int = 0) -> Figure:
    """Facets per condition: control (grey), real (black) and generated (blue) cells in the real cells' PCA."""
    datas = list({id(d): d for d, _ in index.values()}.values())
    shown = dict(zip((p for _, p in picks), short_labels([p for _, p in picks])))
    pca = RealPCA(datas, seed=seed)
    groups = []
    for _, p in picks:
        data, i = index[p]
        real, pred, ctrl = data.real.cells(i), data.pred.cells(i), data.real.control
        groups.append(tuple(pca.project(x[_rows(x, data.genes, max_cells, seed)]) for x in (ctrl, real, pred)))
    pooled = np.concatenate([np.concatenate(g) for g in groups])
    lo, hi = np.nanpercentile(pooled, 0.5, axis=0), np.nanpercentile(pooled, 99.5, axis=0)
    pad = 0.06 * (hi - lo + 1e-12)
    fig = Figure(figsize=(2.6 * len(picks) + 0.3, 2.95), layout="constrained")
    axes = fig.subplots(1, len(picks), squeeze=False, sharex=True, sharey=True)[0]
    ev = [f" ({100 * e:.0f}% var.)" for e in pca.explained] + ["", ""]
    for ax, (role, p), (zc, zr, zp) in zip(axes, picks, groups):
        ax.scatter(zc[:, 0], zc[:, 1], s=3, color=CONTROL, alpha=0.35, lw=0, rasterized=True)
        ax.scatter(zr[:, 0], zr[:, 1], s=4, color=REAL, alpha=0.55, lw=0, rasterized=True)
        ax.scatter(zp[:, 0], zp[:, 1], s=4, color=MODEL, alpha=0.55, lw=0, rasterized=True)
        for z, c in ((zr, REAL), (zp, MODEL)):
            if len(z):
                ax.scatter(*z.mean(0), marker="X", s=60, color=c, edgecolors="white", linewidths=0.8, zorder=5)
        ax.set_title(f"{shown[p]}\n{role}", fontsize=8)
        ax.set_xlabel("PC1 of real cells" + ev[0])
        ax.grid(False)
    axes[0].set_ylabel("PC2 of real cells" + ev[1])
    axes[0].set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    axes[0].set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    handles = [Line2D([], [], marker="o", ls="", color=c, ms=4) for c in (CONTROL, REAL, MODEL)]
    handles.append(Line2D([], [], marker="X", ls="", color="#555555", ms=6))
    fig.legend(handles, ["control cells", "real perturbed cells", f"generated ({short_label(model_name)})", "population mean"],
               loc="outside upper center", ncol=4)
    return fig


def changed_genes(data: EvalData, i: int, k: int = 4) -> list[int]:
    """Indices of the ``k`` genes with the largest absolute real response of perturbation ``i``."""
    delta = data.delta("real")[i]
    delta = torch.nan_to_num(delta, nan=0.0)
    return torch.argsort(delta.abs(), descending=True)[: min(k, delta.numel())].tolist()


def marginals_figure(index: CellIndex, picks: Sequence[tuple[str, str]], n_genes: int = 4, model_name: str = "model",
                     value_label: str = "expression") -> Figure:
    """Rows per condition, columns per most-changed gene: densities of control, real and generated values."""
    fig = Figure(figsize=(1.75 * n_genes + 0.5, 1.45 * len(picks) + 0.5), layout="constrained")
    shown = dict(zip((p for _, p in picks), short_labels([p for _, p in picks])))
    axes = fig.subplots(len(picks), n_genes, squeeze=False)
    for r, (role, p) in enumerate(picks):
        data, i = index[p]
        delta = data.delta("real")
        genes = changed_genes(data, i, n_genes)
        for c in range(n_genes):
            ax = axes[r, c]
            if c >= len(genes):
                ax.set_visible(False)
                continue
            g = genes[c]
            cols = [data.real.control[:, g], data.real.cells(i)[:, g], data.pred.cells(i)[:, g]]
            vals = [v[torch.isfinite(v)].double().numpy() for v in cols]
            pooled = np.concatenate([v for v in vals if v.size]) if any(v.size for v in vals) else np.zeros(1)
            lo, hi = float(np.min(pooled)), float(np.percentile(pooled, 99.5))
            bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 28)
            for v, color, lw in zip(vals, (CONTROL, REAL, MODEL), (1.0, 1.3, 1.3)):
                if v.size:
                    ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, density=True, histtype="step", color=color, lw=lw)
            ax.set_title(f"{short_label(data.genes[g], 24)}  (Δ {float(delta[i, g]):+.2f})", fontsize=7.5)
            ax.tick_params(labelsize=6.5)
            ax.grid(False)
            if r == len(picks) - 1:
                ax.set_xlabel(value_label, fontsize=7)
        axes[r, 0].set_ylabel(f"{shown[p]}\n{role}\ndensity", fontsize=7)
    handles = [Line2D([], [], color=c, lw=1.3) for c in (CONTROL, REAL, MODEL)]
    fig.legend(handles, ["control", "real", f"generated ({short_label(model_name)})"], loc="outside upper center", ncol=3)
    return fig
