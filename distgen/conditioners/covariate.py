"""Covariate conditioner (PerturbDiff's CovEncoder): perturbation, context and batch, concatenated.

Each covariate gets its own ``part_dim``-wide vector: the perturbation from a learned one-hot table
or from frozen user-supplied vectors (GenePT, ESM2, ChemBERTa...) through a linear map, the context
(cell type / line) and the batch (donor / plate) from learned one-hot tables or, for the context,
frozen vectors. The three are concatenated and mapped by ``Linear -> SiLU`` to ``dim``; a learned
null vector replaces the whole output when the condition is dropped (classifier-free guidance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from distgen.capabilities import ConditionerCapabilities
from distgen.conditioners.base import Conditioner, pool_slots
from distgen.conditioners.embedding_table import resolve_names
from distgen.conditioners.tables import load_embedding_table
from distgen.config import InertSettingWarning
from distgen.errors import warn
from distgen.types import ConditionLabels, DataInfo


def frozen_rows(names: Sequence[str], table: str | dict[str, list[float]], key_column: str | None,
                what: str = "embedding table", kept_in_state: bool = False) -> tuple[Tensor, Tensor]:
    """``[len(names), F]`` frozen vectors for ``names`` from a table, and a ``[len(names)]`` found mask (``what`` and
    ``kept_in_state``: ``load_embedding_table``'s; the caller keeps the rows as buffers when it says so)."""
    vectors = load_embedding_table(table, key_column, what, kept_in_state)
    keys = tuple(vectors)
    rows = resolve_names(list(names), keys, case_sensitive=False)
    width = len(next(iter(vectors.values())))
    out = np.zeros((max(1, len(names)), width), dtype=np.float32)
    found = np.zeros(max(1, len(names)), dtype=bool)
    for i, key in enumerate(rows):
        if key is not None:
            out[i], found[i] = vectors[key], True
    return torch.from_numpy(out), torch.from_numpy(found)


class CovariateConditioner(Conditioner):
    """Concatenated perturbation + context + batch embeddings -> ``Linear -> SiLU`` -> ``dim``.

    Parameters
    ----------
    info, n_genes, seen_perturbations
        Injected at assembly.
    perturbation
        ``"onehot"`` (a learned vector per atom; PerturbDiff's released PBMC/Tahoe runs) or
        ``"table"`` (frozen vectors from ``perturbation_table`` + a learned linear map).
    perturbation_table, key_column
        A CSV/TSV/parquet path or a mapping atom -> vector (used when ``perturbation="table"``).
    context_table
        Optional frozen vectors per context name (e.g. text embeddings of cell-type names);
        default a learned one-hot table.
    use_context, use_batch
        Include the context / batch part.
    part_dim
        Width of each part (PerturbDiff: 128).
    dim
        Output width; None ties it to the number of genes (PerturbDiff: ``Linear(384 -> G)``).
    onehot_std
        Standard deviation of the one-hot perturbation table's normal initialisation; None (default)
        uses ``part_dim ** -0.5``. PerturbDiff's CovEncoder keeps ``nn.Embedding``'s N(0, 1): 1.0.
    """

    capabilities = ConditionerCapabilities(supports_unseen_perturbations=None, embeds_batches=None, embeds_contexts=None)  # 'table' / use_batch / context rows
    example_params: ClassVar[dict[str, Any]] = {"part_dim": 4, "dim": 8}
    atom_vectors: Tensor  # buffers (table modes)
    atom_found: Tensor
    context_vectors: Tensor

    def __init__(
        self,
        info: DataInfo,
        n_genes: int,
        seen_perturbations: Sequence[str] | None = None,
        perturbation: str = "onehot",
        perturbation_table: str | dict[str, list[float]] | None = None,
        key_column: str | None = None,
        context_table: str | dict[str, list[float]] | None = None,
        use_context: bool = True,
        use_batch: bool = True,
        part_dim: int = 128,
        dim: int | None = None,
        onehot_std: float | None = None,
    ) -> None:
        super().__init__()
        if perturbation not in ("onehot", "table"):
            raise ValueError(f"covariate: perturbation must be 'onehot' or 'table', got {perturbation!r}")
        if perturbation == "table" and perturbation_table is None:
            raise ValueError("covariate: perturbation='table' needs perturbation_table (a path or a mapping atom -> vector)")
        if part_dim < 1:
            raise ValueError(f"covariate: part_dim must be >= 1, got {part_dim}")
        inert = []  # an ablation over any of these would measure nothing
        if perturbation == "onehot" and perturbation_table is not None:
            inert.append("perturbation_table has no effect with perturbation: onehot (a learned row per atom); set perturbation: table "
                         "to use it, or remove it")
        if perturbation == "onehot" and key_column is not None:
            inert.append(f"key_column={key_column!r} has no effect with perturbation: onehot (it names the key column of "
                         "perturbation_table's file); remove it")
        if perturbation == "table" and isinstance(perturbation_table, Mapping) and key_column is not None:
            inert.append(f"key_column={key_column!r} has no effect with perturbation_table given as a mapping (it names the key "
                         "column of a table file); remove it")
        if perturbation == "table" and onehot_std is not None:
            inert.append(f"onehot_std={onehot_std} has no effect with perturbation: table (it is the initial spread of the learned "
                         "one-hot rows); remove it")
        if not use_context and context_table is not None:
            inert.append("context_table has no effect with use_context: false (no context is embedded); set use_context: true to "
                         "use it, or remove it")
        for note in inert:
            warn(f"covariate: {note}", InertSettingWarning)
        if onehot_std is not None and not onehot_std > 0:
            raise ValueError(f"covariate: onehot_std must be > 0 or null, got {onehot_std}")
        self.dim = int(n_genes if dim is None else dim)
        if self.dim < 1:  # dim 0 built a condition of no feature: a model that never saw which perturbation it generates
            raise ValueError(f"covariate: dim must be >= 1 (or null: the number of genes), got {dim}")
        self.mode = perturbation
        #: buffers filled from a table file (a run's loading compares them with its checkpoint's: ``table_record``)
        self.table_sources: dict[str, tuple[str, str | None]] = {}
        self.capabilities = ConditionerCapabilities(supports_unseen_perturbations=perturbation == "table", embeds_batches=use_batch,
                                                    embeds_contexts=use_context and context_table is None)
        self.atoms = info.perturbations
        n_atoms = max(1, info.n_perturbations)
        if perturbation == "onehot":
            self.seen = frozenset(info.perturbations if seen_perturbations is None else seen_perturbations)
            self.pert = nn.Embedding(n_atoms, part_dim)
            nn.init.normal_(self.pert.weight, std=part_dim**-0.5 if onehot_std is None else float(onehot_std))
        else:
            assert perturbation_table is not None
            vecs, found = frozen_rows(info.perturbations, perturbation_table, key_column, "covariate: perturbation_table", True)
            self.register_buffer("atom_vectors", vecs)
            self.register_buffer("atom_found", found)
            if not isinstance(perturbation_table, Mapping):
                self.table_sources["atom_vectors"] = (str(perturbation_table), key_column)
            self.table_names = frozenset(load_embedding_table(perturbation_table, key_column, "covariate: perturbation_table",
                                                              kept_in_state=True))  # the keys only
            self.pert_proj = nn.Linear(vecs.shape[1], part_dim)
        self.control = nn.Parameter(torch.zeros(part_dim))  # the "no atoms" perturbation (control sets)
        self.context: nn.Module | None = None
        if use_context and context_table is not None:
            vecs, _ = frozen_rows(info.contexts, context_table, None, "covariate: context_table", True)
            self.register_buffer("context_vectors", vecs)
            if not isinstance(context_table, Mapping):
                self.table_sources["context_vectors"] = (str(context_table), None)
            self.context = nn.Linear(vecs.shape[1], part_dim)
        elif use_context:
            self.context = nn.Embedding(len(info.contexts), part_dim)
        self.batch = nn.Embedding(len(info.batches), part_dim) if use_batch else None
        parts = 1 + int(self.context is not None) + int(self.batch is not None)
        self.out = nn.Linear(parts * part_dim, self.dim)
        self._init_null()

    def embed(self, labels: ConditionLabels) -> Tensor:
        ids = labels.perturbation
        safe = ids.clamp_min(0)
        if self.mode == "onehot":
            atom = self.pert(safe)
        else:
            atom = self.pert_proj(self.atom_vectors[safe]) * self.atom_found[safe][..., None]
        pert = pool_slots(atom, ids, "sum")
        is_ctrl = (ids < 0).all(1, keepdim=True)
        parts = [torch.where(is_ctrl, self.control.expand_as(pert), pert)]
        if isinstance(self.context, nn.Embedding):
            parts.append(self.context(labels.context))
        elif self.context is not None:
            parts.append(self.context(self.context_vectors[labels.context]))
        if self.batch is not None:
            parts.append(self.batch(labels.batch))
        return nn.functional.silu(self.out(torch.cat(parts, -1)))

    def can_embed(self, atoms: Sequence[str]) -> list[bool]:
        if self.mode == "onehot":
            return [a in self.seen for a in atoms]
        upper = {k.upper() for k in self.table_names}
        return [a in self.table_names or a.upper() in upper for a in atoms]


__all__ = ["CovariateConditioner", "frozen_rows"]
