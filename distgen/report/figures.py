"""Figures of the metric tables: the headline dot/interval plot and the per-condition views.

Every function returns a ``matplotlib.figure.Figure`` (no pyplot) drawn in the report theme; call
them inside ``style.theme()``. Colours and markers come from ``style``: the model blue, each
baseline its own, positive references a green band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from distgen.report.explain import normalised_reason
from distgen.report.inputs import Reference, ReportInputs
from distgen.report.stats import advantage, finite, mean_ci
from distgen.report.style import (
    CEILING,
    MODEL,
    WORSE,
    Look,
    baseline_look,
    ceiling_look,
    metric_info,
    metric_labels,
    model_look,
    short_label,
    short_labels,
    value_axis,
)
from distgen.wording import counted


def _look(ref: Reference) -> Look:
    base = ceiling_look(ref.name) if ref.name == "ceiling" else baseline_look(ref.name)
    return Look(base.color, base.marker, ref.label)


def split_band(row: Mapping[str, Any] | None) -> tuple[float, float, float, int] | None:
    """``(mean, min, max, n_splits)`` of the summary's ``ceiling_band`` when the evaluation made several splits, else None."""
    band = (row or {}).get("ceiling_band") or {}
    n = band.get("n_splits") or 0
    vals = [band.get(k) for k in ("mean", "min", "max")]
    if n < 2 or not all(isinstance(v, int | float) and math.isfinite(v) for v in vals):
        return None
    return float(vals[0]), float(vals[1]), float(vals[2]), int(n)  # type: ignore[arg-type]


def positive_band(ref: Reference, metric: str, row: Mapping[str, Any] | None = None) -> tuple[float, float, float, str]:
    """``(value, low, high, what)`` of a positive reference: the replicate range, else a bootstrap interval.

    The range comes from the replicate tables, else (the ceiling, with ``row`` its summary row) from the
    summary's ``ceiling_band``, which the evaluation records over its splits.
    """
    if not ref.replicates and ref.name == "ceiling" and (band := split_band(row)) is not None:
        return band[0], band[1], band[2], f"range over {counted(band[3], 'split')}"
    if ref.replicates:
        means = finite([float(np.nanmean(t.values[metric])) if metric in t.values and finite(t.values[metric]).size else math.nan
                        for t in ref.replicates])
        if means.size:
            return float(means.mean()), float(means.min()), float(means.max()), f"range over {counted(int(means.size), 'split')}"
    m, lo, hi = mean_ci(ref.table.values.get(metric, []), bounds=metric_info(metric).bounds)
    return m, lo, hi, "95% CI over conditions"


def _normalised_text(row: Mapping[str, Any] | None, metric: str) -> str:
    if not row:
        return ""
    score = row.get("normalised", math.nan)
    if score is not None and not math.isnan(score):
        if row.get("normalised_caution"):  # the ceiling - baseline gap is noise: the number has no scale
            return f"normalised {score:.2f} (no scale: ceiling ≈ baseline)"
        ci = row.get("normalised_ci") or []
        if len(ci) == 2 and all(isinstance(v, float) and math.isfinite(v) for v in ci):
            return f"normalised {score:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
        return f"normalised {score:.2f}"
    short, _ = normalised_reason(row, metric_info(metric))
    return f"normalised n/a: {short}"


def headline_figure(inputs: ReportInputs, metrics: Sequence[str] | Mapping[str, Sequence[str]], ncols: int = 3,
                    panel_width: float = 2.75) -> Figure:
    """One panel per metric, one row of panels per metric family: model and every distinct baseline as
    mean ± 95% CI over conditions, the ceiling as a band.

    ``metrics``: names (grouped by their family here) or ``{family: names}``. Rows within a panel
    are the same in every panel (the model on top, then the baselines) so colours and rows can be
    followed across panels. The positive reference is a vertical band (replicate range when
    repeated splits exist, else the bootstrap interval of its mean) with a line at its mean; the
    panel's second title line gives the normalised score or why it is undefined.
    """
    from distgen.report.explain import by_family

    groups = dict(metrics) if isinstance(metrics, Mapping) else by_family(metrics)
    negs, pos = inputs.negatives, inputs.positives
    rows_summary = inputs.summary.get("metrics", {})
    sources: list[tuple[Look, Any, bool]] = [(model_look(inputs.model_name), inputs.model, True)]
    sources += [(_look(r), r.table, False) for r in negs] + [(_look(r), r.table, False) for r in pos[1:]]
    cols = max(1, min(ncols, max(len(v) for v in groups.values())))
    panel_h = 0.23 * len(sources) + 0.85
    grid = [math.ceil(len(v) / cols) for v in groups.values()]
    shown = short_labels([look.label for look, _, _ in sources])  # a 5,000-character run name: a figure as wide
    label_w = 0.11 * max(len(n) for n in shown) * 0.62 + 0.2
    fig = Figure(figsize=(label_w + panel_width * cols, panel_h * sum(grid) + 0.32 * len(groups) + 0.3), layout="constrained")
    subfigs = fig.subfigures(len(groups), 1, height_ratios=[g * panel_h + 0.32 for g in grid], squeeze=False)[:, 0]
    band_what = ""
    titles = metric_labels(m for names in groups.values() for m in names)
    for sf, (family, names), n_rows in zip(subfigs, groups.items(), grid):
        sf.suptitle(family, x=0.0, ha="left", fontweight="bold", fontsize=9.5, color="#333333")
        axes = sf.subplots(n_rows, cols, squeeze=False, sharey=True).ravel()
        for k, (ax, metric) in enumerate(zip(axes, names)):
            band_what = _headline_panel(ax, metric, sources, pos[0] if pos else None, rows_summary.get(metric),
                                        titles[metric]) or band_what
            if k % cols == 0:
                ax.set_yticks(range(len(sources)), shown)
                for lab, (look, _, _) in zip(ax.get_yticklabels(), sources):
                    lab.set_color(look.color)
                ax.get_yticklabels()[0].set_fontweight("bold")
        for ax in axes[len(names):]:
            ax.set_visible(False)
    if pos:
        handles: list[Any] = [(Patch(color=CEILING, alpha=0.25, lw=0), Line2D([], [], color=CEILING, lw=1.3))]
        fig.legend(handles, [f"{short_label(pos[0].name)}: line = mean, band = {band_what}"], loc="outside upper right",
                   handler_map={tuple: HandlerTuple(ndivide=1)})
    return fig


def _headline_panel(ax: Any, metric: str, sources: Sequence[tuple[Look, Any, bool]], positive: Reference | None,
                    row: Mapping[str, Any] | None, title: str) -> str:
    """Draw one metric's panel (``title``: its name as the figure writes it); returns what the positive band shows
    ("" when none)."""
    info = metric_info(metric)
    xs: list[float] = []
    for y, (look, table, is_model) in enumerate(sources):
        m, lo, hi = mean_ci(table.values.get(metric, []), bounds=info.bounds)
        if math.isnan(m):
            ax.text(0.01, y, "undefined", transform=ax.get_yaxis_transform(), va="center", fontsize=6.5, color="#777777")
            continue
        ax.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt=look.marker, color=look.color, ms=7 if is_model else 5.5,
                    mfc=look.color, mec="white" if is_model else look.color, mew=0.8, elinewidth=1.6 if is_model else 1.1,
                    capsize=0, zorder=3)
        xs += [lo, hi, m]
    what = ""
    if positive is not None and metric in positive.table.values:
        c, lo, hi, what = positive_band(positive, metric, row)
        if not math.isnan(c):
            ax.axvspan(lo, hi, color=CEILING, alpha=0.16, lw=0, zorder=1)
            ax.axvline(c, color=CEILING, lw=1.3, zorder=2)
            xs += [lo, hi, c]
    ax.set_ylim(len(sources) - 0.4, -0.6)
    fx = finite(xs)
    if fx.size:
        span = float(fx.max() - fx.min()) or max(abs(float(fx.max())), 1e-12)
        ax.set_xlim(float(fx.min()) - 0.06 * span, float(fx.max()) + 0.06 * span)
    ax.set_xlabel(f"{title} ({info.direction})")
    _title(ax, title, _normalised_text(row, metric))
    ax.tick_params(axis="y", length=0)
    return what


def _title(ax: Any, name: str, sub: str) -> None:
    """A bold metric name with a small second line under it (the normalised score), left-aligned."""
    ax.set_title(sub, loc="left", fontsize=7, color="#444444", pad=3)
    ax.annotate(name, xy=(0, 1), xycoords="axes fraction", xytext=(0, 13), textcoords="offset points",
                fontweight="bold", fontsize=9, va="bottom", ha="left")
    value_axis(ax)


def _best_reference(inputs: ReportInputs, metric: str) -> Reference | None:
    row = inputs.summary.get("metrics", {}).get(metric) or {}
    ref = inputs.reference(row.get("strongest_baseline"))
    if ref is not None and metric in ref.table.values:
        return ref
    info = metric_info(metric)
    best, best_v = None, math.nan
    for r in inputs.negatives:
        v = float(np.nanmean(r.table.values[metric])) if metric in r.table.values and finite(r.table.values[metric]).size else math.nan
        if best is None or info.better(v, best_v):
            best, best_v = r, v
    return best


def per_condition_figure(inputs: ReportInputs, metrics: Sequence[str], order: Sequence[str], strength: Mapping[str, float],
                         flags: Mapping[str, Sequence[str]], strength_label: str = "response strength") -> Figure:
    """Sorted dot plot: one row per condition (strongest response on top), one panel per metric.

    In each row: the ceiling's value (green tick), the best baseline (its marker) and the model
    (blue dot), joined by a line that is blue where the model is better and vermillion where it is
    worse. Flagged conditions carry a ``*`` and a vermillion label.
    """
    perts = list(inputs.model.perts)
    idx = {p: i for i, p in enumerate(perts)}
    n = len(order)
    ceiling = inputs.positives[0] if inputs.positives else None
    fig = Figure(figsize=(1.4 + 1.9 * (len(metrics) + 0.6), 1.1 + (0.3 if n < 12 else 0.2) * max(n, 3)), layout="constrained")
    axes = fig.subplots(1, len(metrics) + 1, sharey=True, gridspec_kw={"width_ratios": [0.6] + [1.0] * len(metrics)})
    y = np.arange(n)
    axes[0].barh(y, [strength.get(p, math.nan) for p in order], color="#BBBBBB", height=0.6)
    axes[0].set_xlabel(strength_label)
    labels = [f"{s} *" if p in flags else s for p, s in zip(order, short_labels(order))]
    axes[0].set_yticks(y, labels, fontsize=7 if n <= 60 else 5)
    for lab, p in zip(axes[0].get_yticklabels(), order):
        if p in flags:
            lab.set_color(WORSE)
    axes[0].set_ylim(n - 0.5, -0.5)
    handles: dict[str, Any] = {short_label(inputs.model_name): Line2D([], [], marker="o", color=MODEL, ls="", ms=5)}
    titles = metric_labels(metrics)
    for ax, metric in zip(axes[1:], metrics):
        info = metric_info(metric)
        ref = _best_reference(inputs, metric)
        model_v = [inputs.model.values[metric][idx[p]] for p in order]
        if ceiling is not None and metric in ceiling.table.values:
            cv = [ceiling.table.values[metric][idx[p]] for p in order]
            ax.scatter(cv, y, marker="|", s=110, color=CEILING, lw=2.2, zorder=2)
            handles[ceiling.name] = Line2D([], [], marker="|", color=CEILING, ls="", ms=9, mew=2.2)
        if ref is not None:
            look = _look(ref)
            bv = [ref.table.values[metric][idx[p]] for p in order]
            for yi, m, b in zip(y, model_v, bv):
                if not (math.isnan(m) or math.isnan(b)):
                    ax.plot([b, m], [yi, yi], color=MODEL if advantage(m, b, info.higher_is_better) >= 0 else WORSE, lw=1.2, zorder=2)
            ax.scatter(bv, y, marker=look.marker, color=look.color, s=22, zorder=3)
            handles[short_label(look.label)] = Line2D([], [], marker=look.marker, color=look.color, ls="", ms=5)
            ax.set_title(f"{titles[metric]}\nvs {short_label(ref.name)}", fontsize=8)
        else:
            ax.set_title(titles[metric], fontsize=8)
        ax.scatter(model_v, y, marker="o", color=MODEL, s=26, edgecolors="white", linewidths=0.6, zorder=4)
        ax.set_xlabel(f"{titles[metric]}\n({info.direction})")  # on one line, 'overlap_at_N (higher is better)' ran into the next panel's
        value_axis(ax, nbins=4)
        ax.grid(axis="y", color="#F2F2F2", lw=0.5)
        ax.tick_params(axis="y", length=0)
    handles["model better"] = Line2D([], [], color=MODEL, lw=1.2)
    handles["model worse"] = Line2D([], [], color=WORSE, lw=1.2)
    if flags:
        handles["* flagged (see table)"] = Patch(color="none")
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncol=min(len(handles), 6))
    return fig


#: Most conditions whose dots a figure draws as vector marks. Each dot is ~230 bytes of SVG: 1,600 conditions x 4 metrics x
#: 2 series made the advantage figure 3 MB of a 3.6 MB page (a 20,000-row drug screen: ~37 MB); beyond, the dots are one
#: embedded image (axes, labels and legend stay vector).
VECTOR_DOTS = 400


def advantage_figure(inputs: ReportInputs, metrics: Sequence[str], strength: Mapping[str, float],
                     strength_label: str = "response strength") -> Figure:
    """Per metric: the model's advantage over the best baseline against response strength (one dot per condition).

    Positive = the model is better on that condition; the ceiling's own advantage over the same
    baseline (green) shows how much better anything could be there.
    """
    perts = list(inputs.model.perts)
    ceiling = inputs.positives[0] if inputs.positives else None
    dots = {"rasterized": len(perts) > VECTOR_DOTS}  # the dots as one embedded image: the page's size stays bounded
    fig = Figure(figsize=(2.35 * len(metrics) + 0.4, 2.5), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = np.array([strength.get(p, math.nan) for p in perts])
    handles: dict[str, Any] = {
        f"{short_label(inputs.model_name)} − baseline (model better)": Line2D([], [], marker="o", color=MODEL, ls="", ms=4.5),
        "(baseline better)": Line2D([], [], marker="o", color=WORSE, ls="", ms=4.5)}
    titles = metric_labels(metrics)
    for ax, metric in zip(axes, metrics):
        info = metric_info(metric)
        ref = _best_reference(inputs, metric)
        if ref is None:
            ax.set_visible(False)
            continue
        b = ref.table.values[metric]
        adv = np.array([advantage(m, bb, info.higher_is_better) for m, bb in zip(inputs.model.values[metric], b)])
        if ceiling is not None and metric in ceiling.table.values:
            cadv = np.array([advantage(c, bb, info.higher_is_better) for c, bb in zip(ceiling.table.values[metric], b)])
            ax.scatter(x, cadv, marker="_", s=60, color=CEILING, lw=1.8, zorder=2, **dots)
            handles[f"{short_label(ceiling.name)} − baseline"] = Line2D([], [], marker="_", color=CEILING, ls="", ms=8, mew=1.8)
        colors = [MODEL if a >= 0 else WORSE for a in np.nan_to_num(adv, nan=0.0)]
        ax.scatter(x, adv, c=colors, s=20, edgecolors="white", linewidths=0.5, zorder=3, **dots)
        ax.axhline(0, color="#888888", lw=0.8, zorder=1)
        ax.set_xlabel(strength_label)
        value_axis(ax, "y")
        ax.set_title(f"{titles[metric]} vs {short_label(ref.name)}", fontsize=8)
        ax.set_ylabel(f"{titles[metric]} advantage over {short_label(ref.name)}\n(oriented: > 0 = model better)", fontsize=7.5)
        ax.grid(axis="y")
    # one legend above the panels (each panel's baseline is in its title): a legend in each 2.35-inch panel, naming the
    # model and the baseline, was wider than the panel for a 40-character name and collapsed the layout
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncol=len(handles) if len(metrics) > 1 else 1)
    return fig
