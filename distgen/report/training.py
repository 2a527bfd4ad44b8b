"""The training story of a run: loss curves, validation metrics, the config diff from the preset, the manifest."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from distgen.config import flat_settings, settings_diff
from distgen.report.style import MODEL, NEUTRAL, metric_info, short_label

_PALETTE = ("#0072B2", "#E69F00", "#CC79A7", "#009E73", "#A6761D", "#56B4E9")


def _series(log: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in log if key in r and "step" in r and not math.isnan(r[key])]
    if not pts:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(pts, dtype=np.float64)
    return a[:, 0], a[:, 1]


def panels(log: Sequence[Mapping[str, float]]) -> list[tuple[str, list[str]]]:
    """``[(title, [columns])]`` to draw: training losses together, then validation loss and metrics, then the schedule."""
    keys = list(dict.fromkeys(k for r in log for k in r if k != "step"))
    out: list[tuple[str, list[str]]] = []
    losses = [k for k in keys if k == "loss" or (k.startswith("loss_") and not k.startswith("val_"))]
    if losses:
        out.append(("training loss", losses))
    if "val_loss" in keys:
        out.append(("validation loss", ["val_loss"]))
    out += [(k.removeprefix("val_"), [k]) for k in keys if k.startswith("val_") and k != "val_loss"]
    for k in ("lr", "grad_norm"):
        if k in keys:
            out.append((k, [k]))
    return out


def _smooth(y: np.ndarray, frac: float = 0.05) -> np.ndarray:
    """Exponential moving average (bias-corrected), span ``frac`` of the series."""
    if y.size < 8:
        return y
    alpha = 1.0 / max(2.0, frac * y.size)
    out, acc, w = np.empty_like(y), 0.0, 0.0
    for i, v in enumerate(y):
        acc, w = (1 - alpha) * acc + alpha * v, (1 - alpha) * w + alpha
        out[i] = acc / w
    return out


def training_figure(log: Sequence[Mapping[str, float]], ncols: int = 3) -> Figure | None:
    """Loss curves (raw, faint, and smoothed), validation loss and metrics (with direction), learning rate, gradient norm."""
    spec = panels(log)
    if not spec:
        return None
    n = len(spec)
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.45 * cols + 0.4, 2.05 * rows + 0.2), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (title, keys) in zip(axes, spec):
        positive = True
        for j, key in enumerate(keys):
            x, y = _series(log, key)
            if not y.size:
                continue
            positive &= bool((y > 0).all())
            color = _PALETTE[j % len(_PALETTE)] if len(keys) > 1 else (MODEL if key != "lr" else NEUTRAL)
            if key.startswith("val_") or key == "lr" or y.size < 8:  # a schedule is drawn as it is, never smoothed
                ax.plot(x, y, color=color, lw=1.3, marker="o" if y.size < 30 else None, ms=3, label=short_label(key))
            else:
                ax.plot(x, y, color=color, lw=0.6, alpha=0.3)
                ax.plot(x, _smooth(y), color=color, lw=1.4, label=short_label(key))
        if positive and title in ("training loss", "validation loss", "grad_norm"):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        if title in ("training loss", "validation loss"):
            ax.set_ylabel(f"{title} (lower is better)")
        elif keys[0].startswith("val_"):
            ax.set_ylabel(f"validation {metric_info(title).axis_label}")
        else:
            ax.set_ylabel(short_label(title))
        ax.set_title(short_label(title), loc="left", fontsize=8)  # a plugin metric's or loss term's name, as labels are
        ax.grid(axis="both")
        if len(keys) > 1:
            ax.legend(fontsize=6.5)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


#: Dotted keys of a config (``distgen.config.flat_settings``) and its differences from another (``settings_diff``).
flatten = flat_settings
config_diff = settings_diff
