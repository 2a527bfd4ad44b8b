"""Anchors: what a generator's dynamics model the cells relative to (a residual parametrisation).

``"none"``: the cells themselves. ``"control_mean"``: each set's cells minus the mean of its
control set (masked), added back after sampling; the network then learns the response and the
spread around the control population, and the control population's profile (e.g. an unseen cell
type's) reaches the output exactly instead of through the network.
"""

from __future__ import annotations

from torch import Tensor

ANCHORS = ("none", "control_mean")


def control_mean(control: Tensor, mask: Tensor | None) -> Tensor:
    """``[B, 1, G]`` mean of the real cells of each control set ``[B, m, G]`` (mask ``[B, m]``)."""
    if mask is None:
        return control.mean(1, keepdim=True)
    w = mask.to(control.dtype)[..., None]
    return (control * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)


def anchor_of(kind: str, control: Tensor, mask: Tensor | None) -> Tensor | None:
    """The ``[B, 1, G]`` anchor of ``kind`` for control sets ``[B, m, G]``; None for ``"none"``."""
    if kind == "none":
        return None
    if kind == "control_mean":
        return control_mean(control, mask)
    raise ValueError(f"anchor must be one of {ANCHORS}, got {kind!r}")


__all__ = ["ANCHORS", "anchor_of", "control_mean"]
