"""Data: the only part of distgen that touches AnnData.

Schema validation, preprocessing, leakage-safe splits, set sampling with control matching, gene
graphs, prediction writing (cell-eval layout) and synthetic generators. Models see tensors only.
"""

from distgen.data.dataset import PerturbationData
from distgen.data.graph import coexpression_graph, edge_list_graph, gene_graph
from distgen.data.matching import ControlMatcher, matchers
from distgen.data.predictions import write_ground_truth, write_predictions
from distgen.data.preprocess import highly_variable_genes
from distgen.data.sampler import SetSampler
from distgen.data.schema import PerturbationSchema
from distgen.data.split import SPLIT_KINDS, LeakageError, Split
from distgen.data.splitters import make_split

__all__ = [
    "SPLIT_KINDS",
    "ControlMatcher",
    "LeakageError",
    "PerturbationData",
    "PerturbationSchema",
    "SetSampler",
    "Split",
    "coexpression_graph",
    "edge_list_graph",
    "gene_graph",
    "highly_variable_genes",
    "make_split",
    "matchers",
    "write_ground_truth",
    "write_predictions",
]
