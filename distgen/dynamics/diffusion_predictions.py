"""Exact conversions between the three diffusion parameterisations (pure functions).

With ``x = a x0 + s eps`` (``a = sqrt(abar)``, ``s = sqrt(1 - abar)``, ``a^2 + s^2 = 1``) a network
can predict the noise ``eps``, the data ``x0`` or the velocity ``v = a eps - s x0`` (Salimans & Ho,
2022). Given ``x`` any one of them determines the others:

* from ``eps``: ``x0 = (x - s eps) / a``
* from ``x0``:  ``eps = (x - a x0) / s``
* from ``v``:   ``x0 = a x - s v``, ``eps = s x + a v``

``a`` and ``s`` broadcast against ``x`` (e.g. ``[B, 1, 1]``).
"""

from __future__ import annotations

from torch import Tensor

PREDICTIONS = ("noise", "x0", "velocity")


def _check(kind: str) -> None:
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown diffusion prediction {kind!r}; choose from {PREDICTIONS}")


def to_x0(pred: Tensor, kind: str, x: Tensor, a: Tensor, s: Tensor) -> Tensor:
    """Data estimate ``x0`` from a prediction of ``kind`` at the noisy state ``x``."""
    _check(kind)
    if kind == "x0":
        return pred
    if kind == "noise":
        return (x - s * pred) / a
    return a * x - s * pred


def to_noise(pred: Tensor, kind: str, x: Tensor, a: Tensor, s: Tensor) -> Tensor:
    """Noise estimate ``eps`` from a prediction of ``kind`` at the noisy state ``x``."""
    _check(kind)
    if kind == "noise":
        return pred
    if kind == "x0":
        return (x - a * pred) / s
    return s * x + a * pred


def from_x0_noise(kind: str, x0: Tensor, eps: Tensor, a: Tensor, s: Tensor) -> Tensor:
    """The quantity a network of ``kind`` should output for data ``x0`` and noise ``eps`` (its target)."""
    _check(kind)
    if kind == "x0":
        return x0
    if kind == "noise":
        return eps
    return a * eps - s * x0


__all__ = ["PREDICTIONS", "from_x0_noise", "to_noise", "to_x0"]
