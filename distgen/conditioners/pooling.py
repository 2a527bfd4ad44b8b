"""Pooling over the atoms of a combination of any arity: sum, mean or attention."""

from __future__ import annotations

from torch import Tensor, nn

from distgen.conditioners.base import pool_slots
from distgen.encoders.attention import PMA, SAB

POOLS = ("sum", "mean", "attention")


class SlotPool(nn.Module):
    """``emb [B, P, D], ids [B, P] -> [B, D]`` over the real atoms (``ids >= 0``) of each row.

    ``sum`` and ``mean`` are additive models of a combination. ``attention`` lets the atoms of a
    combination attend to each other (a masked SAB: pairwise interactions) and pools them with a
    one-seed PMA; it is permutation-invariant over atoms and works for any number of them. A row
    without atoms (control) pools to zeros in every mode.

    Parameters
    ----------
    dim
        Atom embedding width.
    how
        ``"sum"``, ``"mean"`` or ``"attention"``.
    heads
        Heads of the attention pooling (``dim`` must be divisible by it).
    """

    def __init__(self, dim: int, how: str = "sum", heads: int = 1) -> None:
        super().__init__()
        if how not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {how!r}")
        if how == "attention" and dim % heads:
            raise ValueError(f"attention pooling: dim={dim} must be divisible by heads={heads}")
        self.how = how
        self.interact = SAB(dim, heads) if how == "attention" else None
        self.pma = PMA(dim, heads, 1) if how == "attention" else None

    def forward(self, emb: Tensor, ids: Tensor) -> Tensor:
        if self.interact is None or self.pma is None:
            return pool_slots(emb, ids, self.how)
        real = ids >= 0
        h = self.interact(emb.masked_fill(~real[..., None], 0.0), real)
        pooled = self.pma(h, real)[:, 0]
        return pooled.masked_fill(~real.any(-1, keepdim=True), 0.0)


__all__ = ["POOLS", "SlotPool"]
