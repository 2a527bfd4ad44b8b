"""Data: the only part of distgen that touches AnnData.

Schema validation, preprocessing, leakage-safe splits, the ``Dataset`` of a run (data + split +
fitted preprocessing, loaded once from a ``data:`` section), set sampling with control matching,
gene graphs, the cell-eval file layout of labelled populations (``layout``) and synthetic
generators. Models see tensors only.
"""

from distgen.data.batches import TableBatches
from distgen.data.dataset import PerturbationData
from distgen.data.graph import coexpression_graph, edge_list_graph, gene_graph
from distgen.data.layout import write_ground_truth, write_predictions
from distgen.data.matching import ControlMatcher, matchers
from distgen.data.prepared import Dataset, Group
from distgen.data.preprocess import highly_variable_genes
from distgen.data.sampler import SetSampler
from distgen.data.schema import PerturbationSchema
from distgen.data.section import DataSection, data_section
from distgen.data.split import SPLIT_KINDS, LeakageError, Split
from distgen.data.splitters import make_split

__all__ = [
    "SPLIT_KINDS",
    "ControlMatcher",
    "DataSection",
    "Dataset",
    "Group",
    "LeakageError",
    "PerturbationData",
    "PerturbationSchema",
    "SetSampler",
    "Split",
    "TableBatches",
    "coexpression_graph",
    "data_section",
    "edge_list_graph",
    "gene_graph",
    "highly_variable_genes",
    "make_split",
    "matchers",
    "write_ground_truth",
    "write_predictions",
]
