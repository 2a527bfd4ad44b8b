"""Row-wise statistics of ``[P, G]`` tensors: Pearson, Spearman (average ranks), R^2, ROC/PR AUC."""

from __future__ import annotations

import torch
from torch import Tensor


def pearson_rows(x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """Pearson correlation of each row pair of ``x, y [P, G]`` over masked-in columns -> ``[P]``.

    NaN where either row is constant (as ``scipy.stats.pearsonr``).
    """
    w = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    n = w.sum(-1, keepdim=True)
    xc = (x - (x * w).sum(-1, keepdim=True) / n) * w
    yc = (y - (y * w).sum(-1, keepdim=True) / n) * w
    sx, sy = xc.pow(2).sum(-1), yc.pow(2).sum(-1)
    r = (xc * yc).sum(-1) / (sx * sy).sqrt()
    return torch.where((sx > 0) & (sy > 0), r.clamp(-1.0, 1.0), torch.full_like(r, float("nan")))


def average_ranks(x: Tensor) -> Tensor:
    """Ranks (1-based, ties averaged) along the last dim of ``x [..., G]``; NaN-free input."""
    s, order = x.sort(dim=-1)
    lo = torch.searchsorted(s.contiguous(), s.contiguous(), side="left")
    hi = torch.searchsorted(s.contiguous(), s.contiguous(), side="right")
    r = (lo + hi + 1).to(torch.float64) / 2.0
    return torch.empty_like(r).scatter_(-1, order, r)


def spearman_rows(x: Tensor, y: Tensor) -> Tensor:
    """Spearman correlation per row (Pearson of average ranks; ``inf`` values rank at the ends)."""
    return pearson_rows(average_ranks(x), average_ranks(y))


def r2_rows(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Coefficient of determination per row, ``1 - SS_res / SS_tot`` (``sklearn.metrics.r2_score``)."""
    ss_res = (y_true - y_pred).pow(2).sum(-1)
    ss_tot = (y_true - y_true.mean(-1, keepdim=True)).pow(2).sum(-1)
    return torch.where(ss_tot > 0, 1.0 - ss_res / ss_tot, torch.full_like(ss_res, float("nan")))


def roc_auc_rows(labels: Tensor, scores: Tensor) -> Tensor:
    """ROC AUC per row (ties count 1/2, equal to ``sklearn``'s trapezoidal AUC); NaN if one class."""
    pos = labels.to(torch.float64)
    n_pos, n_neg = pos.sum(-1), (1 - pos).sum(-1)
    r = average_ranks(scores.to(torch.float64))
    auc = ((r * pos).sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, float("nan")))


def average_precision_rows(labels: Tensor, scores: Tensor) -> Tensor:
    """Average precision per row (``sklearn.metrics.average_precision_score``: step-wise, ties grouped)."""
    s, order = scores.to(torch.float64).sort(dim=-1, descending=True)
    y = labels.to(torch.float64).gather(-1, order)
    tp = y.cumsum(-1)
    fp = (1 - y).cumsum(-1)
    n_pos = tp[..., -1:]
    last = torch.ones_like(s, dtype=torch.bool)
    last[..., :-1] = s[..., 1:] != s[..., :-1]  # last position of each tied group of scores
    precision = tp / (tp + fp)
    recall = tp / n_pos
    rec_b = torch.where(last, recall, torch.zeros_like(recall))
    prev = torch.cat([torch.zeros_like(rec_b[..., :1]), rec_b.cummax(-1).values[..., :-1]], -1)
    ap = torch.where(last, (recall - prev) * precision, torch.zeros_like(recall)).sum(-1)
    n_p = n_pos[..., 0]
    ok = (n_p > 0) & (n_p < labels.shape[-1])
    return torch.where(ok, ap, torch.full_like(ap, float("nan")))
