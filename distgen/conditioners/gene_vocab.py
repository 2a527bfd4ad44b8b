"""Gene-vocabulary conditioner: a perturbed gene is embedded by its row in a gene table, by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from distgen.capabilities import ConditionerCapabilities
from distgen.conditioners.atoms import AtomCombiner
from distgen.conditioners.base import Conditioner
from distgen.types import ConditionLabels, DataInfo


def gene_lookup(names: Sequence[str], genes: Sequence[str], case_sensitive: bool = False) -> list[int]:
    """Position of each name in ``genes`` (exact match first, then case-insensitive); -1 if absent."""
    exact = {g: i for i, g in enumerate(genes)}
    folded: dict[str, int] = {}
    for i, g in enumerate(genes):
        folded.setdefault(g.upper(), i)
    out = []
    for n in names:
        i = exact.get(n, -1)
        if i < 0 and not case_sensitive:
            i = folded.get(n.upper(), -1)
        out.append(i)
    return out


class GeneVocabConditioner(Conditioner):
    """Embed a genetic perturbation by its target gene's vector in a gene table shared by name.

    Every atom that names a gene of ``info.genes`` has a row. When the model's backbone has gene
    tokens (it exposes ``gene_embedding``), assembly *ties* this conditioner to that table
    (scDFM's design): a gene that is never perturbed in training is still trained as an expression
    token, so its perturbation embedding is meaningful and it can be predicted. Untied, the table
    is this conditioner's own and a gene's row is trained only when that gene is perturbed in
    training, so ``can_embed`` reports only such genes. Atoms that are not genes (drugs) cannot
    be embedded; use ``embedding_table`` for those.

    Parameters
    ----------
    info
        Dataset vocabularies (injected); ``info.genes`` is the vocabulary.
    seen_perturbations
        Atoms of the training split (injected); None means every atom of ``info``.
    dim
        Output dimension.
    pool
        ``sum``, ``mean`` or ``attention`` over the atoms of a combination.
    dose
        ``none``, ``linear``, ``log`` or ``learned`` dose encoding.
    dose_scale
        Dose unit of the ``log`` / ``learned`` encodings.
    use_context, use_batch
        Add a learned context / batch embedding.
    share_gene_embedding
        Let assembly tie the table to the backbone's gene-token embedding when it has one.
    case_sensitive
        Match atom names to gene names exactly (default: exact, then ignoring case).
    """

    atom_gene: Tensor

    capabilities = ConditionerCapabilities(supports_unseen_perturbations=None, embeds_batches=None, embeds_contexts=None,
                                           reads_dose=None)  # once tied; use_batch, use_context; dose
    example_params: ClassVar[dict[str, Any]] = {"dim": 8}

    def __init__(
        self,
        info: DataInfo,
        seen_perturbations: Sequence[str] | None = None,
        dim: int = 64,
        pool: str = "sum",
        dose: str = "none",
        dose_scale: float = 1.0,
        use_context: bool = True,
        use_batch: bool = False,
        share_gene_embedding: bool = True,
        case_sensitive: bool = False,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"gene_vocab: dim must be >= 1, got {dim}")
        self.dim = dim
        self.genes = info.genes
        self.case_sensitive = case_sensitive
        self.share_gene_embedding = share_gene_embedding
        self.seen = frozenset(info.perturbations if seen_perturbations is None else seen_perturbations)
        self.register_buffer(
            "atom_gene", torch.tensor(gene_lookup(info.perturbations, info.genes, case_sensitive) or [-1]), persistent=False
        )
        self.own: nn.Embedding | None = nn.Embedding(max(1, info.n_genes), dim)
        nn.init.normal_(self.own.weight, std=dim**-0.5)
        self.proj: nn.Module = nn.Identity()
        self._shared: list[nn.Module] = []  # a plain list: the backbone owns (and saves) a tied table
        self.combine = AtomCombiner(info, dim, pool, dose, dose_scale, use_context, use_batch, heads=1, owner="gene_vocab")
        self.capabilities = ConditionerCapabilities(supports_unseen_perturbations=False, embeds_batches=use_batch, embeds_contexts=use_context,
                                                    reads_dose=dose != "none")
        self._init_null()

    def tie_gene_embedding(self, table: nn.Module, width: int) -> None:
        """Use ``table`` (gene ids ``[...] -> [..., width]``, ids into ``info.genes``) as the gene table."""
        if not self.share_gene_embedding:
            return
        self._shared = [table]
        self.capabilities = self.capabilities.replace(supports_unseen_perturbations=True)
        self.own = None
        self.proj = nn.Identity() if width == self.dim else nn.Linear(width, self.dim)

    @property
    def tied(self) -> bool:
        """True when the gene table is the backbone's gene-token embedding."""
        return bool(self._shared)

    def embed(self, labels: ConditionLabels) -> Tensor:
        ids = labels.perturbation
        gene = self.atom_gene[ids.clamp_min(0)]
        real = (ids >= 0) & (gene >= 0)
        table = self._shared[0] if self._shared else self.own
        assert table is not None
        vec = self.proj(table(gene.clamp_min(0)))
        vec = vec.masked_fill(~real[..., None], 0.0)
        return self.combine(vec, labels)

    def can_embed(self, atoms: Sequence[str]) -> list[bool]:
        pos = gene_lookup(atoms, self.genes, self.case_sensitive)
        return [p >= 0 and (self.tied or a in self.seen) for a, p in zip(atoms, pos)]


__all__ = ["GeneVocabConditioner", "gene_lookup"]
