"""A per-cell MLP backbone: the simplest network that satisfies the backbone contract."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgen.backbones.base import Backbone, Condition
from distgen.backbones.embeddings import TimeEmbedding
from distgen.capabilities import BackboneCapabilities


class MLPBackbone(Backbone):
    """Per-cell MLP on ``[x_t, control cell, time, condition, population]``.

    Each cell is processed independently (trivially permutation-equivariant). Its input and output
    layers are tied to the full gene panel, so it does not support gene subsampling.

    Parameters
    ----------
    n_genes, cond_dim, population_dim
        Injected at assembly.
    hidden, depth
        Width and number of hidden layers.
    use_control
        Feed the matched control cell of each position as input (requires control cells).
    self_conditioning
        Also feed the previous data estimate ``x_self_cond`` (zeros when none is given). Needs a
        dynamics that self-conditions (``diffusion`` with ``self_condition > 0``); assembly refuses it
        with any other (flow matching), where the input would always be zeros.
    """

    capabilities = BackboneCapabilities(self_conditioning=None)  # the self_conditioning parameter

    def __init__(
        self,
        n_genes: int,
        cond_dim: int,
        population_dim: int = 0,
        hidden: int = 256,
        depth: int = 3,
        use_control: bool = False,
        self_conditioning: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"mlp: depth and hidden must be >= 1, got depth={depth}, hidden={hidden}")
        self.n_genes = n_genes
        self.population_dim = population_dim
        self.use_control = use_control
        self.self_conditioning = self_conditioning
        self.capabilities = BackboneCapabilities(self_conditioning=self_conditioning)
        self.requires = frozenset({"embedding"} | ({"control"} if use_control else set()))
        n_in = n_genes * (1 + int(use_control) + int(self_conditioning))
        self.time = TimeEmbedding(hidden)
        self.inp = nn.Linear(n_in, hidden)
        # no condition (assembly refuses it: an MLP needs an embedding): no zero-width layer, whose init warned before the refusal
        self.cond = nn.Linear(cond_dim + population_dim, hidden) if cond_dim + population_dim > 0 else None
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.SiLU(), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, n_genes))

    def forward(self, x_t: Tensor, t: Tensor, cond: Condition, *, x_self_cond: Tensor | None = None) -> Tensor:
        if x_t.shape[-1] != self.n_genes:
            raise ValueError(f"mlp backbone was built for {self.n_genes} genes, got {x_t.shape[-1]} (it cannot subsample genes)")
        parts = [x_t]
        if self.use_control:
            if cond.control is None or cond.control.shape[1] != x_t.shape[1]:
                raise ValueError("mlp backbone with use_control needs one control cell per generated cell")
            parts.append(cond.control)
        if self.self_conditioning:
            parts.append(torch.zeros_like(x_t) if x_self_cond is None else x_self_cond)
        c = [cond.embedding] if cond.embedding is not None else []
        if cond.population is not None:
            c.append(cond.population)
        h = self.inp(torch.cat(parts, -1)) + self.time(t)
        if c and self.cond is not None:
            h = h + self.cond(torch.cat(c, -1))[:, None, :]
        return self.out(self.body(h))
