"""From per-atom vectors to a condition embedding: dose, combination pooling, context and batch.

Shared by the conditioners that differ only in *where atom vectors come from* (a gene vocabulary,
a user-supplied table): they hand ``[B, P, D]`` atom vectors to an ``AtomCombiner``.
"""

from __future__ import annotations

from torch import Tensor, nn

from distgen.conditioners.dose import DoseEncoding
from distgen.conditioners.pooling import SlotPool
from distgen.types import ConditionLabels, DataInfo


class AtomCombiner(nn.Module):
    """``atoms [B, P, D]`` + labels -> ``[B, D]``: dose-weight, pool over the combination, add covariates.

    Parameters
    ----------
    info
        Vocabularies (sizes of the context and batch tables).
    dim
        Width ``D``.
    pool
        ``sum``, ``mean`` or ``attention`` over the atoms of a combination (any arity).
    dose
        ``none``, ``linear``, ``log`` or ``learned`` (see ``distgen.conditioners.dose``).
    dose_scale
        Dose unit of the ``log`` and ``learned`` encodings.
    use_context, use_batch
        Add a learned context / batch embedding.
    heads
        Heads of attention pooling.
    owner
        The conditioner's registered name (named in the dose encoding's warnings).
    """

    def __init__(
        self,
        info: DataInfo,
        dim: int,
        pool: str = "sum",
        dose: str = "none",
        dose_scale: float = 1.0,
        use_context: bool = True,
        use_batch: bool = False,
        heads: int = 1,
        *,
        owner: str = "",
    ) -> None:
        super().__init__()
        self.dose = DoseEncoding(dim, dose, dose_scale, owner=owner)
        self.pool = SlotPool(dim, pool, heads)
        self.context = nn.Embedding(len(info.contexts), dim) if use_context else None
        self.batch = nn.Embedding(len(info.batches), dim) if use_batch else None
        for table in (self.context, self.batch):
            if table is not None:
                nn.init.normal_(table.weight, std=dim**-0.5)

    def forward(self, atoms: Tensor, labels: ConditionLabels) -> Tensor:
        e = self.pool(self.dose(atoms, labels.dose.to(atoms.dtype)), labels.perturbation)
        if self.context is not None:
            e = e + self.context(labels.context)
        if self.batch is not None:
            e = e + self.batch(labels.batch)
        return e


__all__ = ["AtomCombiner"]
