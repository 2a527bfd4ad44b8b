"""The linear baseline of Ahlmann-Eltze, Huber & Anders (Nature Methods 2025).

``Y ~ G W P^T + b``: ``Y [genes, conditions]`` are the training effects, ``G [genes, K]`` the top-``K``
principal components of ``Y`` (a gene embedding), ``P [conditions, K]`` a perturbation embedding taken
from ``G``'s rows of the perturbed genes (summed over the atoms of a combination), ``b`` the mean effect.
Ridge solution ``W = (G^T G + l I)^-1 G^T (Y - b) P (P^T P + l I)^-1``; an unseen perturbation of a
measured gene ``j`` is predicted as ``G W G[j] + b``. Needs genetic perturbations whose targets are
measured genes; anything else falls back to ``b`` (the mean-perturbation baseline).
"""

from __future__ import annotations

import torch
from torch import Tensor

from distgen.capabilities import ModelCapabilities
from distgen.models.base import FittedModel
from distgen.models.baselines.effects import POOLED_DOSE_RULE, add_effects, atoms_of, condition_effects
from distgen.types import CellTable, ConditionLabels


class LinearBaseline(FittedModel):
    """Bilinear ridge model on a PCA gene embedding (Ahlmann-Eltze et al. 2025); ``K`` dims, ridge ``ridge``."""

    capabilities = ModelCapabilities(supports_unseen_perturbations=True)
    dose_rule = POOLED_DOSE_RULE  # it predicts no dose (docs/data.md, "Doses")

    def __init__(self, n_components: int = 10, ridge: float = 0.1) -> None:
        if n_components < 1 or ridge < 0:
            raise ValueError(f"linear: n_components must be >= 1 and ridge >= 0, got {n_components}, {ridge}")
        self.n_components = n_components
        self.ridge = ridge
        self.gene_row: dict[int, int] = {}
        self.atom_names: tuple[str, ...] = ()

    def _embed(self, atoms: tuple[int, ...]) -> Tensor | None:
        rows = [self.gene_row.get(a) for a in atoms]
        if not rows or any(r is None for r in rows):
            return None
        return self.G[[r for r in rows if r is not None]].sum(0)

    def fit(self, train: CellTable) -> LinearBaseline:
        info = self.info = train.info  # what its weights are indexed by (distgen.predict checks it)
        gidx = info.gene_index()
        self.atom_names = info.perturbations
        self.gene_row = {i: gidx[a] for i, a in enumerate(info.perturbations) if a in gidx and info.perturbation_type == "genetic"}
        effects = condition_effects(train)
        if not effects:
            raise ValueError("linear: the training cells contain no perturbed cells")
        conds = list(effects)
        Y = torch.stack([effects[c] for c in conds], 1)  # [G, C]
        self.b = Y.mean(1)
        Yc = Y - self.b[:, None]
        k = max(1, min(self.n_components, Yc.shape[0], Yc.shape[1]))
        U, _, _ = torch.linalg.svd(Yc, full_matrices=False)
        self.G = U[:, :k]  # [G, K]
        embedded = [(i, e) for i, c in enumerate(conds) if (e := self._embed(c)) is not None]
        if not embedded:
            self.W = torch.zeros(k, k, dtype=Y.dtype)
            return self
        keep = [i for i, _ in embedded]
        P = torch.stack([e for _, e in embedded])  # [C', K]
        eye = torch.eye(k, dtype=Y.dtype)
        left = torch.linalg.solve(self.G.T @ self.G + self.ridge * eye, self.G.T @ Yc[:, keep])  # [K, C']
        self.W = torch.linalg.solve(P.T @ P + self.ridge * eye, (left @ P).T).T  # left P (P^T P + l I)^-1
        return self

    def predict(self, control: Tensor, control_mask: Tensor, labels: ConditionLabels) -> Tensor:
        if not hasattr(self, "W"):
            raise RuntimeError("linear: call fit(train) before predict")
        eff = torch.zeros(len(labels), control.shape[-1], dtype=torch.float64)
        for b, row in enumerate(labels.perturbation):
            atoms = atoms_of(row)
            if not atoms:
                continue
            p = self._embed(atoms)
            eff[b] = self.b if p is None else self.G @ (self.W @ p) + self.b
        return add_effects(control, control_mask, eff)

    def can_predict(self, atoms: list[str]) -> list[bool]:
        index = {a: i for i, a in enumerate(self.atom_names)}
        return [index.get(a) in self.gene_row for a in atoms]
