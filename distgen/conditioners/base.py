"""Conditioner interface: condition labels (perturbation, dose, context, batch) -> a vector."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from distgen.capabilities import ConditionerCapabilities
from distgen.registry import Registry
from distgen.types import ConditionLabels


class Conditioner(nn.Module, ABC):
    """Embed ``ConditionLabels`` of ``B`` sets into ``[B, dim]``.

    Every conditioner owns a learned *null* embedding: rows where ``drop`` is True get it instead
    of their condition (classifier-free guidance trains with random drops and samples with both).
    ``can_embed`` says, per perturbation atom name, whether this conditioner can give it a
    meaningful embedding (the pre-flight check before training uses it).
    """

    capabilities: ConditionerCapabilities = ConditionerCapabilities()
    dim: int

    @abstractmethod
    def embed(self, labels: ConditionLabels) -> Tensor:
        """``[B, dim]`` condition embedding (no dropping)."""

    @abstractmethod
    def can_embed(self, atoms: Sequence[str]) -> list[bool]:
        """For each perturbation atom name: can it be embedded meaningfully?"""

    def _init_null(self) -> None:
        self.null = nn.Parameter(torch.zeros(self.dim))

    def forward(self, labels: ConditionLabels, drop: Tensor | None = None) -> Tensor:
        """``[B, dim]``; rows with ``drop`` True (``[B]`` bool) get the learned null embedding."""
        e = self.embed(labels)
        if drop is not None:
            e = torch.where(drop[:, None], self.null.to(e.dtype).expand_as(e), e)
        return e


def pool_slots(emb: Tensor, ids: Tensor, how: str = "sum") -> Tensor:
    """Pool ``[B, P, D]`` slot embeddings over real slots (``ids >= 0``) into ``[B, D]``."""
    w = (ids >= 0).to(emb.dtype)[..., None]
    s = (emb * w).sum(1)
    if how == "sum":
        return s
    if how == "mean":
        return s / w.sum(1).clamp_min(1.0)
    raise ValueError(f"unknown pooling {how!r}; use 'sum' or 'mean'")


#: The conditioners registry: built-ins here, plugins from entry points ``distgen.conditioners``.
conditioners: Registry[Conditioner] = Registry(
    "conditioners",
    Conditioner,
    {
        "covariate": "distgen.conditioners.covariate:CovariateConditioner",
        "embedding_table": "distgen.conditioners.embedding_table:EmbeddingTableConditioner",
        "gene_vocab": "distgen.conditioners.gene_vocab:GeneVocabConditioner",
        "onehot": "distgen.conditioners.onehot:OneHotConditioner",
    },
)
