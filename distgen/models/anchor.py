"""Anchors: what a generator's dynamics model the cells relative to (a residual parametrisation).

``"none"``: the cells themselves. ``"control_mean"``: each set's cells minus the mean of its
control set (masked), added back after sampling; the network then learns the response and the
spread around the control population, and the control population's profile (e.g. an unseen cell
type's) reaches the output exactly instead of through the network. ``"additive"``: the control mean
plus the sum of the condition's per-atom effects fitted on the training singles (the additive
baseline's mean); the network learns what the additive model misses (an interaction, the spread).
The control mean is each set's own (``Generator(anchor_reference="set")``) or the mean of all training
control cells of the set's context (``"training"``: free of the sampling noise of a small control set).
"""

from __future__ import annotations

from torch import Tensor

ANCHORS = ("none", "control_mean", "additive")
#: Which control mean an anchor starts from: each set's own, or the training control cells' of its context.
ANCHOR_REFERENCES = ("set", "training")


def control_mean(control: Tensor, mask: Tensor | None) -> Tensor:
    """``[B, 1, G]`` mean of the real cells of each control set ``[B, m, G]`` (mask ``[B, m]``)."""
    if mask is None:
        return control.mean(1, keepdim=True)
    w = mask.to(control.dtype)[..., None]
    return (control * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)


def summed_effects(effects: Tensor, perturbation: Tensor) -> Tensor:
    """``[B, G]``: per row of ``perturbation`` (``[B, P]`` atom ids, ``-1`` padded) the sum of its atoms' rows of ``effects [A, G]``."""
    real = (perturbation >= 0).to(effects.dtype)[..., None]
    return (effects[perturbation.clamp_min(0)] * real).sum(1)


def anchor_of(kind: str, control: Tensor, mask: Tensor | None, perturbation: Tensor | None = None,
              effects: Tensor | None = None) -> Tensor | None:
    """The ``[B, 1, G]`` anchor of ``kind`` for control sets ``[B, m, G]``; None for ``"none"``.

    ``"additive"`` also needs each set's ``perturbation`` (``[B, P]`` atom ids) and the per-atom
    ``effects`` ``[A, G]`` on the control's genes and scale (zero rows for atoms without an effect).
    """
    if kind == "none":
        return None
    if kind == "control_mean":
        return control_mean(control, mask)
    if kind == "additive":
        if perturbation is None or effects is None:
            raise ValueError("anchor 'additive' needs the sets' perturbation atoms and the per-atom effects")
        if effects.shape[-1] != control.shape[-1]:
            raise ValueError(f"per-atom effects cover {effects.shape[-1]} genes, the control sets {control.shape[-1]}")
        return control_mean(control, mask) + summed_effects(effects.to(control.dtype), perturbation)[:, None, :]
    raise ValueError(f"anchor must be one of {ANCHORS}, got {kind!r}")


__all__ = ["ANCHORS", "ANCHOR_REFERENCES", "anchor_of", "control_mean", "summed_effects"]
