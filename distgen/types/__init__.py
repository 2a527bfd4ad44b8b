"""Data types shared by every part of distgen (no AnnData): tensors for models, labelled populations between stages.

``tensors``: ``DataInfo``, ``ConditionLabels``, ``CellTable``, ``SetBatch``, ``LossOutput``,
``SampleOutput``. ``cells``: ``Cells`` (a labelled population; ``IndexedCells``: one whose rows are rows of another table) and the
label helpers.
"""

from distgen.types.cells import ALL, COMBO, Cells, IndexedCells, atoms_of, canonical, labels_in, vocabulary
from distgen.types.tensors import (
    PAD,
    CellTable,
    ConditionLabels,
    DataInfo,
    HostIds,
    LossOutput,
    SampleOutput,
    SetBatch,
    nothing_padded,
)

__all__ = [
    "ALL",
    "COMBO",
    "PAD",
    "CellTable",
    "Cells",
    "ConditionLabels",
    "DataInfo",
    "HostIds",
    "IndexedCells",
    "LossOutput",
    "SampleOutput",
    "SetBatch",
    "atoms_of",
    "canonical",
    "labels_in",
    "nothing_padded",
    "vocabulary",
]
