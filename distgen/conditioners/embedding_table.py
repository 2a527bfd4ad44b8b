"""Embedding-table conditioner: perturbations embedded by user-supplied vectors (GenePT, ESM2, fingerprints)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from distgen.capabilities import ConditionerCapabilities
from distgen.conditioners.atoms import AtomCombiner
from distgen.conditioners.base import Conditioner
from distgen.conditioners.tables import load_embedding_table
from distgen.types import ConditionLabels, DataInfo


def resolve_names(names: Sequence[str], keys: Sequence[str], case_sensitive: bool) -> list[str | None]:
    """The table key of each name (exact, then case-insensitive unless ``case_sensitive``), or None."""
    exact = set(keys)
    folded: dict[str, str] = {}
    for k in keys:
        folded.setdefault(k.upper(), k)
    return [n if n in exact else (None if case_sensitive else folded.get(n.upper())) for n in names]


class EmbeddingTableConditioner(Conditioner):
    """Embed each perturbation atom by a fixed vector from a table, through a learned MLP.

    The vectors stay frozen (they carry the prior knowledge); a small MLP maps them to ``dim``,
    so any atom with a row in the table, seen in training or not, is embedded meaningfully.
    Atoms without a row get a zero vector and are reported by ``can_embed`` (and the pre-flight
    check) as not embeddable.

    Parameters
    ----------
    info
        Dataset vocabularies (injected).
    table
        A ``.csv``/``.tsv``/``.parquet`` path (one row per atom) or a mapping name -> vector
        (how ``distgen.data`` hands over ``adata.uns`` / ``adata.varm`` tables). Training reads the
        file; a trained run keeps the vectors in its checkpoint and the keys in ``embedding_tables.json``
        (``distgen.conditioners.table_record``), and loads without the file.
    key_column
        Column holding the names (default: the first column when it is not numeric).
    dim, hidden
        Output width and hidden width of the MLP on table vectors.
    standardize
        Z-score every table column over the table's rows before use.
    pool
        ``sum``, ``mean`` or ``attention`` over the atoms of a combination.
    dose, dose_scale
        Dose encoding (``none``, ``linear``, ``log``, ``learned``) and its dose unit.
    use_context, use_batch
        Add a learned context / batch embedding.
    case_sensitive
        Match atom names to table keys exactly (default: exact, then ignoring case).
    """

    atom_vectors: Tensor
    atom_found: Tensor

    capabilities = ConditionerCapabilities(supports_unseen_perturbations=True, embeds_batches=None, embeds_contexts=None,
                                           reads_dose=None)  # use_batch, use_context, dose
    example_params: ClassVar[dict[str, Any]] = {
        "table": {"G0": [1.0, 0.0, 0.5], "G1": [0.0, 1.0, -0.5], "G2": [0.3, 0.3, 0.0], "G3": [-1.0, 0.2, 0.1]},
        "dim": 8,
        "hidden": 16,
    }

    def __init__(
        self,
        info: DataInfo,
        table: str | dict[str, list[float]],
        key_column: str | None = None,
        dim: int = 64,
        hidden: int = 128,
        standardize: bool = True,
        pool: str = "sum",
        dose: str = "none",
        dose_scale: float = 1.0,
        use_context: bool = True,
        use_batch: bool = False,
        case_sensitive: bool = False,
    ) -> None:
        super().__init__()
        if dim < 1 or hidden < 1:
            raise ValueError(f"embedding_table: dim and hidden must be >= 1, got dim={dim}, hidden={hidden}")
        if isinstance(table, Mapping) and key_column is not None:  # an ablation over key_column would measure nothing
            from distgen.config import InertSettingWarning
            from distgen.errors import warn

            warn(f"embedding_table: key_column={key_column!r} has no effect with a table given as a mapping (it names the key "
                 "column of a table file); remove it", InertSettingWarning)
        src: str | Path | Mapping[str, Any] = table
        vectors = load_embedding_table(src, key_column, what="embedding_table: table", kept_in_state=True)  # buffers
        self.dim = dim
        self.case_sensitive = case_sensitive
        self.keys = tuple(vectors)
        mat = np.stack([vectors[k] for k in self.keys])
        if standardize and mat.shape[0] > 1:
            mat = (mat - mat.mean(0)) / np.where(mat.std(0) > 0, mat.std(0), 1.0)
        width = mat.shape[1]
        rows = resolve_names(info.perturbations, self.keys, case_sensitive)
        key_pos = {k: i for i, k in enumerate(self.keys)}
        atom_vec = np.zeros((max(1, info.n_perturbations), width), dtype=np.float32)
        found = np.zeros(max(1, info.n_perturbations), dtype=bool)
        for a, key in enumerate(rows):
            if key is not None:
                atom_vec[a], found[a] = mat[key_pos[key]], True
        self.register_buffer("atom_vectors", torch.from_numpy(atom_vec))
        self.register_buffer("atom_found", torch.from_numpy(found))
        #: buffers filled from a table file (a run's loading compares them with its checkpoint's: ``table_record``)
        self.table_sources = {} if isinstance(table, Mapping) else {"atom_vectors": (str(table), key_column)}
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.combine = AtomCombiner(info, dim, pool, dose, dose_scale, use_context, use_batch, heads=1, owner="embedding_table")
        self.capabilities = self.capabilities.replace(embeds_batches=use_batch, embeds_contexts=use_context, reads_dose=dose != "none")
        self._init_null()

    @property
    def table_width(self) -> int:
        """Length ``F`` of the table vectors."""
        return int(self.atom_vectors.shape[1])

    def embed(self, labels: ConditionLabels) -> Tensor:
        ids = labels.perturbation
        safe = ids.clamp_min(0)
        real = (ids >= 0) & self.atom_found[safe]
        vec = self.mlp(self.atom_vectors[safe]).masked_fill(~real[..., None], 0.0)
        return self.combine(vec, labels)

    def can_embed(self, atoms: Sequence[str]) -> list[bool]:
        return [k is not None for k in resolve_names(atoms, self.keys, self.case_sensitive)]


__all__ = ["EmbeddingTableConditioner", "resolve_names"]
