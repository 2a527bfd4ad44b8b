"""Set Transformer encoder: ISAB (or SAB) blocks over cells, PMA pooling -> a population vector."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from distgen.capabilities import EncoderCapabilities
from distgen.encoders.attention import ISAB, PMA, SAB
from distgen.encoders.base import Encoder


class SetTransformerEncoder(Encoder):
    """Set Transformer (Lee et al., 2019): cells -> ISAB/SAB stack -> PMA pooling -> ``[B, dim]``.

    Permutation-invariant and mask-correct: padded cells are zeroed on entry, never attended to,
    and never pooled. As a ``population_encoder`` it is trained with the generator. As a
    ``distribution_loss`` its distance is the squared distance between embeddings; a jointly
    minimised learned distance collapses to zero, so use ``frozen: true`` there (a fixed random
    set-network kernel) or load pre-trained weights.

    Parameters
    ----------
    n_genes
        Number of gene columns (injected).
    dim
        Output embedding dimension ``D``.
    hidden
        Width of the attention blocks.
    heads
        Attention heads (``hidden`` must be divisible by it).
    layers
        Number of equivariant blocks before pooling.
    n_inducing
        Inducing points per ISAB block (cost ``O(m k)``); 0 uses full SAB blocks (``O(m^2)``).
    n_seeds
        PMA seed vectors; with more than one, a SAB mixes the seeds before they are flattened.
    frozen
        Freeze all weights (a fixed random set embedding; use when this is a distribution loss).
    """

    capabilities = EncoderCapabilities(fixed_gene_panel=True)
    example_params: ClassVar[dict[str, Any]] = {"dim": 8, "hidden": 16, "heads": 2, "layers": 1, "n_inducing": 3}

    def __init__(
        self,
        n_genes: int,
        dim: int = 64,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        n_inducing: int = 16,
        n_seeds: int = 1,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        if min(n_genes, dim, hidden, heads, n_seeds) < 1 or layers < 0 or n_inducing < 0:
            raise ValueError(
                f"set_transformer: n_genes, dim, hidden, heads, n_seeds must be >= 1 and layers, n_inducing >= 0; "
                f"got n_genes={n_genes}, dim={dim}, hidden={hidden}, heads={heads}, n_seeds={n_seeds}, "
                f"layers={layers}, n_inducing={n_inducing}"
            )
        if hidden % heads:
            raise ValueError(f"set_transformer: hidden={hidden} must be divisible by heads={heads}")
        self.dim = dim
        self.n_genes = n_genes
        self.embed = nn.Linear(n_genes, hidden)
        self.blocks = nn.ModuleList(
            [ISAB(hidden, heads, n_inducing) if n_inducing > 0 else SAB(hidden, heads) for _ in range(layers)]
        )
        self.pool = PMA(hidden, heads, n_seeds)
        self.mix = SAB(hidden, heads) if n_seeds > 1 else None
        self.out = nn.Linear(n_seeds * hidden, dim)
        if frozen:
            self.requires_grad_(False)

    def forward(self, cells: Tensor, mask: Tensor) -> Tensor:
        """``[B, m, G], [B, m] -> [B, dim]``."""
        if cells.shape[-1] != self.n_genes:
            raise ValueError(
                f"set_transformer was built for {self.n_genes} genes, got {cells.shape[-1]}; it reads the full gene panel"
            )
        mask = mask.bool()
        h = self.embed(cells.masked_fill(~mask[..., None], 0.0))
        for block in self.blocks:
            h = block(h, mask)
        s = self.pool(h, mask)
        if self.mix is not None:
            s = self.mix(s, mask.new_ones(s.shape[:2]))
        return self.out(s.flatten(1))


__all__ = ["SetTransformerEncoder"]
